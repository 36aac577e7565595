-- Which process is working on a run. A run is claimed (created or resumed) together with its
-- lease in one transaction, so two processes can never both work on it; the owner refreshes
-- `heartbeat_ms` while it works and deletes the row when it stops. A row left by a process that
-- died is taken over once its owner is known dead or its heartbeat is stale.
-- (0002, the per-arm pricing and run settings, landed together with this one.)

CREATE TABLE run_leases (
    run_id       INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    owner_pid    INTEGER NOT NULL,
    owner_host   TEXT    NOT NULL,
    -- Unique to the owning process, so a reused pid is never mistaken for the owner.
    token        TEXT    NOT NULL,
    heartbeat_ms INTEGER NOT NULL
) STRICT;
