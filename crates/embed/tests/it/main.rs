//! Integration tests of `embed`: the real all-MiniLM-L6-v2 against sentence-transformers'
//! reference similarities (slow: `ORCHESTRATOR_SLOW_TESTS=1`).

mod reference;
