//! The finetune crate's integration tests, one binary: the tiny llama built in `tiny`, the
//! model side in `model`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model;
mod tiny;
