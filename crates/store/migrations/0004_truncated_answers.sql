-- Answers cut off at the token limit (`finish_reason: length`): kept, and marked, in the calls
-- and in the response cache, so a truncated answer is never counted or served as a whole one.
ALTER TABLE calls ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cache ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
