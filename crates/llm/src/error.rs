//! The engine's error type: every fallible function in `llm` returns [`Error`], whose
//! variants carry the data a caller needs to explain the failure (a path, a tensor name, a
//! metadata key). It deliberately wraps Candle's and the tokenizer's errors instead of
//! flattening them into strings, so the chain stays inspectable. The trainer's own failures
//! are `finetune::Error`, which wraps this one.

use std::path::PathBuf;

/// Anything that can go wrong loading or running a local model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
        "{path}: not a model: expected a .gguf file, or a directory with config.json and *.safetensors"
    )]
    UnknownModelFormat { path: PathBuf },
    #[error("unsupported model architecture {architecture:?} (supported: llama, qwen2)")]
    UnsupportedArchitecture { architecture: String },
    #[error("GGUF metadata key {key:?} is missing or has the wrong type")]
    MissingMetadata { key: String },
    #[error("model weights have no tensor {name:?}")]
    MissingTensor { name: String },
    #[error("tokenizer: {message}")]
    Tokenizer { message: String },
    /// Scoring a batch's labels failed as a whole; each of its prompts carries the reason.
    #[error("scoring the choices failed: {reason}")]
    Choices { reason: String },
    #[error("choices: no labels to score")]
    NoLabels,
    #[error("choices: label {index} has no tokens")]
    EmptyLabel { index: usize },
    #[error(
        "the prompt has {tokens} tokens; scoring a choice of up to {label_tokens} tokens needs a non-empty prompt that fits with it in the model's context of {context}"
    )]
    ChoicesOverflow {
        tokens: usize,
        label_tokens: usize,
        context: usize,
    },
    #[error(
        "the model has no chat template (no tokenizer.chat_template in the GGUF, no chat_template in tokenizer_config.json)"
    )]
    NoChatTemplate,
    #[error(
        "unsupported chat template (only ChatML and Llama-3 templates are understood); it begins {excerpt:?}"
    )]
    UnknownChatTemplate { excerpt: String },
    #[error("invalid LoRA configuration: {reason}")]
    InvalidLora { reason: String },
    #[error("device {device}: {reason}")]
    Device { device: String, reason: String },
    #[error(
        "the prompt has {tokens} tokens; with {max_tokens} new tokens it exceeds the model's context of {context}"
    )]
    ContextOverflow {
        tokens: usize,
        max_tokens: usize,
        context: usize,
    },
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    /// A problem of one prompt of a batched call, which then answers none of them.
    #[error("prompt {index}: {source}")]
    InPrompt {
        index: usize,
        #[source]
        source: Box<Error>,
    },
    #[error("the engine returned no answer for the prompt")]
    NoAnswer,
}

impl Error {
    /// A tokenizer failure, kept as its message.
    pub fn tokenizer(err: impl std::fmt::Display) -> Self {
        Error::Tokenizer {
            message: err.to_string(),
        }
    }
}
