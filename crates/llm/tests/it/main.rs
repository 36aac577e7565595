//! The llm crate's integration tests, one binary: the tiny llama built in `tiny`, the model
//! side (forward, LoRA layers, generation) in `model`, one outcome per prompt in `per_prompt`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod choices;
mod model;
mod per_prompt;
mod tiny;
