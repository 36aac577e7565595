//! The local LLM engine every `type: local` prompt arm (and the fine-tune worker, to answer)
//! uses: a llama-family transformer loaded from GGUF or safetensors, its tokenizer (from
//! `tokenizer.json` or the GGUF metadata) and chat template, LoRA-capable linear layers, batched
//! generation with a KV cache, and the fused CPU kernels the forward needs (each with a
//! hand-written backward, so the same forward serves the trainer in `finetune`).
//!
//! It has no tokio and no SQL, and knows nothing of training: no optimiser, checkpoints,
//! adapter files or job protocol (those are the `finetune` crate's). Long work runs on the
//! caller's thread.
//!
//! Map for the trainer (what the model side offers):
//! - [`local_model::LocalModel`] bundles a [`model::Llama`], its [`tokenizer::Tokenizer`] and
//!   [`chat::ChatTemplate`]; `LocalModel::load(path, device)` reads a `.gguf` or a safetensors
//!   directory. `format_example` turns (messages, answer) into prompt and answer token ids.
//! - [`model::Llama`]: `add_lora`, `lora_vars` (PEFT names → `Var`), `set_training`,
//!   `forward_hidden` (`[B,T]` ids → `[B,T,H]` final normed hidden states, differentiable),
//!   `lm_head` (`[N,H]` → `[N,V]`), `merge_lora`/`unmerge_lora`, `set_lora_tensors`.
//! - Weights are always in the Hugging Face layout (GGUF q/k rows are un-permuted at load), so
//!   LoRA tensors map one to one onto PEFT's `adapter_model.safetensors`.
//!
//! CPU threads: Candle 0.11.1 runs elementwise ops on a spinning barrier pool sized by
//! `CANDLE_NUM_THREADS` (default: every core) and matmuls on rayon (`RAYON_NUM_THREADS`); the
//! spinning takes cores from the matmuls. Programs that run models call [`cpu_env::apply`]
//! first thing, which restarts them with `CANDLE_NUM_THREADS=1` (matmuls and this crate's
//! kernels keep every core) and glibc settings that stop page-fault churn.

pub mod answer;
pub mod attention;
pub mod chat;
pub mod choices;
pub mod cpu_env;
pub mod device;
mod error;
pub mod generate;
mod kernels;
pub mod kv_cache;
pub mod local_model;
pub mod lora;
pub mod model;
pub mod ops;
pub mod per_prompt;
mod prefix_cache;
pub mod proc_stats;
pub mod testing;
pub mod tokenizer;
pub mod weights;

pub use choices::ChoiceScores;
pub use error::Error;
pub use generate::{FinishReason, Generation};
pub use local_model::LocalModel;
pub use lora::{LoraConfig, LoraTarget};
pub use model::{Config, Llama};
