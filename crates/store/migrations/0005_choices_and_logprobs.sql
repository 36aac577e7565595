-- Answers constrained to labels (`choices:`): the label chosen, how it was found, its
-- probability, every label's probability (JSON array, label order), and the answer tokens'
-- log-probabilities where the model or endpoint gave them (JSON array). All NULL for free-text
-- answers and for rows of earlier versions. The cache keeps the same, so a cached answer is
-- served with its choice.
ALTER TABLE calls ADD COLUMN choice_label TEXT;
ALTER TABLE calls ADD COLUMN choice_via TEXT;
ALTER TABLE calls ADD COLUMN confidence REAL;
ALTER TABLE calls ADD COLUMN choice_probabilities TEXT;
ALTER TABLE calls ADD COLUMN token_logprobs TEXT;
ALTER TABLE cache ADD COLUMN choice_label TEXT;
ALTER TABLE cache ADD COLUMN choice_via TEXT;
ALTER TABLE cache ADD COLUMN confidence REAL;
ALTER TABLE cache ADD COLUMN choice_probabilities TEXT;
ALTER TABLE cache ADD COLUMN token_logprobs TEXT;
