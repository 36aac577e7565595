//! The LoRA trainer: one fine-tune job from chat examples to a PEFT adapter on disk, on the
//! model of the `llm` engine. Training data and batches (`data.rs`), AdamW, the learning-rate
//! schedule and clipping (`optim.rs`), the training loop (`train.rs`), resumable checkpoints
//! (`checkpoint.rs`), PEFT adapter and merged-model IO (`adapter.rs`), and the fine-tune
//! worker's job protocol (`job.rs`), which the runner and `finetune-worker` share.
//!
//! It has no tokio and no SQL: training runs on the caller's thread and checks a cancel flag
//! between steps. Not here: the model, tokenizer, chat templates and generation (`llm`).

pub mod adapter;
pub mod checkpoint;
pub mod data;
mod error;
mod files;
pub mod job;
pub mod optim;
pub mod train;

pub use error::Error;
