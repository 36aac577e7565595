//! The finetune crate's integration tests, one binary: the tiny llama built in `tiny`, the
//! model side in `model`, the same on a CUDA GPU in `gpu` (opt-in).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gpu;
mod model;
mod tiny;
