//! Sentence embeddings for the `similar` scorer: a BERT-family encoder (sentence-transformers'
//! all-MiniLM-L6-v2 by default) run by Candle, mean-pooled over the attention mask and
//! L2-normalised, so the cosine of two embeddings is their dot product.
//!
//! A model is a folder with `config.json`, `tokenizer.json` and `model.safetensors` (what
//! `models pull all-minilm-l6-v2` caches, or any BERT safetensors folder). The tokenizer's own
//! padding is replaced by padding to the longest text of a batch: the shipped all-MiniLM
//! tokenizer pads every text to 128 tokens, and the pads are masked out of both attention and
//! pooling, so a text embeds the same alone or in a batch.
//!
//! This is a model crate: no tokio, no IO beyond reading the model folder, no scoring (the
//! cosine and the score rule live in `scoring`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[cfg(feature = "testing")]
pub mod testing;

/// Why a model did not load or a text did not embed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a BERT config: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: not a tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{path}: the model pools with {mode}; only mean pooling is supported")]
    Pooling { path: PathBuf, mode: String },
    #[error("tokenizing failed: {reason}")]
    Encode { reason: String },
    #[error("{path}: {source}")]
    Weights {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
    #[error("embedding failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A loaded sentence encoder.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").finish_non_exhaustive()
    }
}

/// The model folder and weights file `path` names: a folder holding `model.safetensors`, or a
/// `.safetensors` file whose folder holds the rest.
fn model_files(path: &Path) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        (path.to_path_buf(), path.join("model.safetensors"))
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, path.to_path_buf())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a sentence-transformers pooling config that asks for anything but mean pooling; a
/// folder without one (a plain BERT) is mean-pooled.
fn check_pooling(dir: &Path) -> Result<(), Error> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(());
    }
    let config: serde_json::Value =
        serde_json::from_slice(&read(&path)?).map_err(|source| Error::Config {
            path: path.clone(),
            source,
        })?;
    let on = |key: &str| config.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    if on("pooling_mode_mean_tokens") {
        return Ok(());
    }
    let mode = ["cls_token", "max_tokens", "mean_sqrt_len_tokens"]
        .into_iter()
        .find(|m| on(&format!("pooling_mode_{m}")))
        .unwrap_or("no pooling mode");
    Err(Error::Pooling {
        path,
        mode: mode.to_string(),
    })
}

impl Embedder {
    /// Loads the model at `path` (see [`model_files`]) in f32 on the CPU.
    pub fn load(path: &Path) -> Result<Embedder, Error> {
        let (dir, weights) = model_files(path);
        check_pooling(&dir)?;
        let config_path = dir.join("config.json");
        let config: Config =
            serde_json::from_slice(&read(&config_path)?).map_err(|source| Error::Config {
                path: config_path,
                source,
            })?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::Tokenizer {
            path: tokenizer_path,
            reason: e.to_string(),
        })?;
        let device = Device::Cpu;
        let weights_error = |source| Error::Weights {
            path: weights.clone(),
            source,
        };
        // Read into memory rather than mapped: mapping is unsafe code, which the workspace denies.
        let vb = VarBuilder::from_buffered_safetensors(read(&weights)?, DType::F32, &device)
            .map_err(weights_error)?;
        let model = BertModel::load(vb, &config).map_err(weights_error)?;
        Embedder::new(model, tokenizer, config.max_position_embeddings)
    }

    /// An embedder over a built model and tokenizer. Texts are cut to `max_tokens` (or the
    /// tokenizer's own, shorter, truncation) and padded to the longest of their batch.
    pub fn new(
        model: BertModel,
        mut tokenizer: Tokenizer,
        max_tokens: usize,
    ) -> Result<Embedder, Error> {
        let pad = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..pad
        }));
        let max_length = tokenizer
            .get_truncation()
            .map_or(max_tokens, |t| t.max_length.min(max_tokens));
        let truncation = TruncationParams {
            max_length,
            ..tokenizer.get_truncation().cloned().unwrap_or_default()
        };
        tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| Error::Encode {
                reason: e.to_string(),
            })?;
        let device = model.device.clone();
        Ok(Embedder {
            model,
            tokenizer,
            device,
        })
    }

    /// One unit-length embedding per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Encode {
                reason: e.to_string(),
            })?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, Error> {
            let data: Vec<Vec<u32>> = encodings.iter().map(|e| f(e).to_vec()).collect();
            Ok(Tensor::new(data, &self.device)?)
        };
        let ids = rows(&|e| e.get_ids())?;
        let types = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let pooled = self.pool(&ids, &types, Some(&mask))?;
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// Mean of the token states where `mask` is 1 (every token without a mask), L2-normalised:
    /// `[batch, hidden]`.
    pub(crate) fn pool(
        &self,
        ids: &Tensor,
        types: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor, Error> {
        let states = self.model.forward(ids, types, mask)?;
        let mask = match mask {
            Some(m) => m.to_dtype(DType::F32)?,
            None => ids.ones_like()?.to_dtype(DType::F32)?,
        };
        let summed = states.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?)
    }
}

#[cfg(test)]
mod tests;
