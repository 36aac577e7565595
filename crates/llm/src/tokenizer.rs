//! The model's tokenizer: `tokenizer.json` beside the weights when there is one, else a
//! byte-level BPE rebuilt from the GGUF metadata (`tokenizer.ggml.tokens`, `merges`,
//! `token_type`, bos/eos/pad ids and the `pre` tokenizer name).
//!
//! The pre-tokenizer must match the one the model was trained with or ids silently differ:
//! SmolLM2 (`pre = "smollm"`) splits digits one by one, then applies GPT-2's byte-level regex
//! without a prefix space; Llama 3 and Qwen2 use their own split regexes; anything else gets
//! GPT-2's. Control and user-defined tokens (`token_type` 3 and 4, e.g. `<|im_start|>`) are
//! added as special tokens so they stay single tokens when they appear in formatted chat text.
//!
//! Not here: chat formatting (`chat.rs`). `encode` never adds BOS/EOS: chat templates write
//! them as text.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::Error;
use crate::weights::{meta_str, meta_u32};

/// GGUF `token_type` values that mark a token as special: 3 control, 4 user-defined.
const SPECIAL_TOKEN_TYPES: [i64; 2] = [3, 4];

const REGEX_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer plus the ids generation needs.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    pad_id: Option<u32>,
}

impl Tokenizer {
    /// Reads a Hugging Face `tokenizer.json`. `eos_ids` come from the model's config.
    pub fn from_file(path: &Path, bos_id: Option<u32>, eos_ids: Vec<u32>) -> Result<Self, Error> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            message: format!("{}: {e}", path.display()),
        })?;
        let pad_id = eos_ids.first().copied();
        Ok(Self {
            inner,
            bos_id,
            eos_ids,
            pad_id,
        })
    }

    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(content: &Content) -> Result<Self, Error> {
        let missing = |key: &str| Error::MissingMetadata { key: key.into() };
        let model = meta_str(content, "tokenizer.ggml.model").unwrap_or("gpt2");
        if model != "gpt2" {
            return Err(Error::Tokenizer {
                message: format!(
                    "GGUF tokenizer model {model:?} is not supported (only byte-level BPE, \"gpt2\"); put a tokenizer.json beside the model"
                ),
            });
        }
        let tokens = string_array(content, "tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = string_array(content, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_string(), b.to_string())),
                None => Err(Error::Tokenizer {
                    message: format!("invalid BPE merge {m:?}"),
                }),
            })
            .collect::<Result<_, _>>()?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(Error::tokenizer)?;
        let mut inner = tokenizers::Tokenizer::new(bpe);

        let pre = meta_str(content, "tokenizer.ggml.pre").unwrap_or("gpt2");
        inner.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
        if pre == "qwen2" {
            inner.with_normalizer(Some(NFC)).map_err(Error::tokenizer)?;
        }
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let bos_id = meta_u32(content, "tokenizer.ggml.bos_token_id");
        let eos_id = meta_u32(content, "tokenizer.ggml.eos_token_id");
        let pad_id = meta_u32(content, "tokenizer.ggml.padding_token_id").or(eos_id);
        let mut special: Vec<u32> = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(types)) => types
                .iter()
                .enumerate()
                .filter(|(_, v)| int(v).is_some_and(|t| SPECIAL_TOKEN_TYPES.contains(&t)))
                .map(|(i, _)| i as u32)
                .collect(),
            _ => Vec::new(),
        };
        special.extend(bos_id);
        special.extend(eos_id);
        special.extend(pad_id);
        special.sort_unstable();
        special.dedup();
        let added: Vec<AddedToken> = special
            .iter()
            .filter_map(|&i| tokens.get(i as usize))
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(added).map_err(Error::tokenizer)?;
        let eos_ids = match eos_id {
            Some(e) => vec![e],
            None => return Err(missing("tokenizer.ggml.eos_token_id")),
        };
        Ok(Self {
            inner,
            bos_id,
            eos_ids,
            pad_id,
        })
    }

    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`) become their
    /// single ids. Adds no BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(Error::tokenizer)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; with `skip_special`, special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, Error> {
        self.inner
            .decode(ids, skip_special)
            .map_err(Error::tokenizer)
    }

    /// The id of a token written exactly as in the vocabulary (`<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Ids that end a sequence (the model's EOS; the chat template's end-of-turn token is
    /// added by [`crate::LocalModel`]).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Adds an id that ends generation.
    pub fn add_eos_id(&mut self, id: u32) {
        if !self.eos_ids.contains(&id) {
            self.eos_ids.push(id);
        }
    }

    /// The id used to pad batches (never attended to).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
            .or_else(|| self.eos_ids.first().copied())
            .unwrap_or(0)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn int(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::I64(x) => *x,
        Value::U64(x) => i64::try_from(*x).ok()?,
        _ => return None,
    })
}

