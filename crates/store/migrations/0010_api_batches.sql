-- `run --batch`: batches submitted through a provider's Batch API, one arm each, and the items
-- each one carries. A batch row is written before anything is sent; `token` is also put in the
-- remote batch's metadata, so a process that died between creating the batch and storing its
-- id finds it again instead of submitting its items twice. `status` is `preparing` (nothing
-- sent), `uploaded` (the input file is up, the batch may or may not exist), the provider's own
-- status once the batch is known, and `collected` once its answers are stored.
CREATE TABLE api_batches (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm           TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    token         TEXT    NOT NULL UNIQUE,
    input_file_id TEXT,
    remote_id     TEXT,
    status        TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL,
    collected_ms  INTEGER
) STRICT;

CREATE INDEX api_batches_open ON api_batches (run_id, status);

CREATE TABLE api_batch_items (
    batch_id INTEGER NOT NULL REFERENCES api_batches (id) ON DELETE CASCADE,
    item_id  TEXT    NOT NULL,
    PRIMARY KEY (batch_id, item_id)
) STRICT;
