//! A tiny BERT with random weights and a word-level tokenizer, for tests here and in other
//! crates (`features = ["testing"]`): [`tiny_embedder`] builds one in memory, [`write_tiny_model`]
//! writes it as a model folder that [`crate::Embedder::load`] and the `similar` scorer read.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config, HiddenAct};
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;

use crate::{Embedder, Error};

/// The words the tiny tokenizer knows (id = position); anything else is `[UNK]`.
pub const WORDS: [&str; 18] = [
    "[PAD]", "[UNK]", "a", "man", "is", "eating", "food", "bread", "riding", "horse", "the",
    "movie", "new", "awesome", "piece", "of", "yes", "no",
];

/// Hidden size 16, 2 layers, 2 heads, 32 positions.
pub fn tiny_config() -> Config {
    Config {
        vocab_size: WORDS.len(),
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        hidden_act: HiddenAct::Gelu,
        max_position_embeddings: 32,
        ..Config::default()
    }
}

/// The config as the `config.json` of a model folder.
fn config_json(c: &Config) -> serde_json::Value {
    serde_json::json!({
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": c.layer_norm_eps,
        "pad_token_id": 0,
        "model_type": "bert",
    })
}

/// A whitespace word-level tokenizer over [`WORDS`], with `padding` as given.
pub fn tiny_tokenizer(padding: Option<tokenizers::PaddingParams>) -> Result<Tokenizer, Error> {
    let vocab: HashMap<String, u32> = (0u32..)
        .zip(WORDS)
        .map(|(i, w)| (w.to_string(), i))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| Error::Encode {
            reason: e.to_string(),
        })?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    tokenizer.with_padding(padding);
    Ok(tokenizer)
}

/// The random weights of a tiny BERT (seeded by candle's RNG: different on every call).
fn tiny_weights() -> Result<(VarMap, BertModel), Error> {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    let model = BertModel::load(vb, &tiny_config())?;
    Ok((vars, model))
}

/// A tiny embedder in memory.
pub fn tiny_embedder() -> Result<Embedder, Error> {
    let (_, model) = tiny_weights()?;
    Embedder::new(model, tiny_tokenizer(None)?, 32)
}

/// Writes a tiny BERT folder (`config.json`, `tokenizer.json` padding to 32 like the real
/// all-MiniLM pads to 128, `model.safetensors`) into `dir`.
pub fn write_tiny_model(dir: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (vars, _) = tiny_weights()?;
    let weights = dir.join("model.safetensors");
    vars.save(&weights).map_err(|source| Error::Weights {
        path: weights.clone(),
        source,
    })?;
    let config = dir.join("config.json");
    std::fs::write(&config, config_json(&tiny_config()).to_string()).map_err(io(&config))?;
    let padding = tokenizers::PaddingParams {
        strategy: tokenizers::PaddingStrategy::Fixed(32),
        ..Default::default()
    };
    let tokenizer_path = dir.join("tokenizer.json");
    tiny_tokenizer(Some(padding))?
        .save(&tokenizer_path, false)
        .map_err(|e| Error::Tokenizer {
            path: tokenizer_path,
            reason: e.to_string(),
        })
}