fn string_array(content: &Content, key: &str) -> Result<Vec<String>, Error> {
    match content.metadata.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Error::MissingMetadata { key: key.into() }),
            })
            .collect(),
        _ => Err(Error::MissingMetadata { key: key.into() }),
    }
}

/// The pre-tokenizer llama.cpp's `tokenizer.ggml.pre` name stands for.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, Error> {
    let split = |regex: &str| -> Result<PreTokenizerWrapper, Error> {
        let split = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(Error::tokenizer)?;
        Ok(split.into())
    };
    Ok(match pre {
        // SmolLM2's tokenizer.json: digits one by one, then GPT-2's byte-level regex.
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "llama3" | "llama-bpe" | "smaug-bpe" => Sequence::new(vec![
            split(REGEX_LLAMA3)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        "qwen2" => Sequence::new(vec![
            split(REGEX_QWEN2)?,
            ByteLevel::new(false, false, false).into(),
        ])
        .into(),
        other => {
            if other != "gpt2" && other != "default" {
                tracing::warn!(pre = %other, "unknown GGUF pre-tokenizer, using GPT-2's");
            }
            ByteLevel::new(false, true, true).into()
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A GGUF header with a tiny byte-level vocabulary: every byte's symbol, a few merges, and
    /// ChatML's control tokens.
    pub(crate) fn tiny_gguf() -> Content {
        let mut tokens: Vec<String> = vec![
            "<|endoftext|>".into(),
            "<|im_start|>".into(),
            "<|im_end|>".into(),
        ];
        let mut types: Vec<Value> = vec![Value::I32(3); 3];
        // The 256 byte symbols of byte-level BPE, in the usual order.
        let bytes: Vec<char> = byte_symbols();
        for c in &bytes {
            tokens.push(c.to_string());
            types.push(Value::I32(1));
        }
        let merges = ["h e", "he l", "hel l", "hell o", "Ġ w", "Ġw o"];
        for m in merges {
            tokens.push(m.replace(' ', ""));
            types.push(Value::I32(1));
        }
        let mut metadata = std::collections::HashMap::new();
        let strs = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
        metadata.insert(
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        );
        metadata.insert(
            "tokenizer.ggml.pre".to_string(),
            Value::String("smollm".into()),
        );
        metadata.insert("tokenizer.ggml.tokens".to_string(), strs(tokens));
        metadata.insert(
            "tokenizer.ggml.merges".to_string(),
            strs(merges.iter().map(|s| s.to_string()).collect()),
        );
        metadata.insert("tokenizer.ggml.token_type".to_string(), Value::Array(types));
        metadata.insert("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1));
        metadata.insert("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2));
        Content {
            magic: candle_core::quantized::gguf_file::VersionedMagic::GgufV3,
            metadata,
            tensor_infos: std::collections::HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    /// GPT-2's byte → unicode table.
    pub(crate) fn byte_symbols() -> Vec<char> {
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

    #[test]
    fn gguf_tokenizer_round_trips_and_keeps_specials_whole() {
        let tok = Tokenizer::from_gguf(&tiny_gguf()).unwrap();
        let ids = tok.encode("<|im_start|>hello world<|im_end|>").unwrap();
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
        // "hello" is one merged token.
        let hello = tok.token_id("hello").unwrap();
        assert_eq!(ids.get(1), Some(&hello));
        for text in [
            "hello world",
            "digits 12345 and 3.14",
            "new\nlines\n\n  spaced",
            "unicode: héllo wörld — 日本語 🎉",
            "<|im_start|>user\nhi<|im_end|>\n",
        ] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
        // Digits split one by one.
        assert_eq!(tok.encode("123").unwrap().len(), 3);
        assert_eq!(tok.decode(&[1, hello, 2], true).unwrap(), "hello");
    }
}
