-- The first schema of the orchestrator store. Never edit this file once it has landed: add a
-- new numbered migration instead (sqlx checks each applied migration's checksum on open).
--
-- Conventions: enums are TEXT (their `as_str` spelling in `domain`), times are INTEGER Unix
-- milliseconds, booleans are INTEGER 0/1. Tables are STRICT so a wrongly typed bind fails loudly
-- instead of being stored as something else. Every per-run table references `runs`.

CREATE TABLE runs (
    id                  INTEGER PRIMARY KEY,
    experiment          TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    started_ms          INTEGER NOT NULL,
    finished_ms         INTEGER,
    dataset_fingerprint TEXT    NOT NULL,
    spec_hash           TEXT    NOT NULL,
    spec_json           TEXT    NOT NULL
) STRICT;

-- `resumable_run` and `latest_run` look runs up by experiment (and spec hash), newest first.
CREATE INDEX runs_by_experiment ON runs (experiment, spec_hash, id);

-- `seq` keeps the plan's arm order, which reports show arms in.
CREATE TABLE arms (
    run_id   INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm      TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    provider TEXT,
    prompt   TEXT,
    model    TEXT    NOT NULL,
    PRIMARY KEY (run_id, arm),
    UNIQUE (run_id, seq)
) STRICT;

-- `seq` keeps the eval set's order.
CREATE TABLE items (
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    item_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    input   TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    PRIMARY KEY (run_id, item_id),
    UNIQUE (run_id, seq)
) STRICT;

-- One answer (or failure) per arm and item. `error IS NULL` marks a success; a resumed run
-- replaces failed rows and never successful ones.
CREATE TABLE calls (
    run_id            INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm               TEXT    NOT NULL,
    item_id           TEXT    NOT NULL,
    response          TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms        REAL    NOT NULL,
    cost_usd          REAL    NOT NULL,
    attempts          INTEGER NOT NULL,
    cache_hit         INTEGER NOT NULL,
    error             TEXT,
    compute_seconds   REAL    NOT NULL,
    created_ms        INTEGER NOT NULL,
    PRIMARY KEY (run_id, arm, item_id)
) STRICT;

CREATE TABLE scores (
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm     TEXT    NOT NULL,
    item_id TEXT    NOT NULL,
    scorer  TEXT    NOT NULL,
    value   REAL    NOT NULL,
    PRIMARY KEY (run_id, arm, item_id, scorer)
) STRICT;

-- Provider answers keyed by a hash of (endpoint, model, messages, parameters); shared by all
-- runs, so it has no run id.
CREATE TABLE cache (
    key               TEXT    PRIMARY KEY,
    text              TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL
) STRICT;

CREATE TABLE training (
    run_id            INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm               TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    train_seconds     REAL    NOT NULL,
    tokens_per_second REAL    NOT NULL,
    peak_memory_bytes INTEGER NOT NULL,
    adapter_path      TEXT,
    checkpoint_dir    TEXT,
    error             TEXT,
    updated_ms        INTEGER NOT NULL,
    PRIMARY KEY (run_id, arm)
) STRICT;

-- `loss` is nullable because SQLite stores a NaN as NULL, and a diverging run's NaN loss is a
-- result worth keeping; the store reads NULL back as NaN.
CREATE TABLE loss_points (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm    TEXT    NOT NULL,
    step   INTEGER NOT NULL,
    split  TEXT    NOT NULL,
    epoch  REAL    NOT NULL,
    loss   REAL,
    PRIMARY KEY (run_id, arm, step, split)
) STRICT;
