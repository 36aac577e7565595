//! The finetune crate's integration tests, one binary: LoRA training steps on a CUDA GPU
//! against the CPU in `gpu` (opt-in, `ORCHESTRATOR_GPU_TESTS=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gpu;
