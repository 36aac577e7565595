//! Integration tests of the runner on real parts: a loopback OpenAI-compatible test server, a
//! real SQLite store in a temp dir, specs loaded by `experiment`, a real child process as the
//! fine-tune worker (the package's `fake-finetune-worker` binary), and the tiny llama of
//! `llm::testing` as a local model.
//!
//! The binary-level behaviour (exit codes, output, signals) is tested end to end in `/tests`;
//! here the runner's own contract is checked: what it stores, what it reports, and how it
//! resumes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod cache;
mod finetune;
mod hosted;
mod local;
mod support;
mod sweeps;
