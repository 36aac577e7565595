//! A tiny llama (hidden 16, 2 layers, 4 heads over 2 KV heads) with seeded random weights and
//! a 265-token byte-level vocabulary, written both as a GGUF (with tokenizer metadata and
//! SmolLM2's ChatML template) and as a Hugging Face directory (safetensors, config.json,
//! tokenizer.json, tokenizer_config.json), so tests exercise both loaders.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;
use candle_core::{Device, Tensor};
use llm::{Config, LocalModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[allow(dead_code)] // fields for other test modules
pub struct Tiny {
    pub _dir: tempfile::TempDir,
    pub gguf: PathBuf,
    pub hf_dir: PathBuf,
    pub cfg: Config,
    /// Hugging Face-named weights as written.
    pub tensors: HashMap<String, Tensor>,
}

pub fn config(bias: bool) -> Config {
    Config {
        vocab_size: 265,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 4,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_freq_factors: None,
        max_position_embeddings: 256,
        tie_word_embeddings: true,
        attention_bias: bias,
    }
}

fn randn(rng: &mut StdRng, shape: &[usize], std: f32) -> Tensor {
    let n: usize = shape.iter().product();
    // Sum of uniforms: roughly normal, deterministic across platforms.
    let v: Vec<f32> = (0..n)
        .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * std * 1.7)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Seeded random weights in Hugging Face naming.
pub fn weights(cfg: &Config, seed: u64) -> HashMap<String, Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (h, f, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let mut t = HashMap::new();
    t.insert(
        "model.embed_tokens.weight".into(),
        randn(&mut rng, &[cfg.vocab_size, h], 1.0),
    );
    t.insert(
        "model.norm.weight".into(),
        (randn(&mut rng, &[h], 0.1) + 1.0).unwrap(),
    );
    let lin_std = 1.0 / (h as f32).sqrt();
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut put = |name: &str, shape: &[usize], std: f32| {
            t.insert(format!("{p}.{name}"), randn(&mut rng, shape, std));
        };
        put("self_attn.q_proj.weight", &[nh * d, h], lin_std * 2.0);
        put("self_attn.k_proj.weight", &[nkv * d, h], lin_std * 2.0);
        put("self_attn.v_proj.weight", &[nkv * d, h], lin_std);
        put("self_attn.o_proj.weight", &[h, nh * d], lin_std);
        put("mlp.gate_proj.weight", &[f, h], lin_std);
        put("mlp.up_proj.weight", &[f, h], lin_std);
        put("mlp.down_proj.weight", &[h, f], 1.0 / (f as f32).sqrt());
        if cfg.attention_bias {
            put("self_attn.q_proj.bias", &[nh * d], 0.3);
            put("self_attn.k_proj.bias", &[nkv * d], 0.3);
            put("self_attn.v_proj.bias", &[nkv * d], 0.3);
        }
        let mut norm = |name: &str| {
            t.insert(
                format!("{p}.{name}"),
                (randn(&mut rng, &[h], 0.1) + 1.0).unwrap(),
            );
        };
        norm("input_layernorm.weight");
        norm("post_attention_layernorm.weight");
    }
    t
}

/// GPT-2's byte → unicode table, in byte order.
pub fn byte_symbols() -> Vec<char> {
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

/// `tokenizer.ggml.*` metadata: ChatML controls, 256 byte symbols, 6 merges (265 tokens).
pub fn tokenizer_metadata() -> Vec<(String, Value)> {
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types = vec![Value::I32(3); 3];
    for c in byte_symbols() {
        tokens.push(c.to_string());
        types.push(Value::I32(1));
    }
    let merges = ["h e", "he l", "hel l", "hell o", "Ġ w", "Ġw o"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(Value::I32(1));
    }
    let strs = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        ("tokenizer.ggml.tokens".into(), strs(tokens)),
        (
            "tokenizer.ggml.merges".into(),
            strs(merges.iter().map(|s| s.to_string()).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(2)),
        (
            "tokenizer.chat_template".into(),
            Value::String(SMOLLM2_TEMPLATE.into()),
        ),
    ]
}

/// Writes the tiny model both ways.
pub fn build(bias: bool, seed: u64) -> Tiny {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(bias);
    let tensors = weights(&cfg, seed);
    let gguf = dir.path().join("tiny.gguf");
    llm::weights::write_gguf(&gguf, &cfg, &tensors, GgmlDType::F32, &tokenizer_metadata()).unwrap();

    let hf_dir = dir.path().join("hf");
    std::fs::create_dir(&hf_dir).unwrap();
    candle_core::safetensors::save(&tensors, hf_dir.join("model.safetensors")).unwrap();
    let config_json = serde_json::json!({
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": true,
        "attention_bias": bias,
        "bos_token_id": 1,
        "eos_token_id": 2,
    });
    std::fs::write(hf_dir.join("config.json"), config_json.to_string()).unwrap();
    // The tokenizer the GGUF builds, saved as tokenizer.json.
    let from_gguf = LocalModel::load(&gguf, domain::Device::Cpu).unwrap();
    from_gguf
        .tokenizer()
        .inner()
        .save(hf_dir.join("tokenizer.json"), false)
        .unwrap();
    let tok_cfg = serde_json::json!({ "chat_template": SMOLLM2_TEMPLATE });
    std::fs::write(hf_dir.join("tokenizer_config.json"), tok_cfg.to_string()).unwrap();
    Tiny {
        _dir: dir,
        gguf,
        hf_dir,
        cfg,
        tensors,
    }
}

pub use llm::testing::max_diff;

/// The real SmolLM2-135M-Instruct GGUF (`models::smollm2_gguf`).
pub fn smollm2_path() -> PathBuf {
    models::smollm2_gguf()
}
