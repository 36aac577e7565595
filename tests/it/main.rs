//! End-to-end tests of the real `orchestrator` binary: each test writes a spec and a small
//! dataset into a temp dir, starts the OpenAI-compatible test server in-process on loopback, runs
//! the binary as a child process, and checks exit codes, printed output, the server's request log
//! and what `leaderboard`/`runs` read back from the database.
//!
//! This test target belongs to the `orchestrator` package (see its `Cargo.toml`), so Cargo builds
//! the binary first and `support::orchestrator_bin` is `CARGO_BIN_EXE_orchestrator` (or
//! `$ORCHESTRATOR_BIN`). No test asserts on time. `tidy` checks the repository's invariants.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod batch;
mod bench_serving;
mod budget;
mod cache;
mod choices;
mod concurrent;
mod data_check;
mod dry_run;
mod faults;
mod full_run;
mod hostile_output;
mod local;
mod optimize;
mod optimize_bootstrap;
mod optimize_limits;
mod preflight;
mod report;
mod resume;
mod review;
mod secrets;
mod similar;
mod support;
mod tidy;
