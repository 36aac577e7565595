//! End-to-end tests of the real `orchestrator` binary live in `tests/it/`.
