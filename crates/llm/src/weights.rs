//! Reading model files into a [`Config`] and Hugging Face-named tensors: a llama.cpp GGUF file
//! (every tensor dequantised to f32: at this model size f32 matmuls are both faster and more
//! accurate on the CPU than the quantised kernels) or a directory of safetensors with
//! `config.json`. Also writes a GGUF from Hugging Face-named tensors (merged exports, tests).
//!
//! GGUF `llama` files store q/k rows permuted for llama.cpp's interleaved RoPE; they are
//! un-permuted here (and permuted again on write), so the model only knows the Hugging Face
//! layout. `qwen2` GGUFs are not permuted (llama.cpp runs them with NeoX RoPE).
//!
//! Not here: the tokenizer and chat template (they read the same GGUF metadata elsewhere).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::Error;
use crate::model::Config;

/// What a model file holds, before it becomes a [`crate::Llama`].
pub struct ModelFiles {
    pub cfg: Config,
    /// Hugging Face names, f32 (GGUF) or as stored (safetensors), on the target device.
    pub tensors: HashMap<String, Tensor>,
    /// The GGUF header (metadata carries the tokenizer and chat template), when loaded from one.
    pub gguf: Option<Content>,
    /// Where a `tokenizer.json` / `tokenizer_config.json` may sit.
    pub dir: PathBuf,
    /// End-of-sequence ids declared by the model config (GGUF metadata or config.json).
    pub eos_ids: Vec<u32>,
    pub bos_id: Option<u32>,
}

/// Reads a `.gguf` file, or a directory (or `.safetensors` file) with `config.json`, into
/// [`ModelFiles`] on `device`.
pub fn read(path: &Path, device: &Device) -> Result<ModelFiles, Error> {
    if !path.exists() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        return read_gguf(path, device);
    }
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file() && path.extension().is_some_and(|e| e == "safetensors") {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        return Err(Error::UnknownModelFormat {
            path: path.to_path_buf(),
        });
    };
    if !dir.join("config.json").is_file() {
        return Err(Error::UnknownModelFormat {
            path: path.to_path_buf(),
        });
    }
    read_safetensors(&dir, path, device)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// safetensors + config.json

/// `eos_token_id` is an integer or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<u32> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct RopeScaling {
    #[serde(alias = "type")]
    rope_type: Option<String>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
}

/// config.json as Hugging Face writes it for llama / qwen2 models.
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    attention_bias: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    4096
}

/// Llama 3.1's frequency-dependent RoPE scaling, as divisors of the base frequencies.
fn llama3_factors(s: &RopeScaling, theta: f64, head_dim: usize) -> Option<Vec<f32>> {
    if s.rope_type.as_deref() != Some("llama3") {
        return None;
    }
    let factor = s.factor.unwrap_or(8.0);
    let low = s.low_freq_factor.unwrap_or(1.0);
    let high = s.high_freq_factor.unwrap_or(4.0);
    let old_ctx = s.original_max_position_embeddings.unwrap_or(8192) as f64;
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    Some(
        (0..head_dim / 2)
            .map(|i| {
                let freq = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let div = if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor
                } else {
                    let smooth = (old_ctx / wavelen - low) / (high - low);
                    // new = (1 − s)·f/factor + s·f, as a divisor of f:
                    1.0 / ((1.0 - smooth) / factor + smooth)
                };
                div as f32
            })
            .collect(),
    )
}

