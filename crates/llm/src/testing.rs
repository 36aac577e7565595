//! Tiny real models for tests and benchmarks: a 2-layer llama (hidden 32, 4 query heads over 2
//! KV heads, so grouped-query attention is exercised) with seeded random weights, a byte-level
//! BPE vocabulary (ChatML control tokens plus the 256 byte symbols) and a ChatML template.
//!
//! [`write_tiny_gguf`] writes the whole thing as one GGUF file, exactly the kind of file the
//! worker loads in production, so tests of the trainer, the adapter files and the worker
//! process run the real code paths end to end in milliseconds. Nothing here is a mock.
//! It is public (not `cfg(test)`) because the worker's and the runner's tests use it too.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::{Config, Llama};
use crate::{Error, LocalModel};

/// ChatML control tokens, ids 0, 1, 2 as in SmolLM2.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// A ChatML chat template (no default system prompt).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The tiny architecture: vocabulary of 3 control tokens + 256 bytes + a few merges.
pub fn tiny_config() -> Config {
    Config {
        vocab_size: vocabulary().0.len(),
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_freq_factors: None,
        max_position_embeddings: 512,
        tie_word_embeddings: true,
        attention_bias: false,
    }
}

/// Seeded random weights for `cfg` under Hugging Face names (f32, CPU): linears uniform in
/// ±1/√in, embeddings uniform in ±1, norms 1.
pub fn random_weights(cfg: &Config, seed: u64) -> Result<HashMap<String, Tensor>, Error> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let mut uniform = |shape: (usize, usize), bound: f32| -> Result<Tensor, Error> {
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Ok(Tensor::from_vec(data, shape, &dev)?)
    };
    let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
    let (q_out, kv_out) = (
        cfg.num_attention_heads * cfg.head_dim,
        cfg.num_key_value_heads * cfg.head_dim,
    );
    let mut t = HashMap::new();
    t.insert(
        "model.embed_tokens.weight".to_string(),
        uniform((cfg.vocab_size, h), 1.0)?,
    );
    t.insert(
        "model.norm.weight".to_string(),
        Tensor::ones(h, DType::F32, &dev)?,
    );
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (name, out, inp) in [
            ("self_attn.q_proj", q_out, h),
            ("self_attn.k_proj", kv_out, h),
            ("self_attn.v_proj", kv_out, h),
            ("self_attn.o_proj", h, q_out),
            ("mlp.gate_proj", f, h),
            ("mlp.up_proj", f, h),
            ("mlp.down_proj", h, f),
        ] {
            let bound = 1.0 / (inp as f32).sqrt();
            t.insert(format!("{p}.{name}.weight"), uniform((out, inp), bound)?);
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            t.insert(
                format!("{p}.{norm}.weight"),
                Tensor::ones(h, DType::F32, &dev)?,
            );
        }
    }
    Ok(t)
}

/// The tiny llama with seeded weights, on the CPU in f32, without a tokenizer.
pub fn tiny_llama(seed: u64) -> Result<Llama, Error> {
    let cfg = tiny_config();
    let vb = VarBuilder::from_tensors(random_weights(&cfg, seed)?, DType::F32, &Device::Cpu);
    Llama::new(&cfg, vb)
}

/// Writes the tiny model, tokenizer and chat template as a llama GGUF (f32 tensors).
pub fn write_tiny_gguf(path: &Path, seed: u64) -> Result<(), Error> {
    let cfg = tiny_config();
    let weights = random_weights(&cfg, seed)?;
    crate::weights::write_gguf(path, &cfg, &weights, GgmlDType::F32, &tokenizer_metadata())
}

/// The tiny model as a [`LocalModel`], loaded from a GGUF written to a temporary file.
pub fn tiny_local_model(seed: u64) -> Result<LocalModel, Error> {
    let dir = std::env::temp_dir().join(format!(
        "finetune-tiny-{}-{seed}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join("tiny.gguf");
    write_tiny_gguf(&path, seed)?;
    let model = LocalModel::load_on(&path, &Device::Cpu, DType::F32);
    let _ = std::fs::remove_dir_all(&dir);
    model
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Tokens and merges of the tiny byte-level BPE.
fn vocabulary() -> (Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    tokens.extend(byte_symbols().into_iter().map(String::from));
    let merges: Vec<String> = ["p o", "po s", "pos i", "n e", "ne g", "Ġ t", "h e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in &merges {
        tokens.push(m.replace(' ', ""));
    }
    (tokens, merges)
}

fn tokenizer_metadata() -> Vec<(String, Value)> {
    let (tokens, merges) = vocabulary();
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| Value::I32(if i < SPECIAL_TOKENS.len() { 3 } else { 1 }))
        .collect();
    vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        ("tokenizer.ggml.merges".into(), strings(merges)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(2)),
        (
            "tokenizer.chat_template".into(),
            Value::String(CHATML_TEMPLATE.into()),
        ),
    ]
}

/// GPT-2's byte → unicode table, in byte order.
fn byte_symbols() -> Vec<char> {
    let mut bs: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut pairs: Vec<(u32, u32)> = bs.into_iter().zip(cs).collect();
    pairs.sort();
    pairs
        .into_iter()
        .filter_map(|(_, c)| char::from_u32(c))
        .collect()
}

/// The largest absolute difference between two tensors of the same shape, as f64; infinity
/// when they cannot be compared (other shapes or devices), so a tolerance check fails.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let diff = || -> candle_core::Result<f64> {
        (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f64>()
    };
    diff().unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use domain::Message;

    #[test]
    fn the_tiny_gguf_loads_with_tokenizer_and_template() {
        let model = tiny_local_model(3).unwrap();
        let (prompt, answer) = model.format_example(&[Message::user("hi")], "pos").unwrap();
        assert_eq!(prompt.first(), Some(&1), "starts with <|im_start|>");
        assert_eq!(answer.last(), Some(&2), "ends with <|im_end|>");
        let pos = model.tokenizer().token_id("pos").unwrap();
        assert_eq!(answer, vec![pos, 2]);
        // Same seed, same weights: the GGUF path and the in-memory path agree.
        let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let a = model.model().forward(&ids).unwrap();
        let b = tiny_llama(3).unwrap().forward(&ids).unwrap();
        let diff: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-4, "{diff}");
    }
}
