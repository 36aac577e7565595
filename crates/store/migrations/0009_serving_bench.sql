-- `bench-serving`: a local arm's throughput and latency at each batch size it was measured at,
-- on the run's eval prompts. A new measurement of the same arm and size replaces the old one.
CREATE TABLE serving_bench (
    run_id           INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    arm              TEXT    NOT NULL,
    batch_size       INTEGER NOT NULL,
    items            INTEGER NOT NULL,
    items_per_second REAL    NOT NULL,
    latency_p50_ms   REAL    NOT NULL,
    latency_p95_ms   REAL    NOT NULL,
    measured_ms      INTEGER NOT NULL,
    PRIMARY KEY (run_id, arm, batch_size)
) STRICT;
