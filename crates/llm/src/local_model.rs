//! [`LocalModel`]: a model ready to answer, loaded from a `.gguf` file or a safetensors
//! directory with its tokenizer and chat template, on one device.
//!
//! Not here: turning chats into token ids (`chat.rs`), batched generation (`generate.rs`), the
//! model's forward (`model.rs`) and file formats (`weights.rs`).

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::chat::ChatTemplate;
use crate::model::Llama;
use crate::prefix_cache::PrefixCache;
use crate::tokenizer::Tokenizer;
use crate::weights::{self, meta_str};
use crate::{Error, device};

/// Default largest batch: past ~16 rows a CPU decode step stops getting cheaper per row.
pub const DEFAULT_MAX_BATCH: usize = 16;

/// A model ready to answer: weights, tokenizer and chat template on one device.
pub struct LocalModel {
    pub(crate) model: Llama,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) chat: ChatTemplate,
    /// Token ids that end an answer: EOS and the template's end-of-turn token.
    pub(crate) stop_ids: Vec<u32>,
    pub(crate) max_batch: usize,
    /// The last shared prompt prefix computed, reused by later calls (`prefix_cache.rs`).
    pub(crate) prefix: PrefixCache,
}

impl LocalModel {
    /// Loads a `.gguf` file, or a directory (or `.safetensors` file) with `config.json`, onto
    /// `device` (f32 on the CPU, bf16 on CUDA). The tokenizer is `tokenizer.json` beside the
    /// weights when present, else built from GGUF metadata.
    pub fn load(path: &Path, device: domain::Device) -> Result<Self, Error> {
        let dev = device::select(device)?;
        let dtype = device::compute_dtype(&dev);
        Self::load_on(path, &dev, dtype)
    }

    /// [`LocalModel::load`] with an explicit Candle device and dtype.
    pub fn load_on(path: &Path, dev: &Device, dtype: DType) -> Result<Self, Error> {
        let started = Instant::now();
        let files = weights::read(path, dev)?;
        let tokenizer_json = files.dir.join("tokenizer.json");
        let tokenizer = if tokenizer_json.is_file() {
            Tokenizer::from_file(&tokenizer_json, files.bos_id, files.eos_ids.clone())?
        } else if let Some(gguf) = &files.gguf {
            Tokenizer::from_gguf(gguf)?
        } else {
            return Err(Error::Tokenizer {
                message: format!("no tokenizer.json in {}", files.dir.display()),
            });
        };
        let template = match &files.gguf {
            Some(gguf) => meta_str(gguf, "tokenizer.chat_template").map(str::to_string),
            None => None,
        };
        let template = match template {
            Some(t) => t,
            None => hf_chat_template(&files.dir)?.ok_or(Error::NoChatTemplate)?,
        };
        let chat = ChatTemplate::detect(&template)?;
        let vb = VarBuilder::from_tensors(files.tensors, dtype, dev);
        let model = Llama::new(&files.cfg, vb)?;
        tracing::info!(
            path = %path.display(),
            layers = files.cfg.num_hidden_layers,
            hidden = files.cfg.hidden_size,
            seconds = started.elapsed().as_secs_f64(),
            "model loaded"
        );
        Ok(Self::from_parts(model, tokenizer, chat))
    }

    /// Assembles a model from its parts (tests, or a model built in memory).
    pub fn from_parts(model: Llama, tokenizer: Tokenizer, chat: ChatTemplate) -> Self {
        let mut stop_ids = tokenizer.eos_ids().to_vec();
        if let Some(id) = tokenizer.token_id(chat.end_of_turn())
            && !stop_ids.contains(&id)
        {
            stop_ids.push(id);
        }
        Self {
            model,
            tokenizer,
            chat,
            stop_ids,
            max_batch: DEFAULT_MAX_BATCH,
            prefix: PrefixCache::default(),
        }
    }

    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// For the trainer: add LoRA, switch training mode, merge. The weights may change, so the
    /// kept prompt prefix is forgotten.
    pub fn model_mut(&mut self) -> &mut Llama {
        self.prefix.clear();
        &mut self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    /// Token ids that end an answer.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Largest number of prompts decoded together (at least 1).
    pub fn set_max_batch(&mut self, n: usize) {
        self.max_batch = n.max(1);
    }
}

/// `chat_template` from a Hugging Face `tokenizer_config.json` (a string, or a list of named
/// templates of which `default` is used).
fn hf_chat_template(dir: &Path) -> Result<Option<String>, Error> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })?;
    Ok(match v.get("chat_template") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .or_else(|| list.first())
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_string),
        _ => None,
    })
}
