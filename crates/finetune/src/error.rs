//! The trainer's error type: every fallible function in `finetune` returns [`Error`]. Failures
//! of the model itself (loading, tokenising, a Candle op) keep their own type, [`llm::Error`],
//! wrapped whole so the chain stays inspectable; the variants here are the trainer's: settings,
//! training data, adapter files and checkpoints.

use std::path::PathBuf;

/// Anything that can go wrong training, saving or resuming a LoRA fine-tune.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] llm::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "unknown LoRA target module {name:?}; expected one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"
    )]
    UnknownLoraTarget { name: String },
    #[error("invalid fine-tune setting {field} = {value}: expected {expected}")]
    InvalidHyper {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("nothing to train on: {examples} examples, {held_out} of them held out for validation")]
    NoTrainingExamples { examples: usize, held_out: usize },
    #[error("{path}: not a usable PEFT LoRA adapter: {reason}")]
    BadAdapter { path: PathBuf, reason: String },
    #[error("checkpoint {path}: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
    #[error("merged export of {what} is not supported")]
    UnsupportedExport { what: String },
}