impl HfConfig {
    fn into_config(self) -> Result<(Config, Vec<u32>, Option<u32>), Error> {
        let arch = self.model_type.clone().unwrap_or_else(|| "llama".into());
        if !matches!(arch.as_str(), "llama" | "qwen2" | "mistral") {
            return Err(Error::UnsupportedArchitecture { architecture: arch });
        }
        let head_dim = self
            .head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        let rope_freq_factors = self
            .rope_scaling
            .as_ref()
            .and_then(|s| llama3_factors(s, self.rope_theta, head_dim));
        let cfg = Config {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            rope_freq_factors,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            attention_bias: self.attention_bias.unwrap_or(arch == "qwen2"),
        };
        let eos = self
            .eos_token_id
            .map(OneOrMany::into_vec)
            .unwrap_or_default();
        Ok((cfg, eos, self.bos_token_id))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_safetensors(dir: &Path, path: &Path, device: &Device) -> Result<ModelFiles, Error> {
    let hf: HfConfig = read_json(&dir.join("config.json"))?;
    let (mut cfg, eos_ids, bos_id) = hf.into_config()?;
    let files: Vec<PathBuf> = if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        v
    };
    if files.is_empty() {
        return Err(Error::UnknownModelFormat {
            path: path.to_path_buf(),
        });
    }
    let mut tensors = HashMap::new();
    for f in &files {
        tensors.extend(candle_core::safetensors::load(f, device)?);
    }
    if !tensors.contains_key("lm_head.weight") {
        cfg.tie_word_embeddings = true;
    }
    Ok(ModelFiles {
        cfg,
        tensors,
        gguf: None,
        dir: dir.to_path_buf(),
        eos_ids,
        bos_id,
    })
}

// ---------------------------------------------------------------------------------------------
// GGUF

/// Reads `key` from GGUF metadata as an unsigned integer.
pub(crate) fn meta_u32(c: &Content, key: &str) -> Option<u32> {
    let v = c.metadata.get(key)?;
    match v {
        Value::U8(x) => Some(u32::from(*x)),
        Value::U16(x) => Some(u32::from(*x)),
        Value::U32(x) => Some(*x),
        Value::U64(x) => u32::try_from(*x).ok(),
        Value::I8(x) => u32::try_from(*x).ok(),
        Value::I16(x) => u32::try_from(*x).ok(),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::I64(x) => u32::try_from(*x).ok(),
        _ => None,
    }
}

pub(crate) fn meta_f64(c: &Content, key: &str) -> Option<f64> {
    match c.metadata.get(key)? {
        Value::F32(x) => Some(f64::from(*x)),
        Value::F64(x) => Some(*x),
        _ => None,
    }
}

pub(crate) fn meta_str<'a>(c: &'a Content, key: &str) -> Option<&'a str> {
    match c.metadata.get(key)? {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn require_u32(c: &Content, key: &str) -> Result<usize, Error> {
    meta_u32(c, key)
        .map(|x| x as usize)
        .ok_or_else(|| Error::MissingMetadata { key: key.into() })
}

/// llama.cpp tensor name → Hugging Face name (None for tensors the model does not use).
fn hf_name(gguf: &str) -> Option<String> {
    let plain = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(p) = plain {
        return Some(p.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Hugging Face name → llama.cpp name (inverse of [`hf_name`]).
fn gguf_name(hf: &str) -> Option<String> {
    let plain = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(p) = plain {
        return Some(p.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// Rows of a q/k weight `[heads·head_dim, …]` (or bias) from llama.cpp's interleaved-RoPE order
/// back to Hugging Face's half-rotation order: `reshape(h, d/2, 2, …).swap(1, 2)`.
fn unpermute(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims.first().copied().unwrap_or(0);
    let rest: usize = dims.iter().skip(1).product();
    t.reshape((heads, out / heads / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// The inverse of [`unpermute`]: Hugging Face order → llama.cpp's.
fn permute(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims.first().copied().unwrap_or(0);
    let rest: usize = dims.iter().skip(1).product();
    t.reshape((heads, 2, out / heads / 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

fn read_gguf(path: &Path, device: &Device) -> Result<ModelFiles, Error> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader)?;
    let arch = meta_str(&content, "general.architecture")
        .unwrap_or("llama")
        .to_string();
    let permuted = match arch.as_str() {
        "llama" | "mistral" => true,
        "qwen2" => false,
        _ => return Err(Error::UnsupportedArchitecture { architecture: arch }),
    };
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = require_u32(&content, &key("embedding_length"))?;
    let heads = require_u32(&content, &key("attention.head_count"))?;
    let kv_heads = meta_u32(&content, &key("attention.head_count_kv"))
        .map(|x| x as usize)
        .unwrap_or(heads);
    let head_dim = meta_u32(&content, &key("attention.key_length"))
        .or_else(|| meta_u32(&content, &key("rope.dimension_count")))
        .map(|x| x as usize)
        .unwrap_or(hidden / heads.max(1));
    let vocab_size = match content.tensor_infos.get("token_embd.weight") {
        Some(info) => info.shape.dims().first().copied().unwrap_or(0),
        None => {
            return Err(Error::MissingTensor {
                name: "token_embd.weight".into(),
            });
        }
    };

    let mut tensors = HashMap::new();
    let mut rope_freq_factors = None;
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut reader, name, &Device::Cpu)?;
        let t = q.dequantize(&Device::Cpu)?;
        if name == "rope_freqs.weight" {
            rope_freq_factors = Some(t.to_dtype(DType::F32)?.to_vec1::<f32>()?);
            continue;
        }
        let Some(hf) = hf_name(name) else {
            tracing::debug!(tensor = %name, "ignoring GGUF tensor");
            continue;
        };
        let t = if permuted && (name.contains(".attn_q.") || name.contains(".attn_k.")) {
            let h = if name.contains(".attn_q.") {
                heads
            } else {
                kv_heads
            };
            unpermute(&t, h)?
        } else {
            t
        };
        tensors.insert(hf, t.to_device(device)?);
    }
    let attention_bias = tensors.contains_key("model.layers.0.self_attn.q_proj.bias");
    let cfg = Config {
        vocab_size,
        hidden_size: hidden,
        intermediate_size: require_u32(&content, &key("feed_forward_length"))?,
        num_hidden_layers: require_u32(&content, &key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        rms_norm_eps: meta_f64(&content, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
        rope_theta: meta_f64(&content, &key("rope.freq_base")).unwrap_or(10_000.0),
        rope_freq_factors,
        max_position_embeddings: meta_u32(&content, &key("context_length"))
            .map(|x| x as usize)
            .unwrap_or(4096),
        tie_word_embeddings: !tensors.contains_key("lm_head.weight"),
        attention_bias,
    };
    let eos_ids = meta_u32(&content, "tokenizer.ggml.eos_token_id")
        .into_iter()
        .collect();
    let bos_id = meta_u32(&content, "tokenizer.ggml.bos_token_id");
    Ok(ModelFiles {
        cfg,
        tensors,
        gguf: Some(content),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        eos_ids,
        bos_id,
    })
}

/// Writes Hugging Face-named f32 `tensors` of a model with `cfg` as a llama-architecture GGUF
/// (q/k rows permuted as llama.cpp expects), stored as `dtype` (F32, F16 or Q8_0 …; norms and
/// biases stay F32), with `extra` metadata such as the `tokenizer.ggml.*` keys.
pub fn write_gguf(
    path: &Path,
    cfg: &Config,
    tensors: &HashMap<String, Tensor>,
    dtype: GgmlDType,
    extra: &[(String, Value)],
) -> Result<(), Error> {
    let u32v = |x: usize| Value::U32(x as u32);
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.block_count".into(), u32v(cfg.num_hidden_layers)),
        ("llama.embedding_length".into(), u32v(cfg.hidden_size)),
        (
            "llama.feed_forward_length".into(),
            u32v(cfg.intermediate_size),
        ),
        (
            "llama.attention.head_count".into(),
            u32v(cfg.num_attention_heads),
        ),
        (
            "llama.attention.head_count_kv".into(),
            u32v(cfg.num_key_value_heads),
        ),
        ("llama.rope.dimension_count".into(), u32v(cfg.head_dim)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        (
            "llama.rope.freq_base".into(),
            Value::F32(cfg.rope_theta as f32),
        ),
        (
            "llama.context_length".into(),
            u32v(cfg.max_position_embeddings),
        ),
    ];
    meta.extend(extra.iter().cloned());
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut qtensors = Vec::new();
    for hf in names {
        let Some(g) = gguf_name(hf) else { continue };
        let Some(t) = tensors.get(hf) else { continue };
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let t = if g.contains(".attn_q.") {
            permute(&t, cfg.num_attention_heads)?
        } else if g.contains(".attn_k.") {
            permute(&t, cfg.num_key_value_heads)?
        } else {
            t
        };
        let q = if t.rank() == 2 && t.dim(1)? % dtype.block_size() == 0 {
            QTensor::quantize(&t, dtype)?
        } else {
            QTensor::quantize(&t, GgmlDType::F32)?
        };
        qtensors.push((g, q));
    }
    let mut file = File::create(path).map_err(io_err(path))?;
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &meta_refs, &t_refs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip() {
        for g in [
            "token_embd.weight",
            "blk.3.attn_q.weight",
            "blk.3.attn_q.bias",
            "blk.12.ffn_down.weight",
            "output_norm.weight",
        ] {
            assert_eq!(gguf_name(&hf_name(g).unwrap()).unwrap(), g);
        }
    }

    #[test]
    fn permute_inverts() {
        let t = Tensor::arange(0f32, 48.0, &Device::Cpu)
            .unwrap()
            .reshape((12, 4))
            .unwrap();
        let back = unpermute(&permute(&t, 3).unwrap(), 3).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        // llama.cpp's order for one head of 4 rows: 0, 2, 1, 3.
        let p = permute(&t.narrow(0, 0, 4).unwrap(), 1).unwrap();
        assert_eq!(p.to_vec2::<f32>().unwrap()[1], vec![8.0, 9.0, 10.0, 11.0]);
    }
}
