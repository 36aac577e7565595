-- Prompt searches (`optimize:`): one row per candidate an optimised arm considered, what it
-- was (seed prompt, instruction, fixed demo ids as a JSON array or NULL) and its score on the
-- dev items of its last rung. The candidate's dev answers are ordinary calls and scores under
-- the arm id in `candidate`; `chosen` marks the prompt the optimised arm answers eval with.
CREATE TABLE searches (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm         TEXT    NOT NULL,
    candidate   TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    seed_prompt TEXT    NOT NULL,
    instruction TEXT,
    demo_ids    TEXT,
    dev_items   INTEGER NOT NULL,
    dev_score   REAL,
    chosen      INTEGER NOT NULL,
    PRIMARY KEY (run_id, candidate)
) STRICT;
