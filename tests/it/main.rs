//! End-to-end tests of the real `orchestrator` binary: each test writes a spec and a small
//! dataset into a temp dir, starts the OpenAI-compatible test server in-process on loopback, runs
//! the binary as a child process, and checks exit codes, printed output, the server's request log
//! and what `leaderboard`/`runs` read back from the database.
//!
//! The binary is built once per test process by `support::orchestrator_bin` (it runs
//! `cargo build -p orchestrator` into this target directory, or takes `$ORCHESTRATOR_BIN`), since
//! Cargo exposes `CARGO_BIN_EXE_*` only to the binary's own package. No test asserts on time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod budget;
mod cache;
mod dry_run;
mod faults;
mod full_run;
mod preflight;
mod report;
mod resume;
mod secrets;
mod support;
