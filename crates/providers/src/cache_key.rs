//! The response-cache key: a sha256 over everything that decides an answer (endpoint, model,
//! messages, generation parameters) and nothing that does not (the key, limits, the provider's
//! id), so two specs that send the same request share cached answers.
//!
//! The cache itself lives in `store`; this module only names its entries.

use domain::{GenerationParams, Message};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hashed document. A struct rather than a `json!` map: struct fields serialise in
/// declaration order whatever features `serde_json` is built with, so the bytes are canonical.
#[derive(Serialize)]
struct KeyDoc<'a> {
    v: u32,
    base_url: &'a str,
    model: &'a str,
    messages: Vec<KeyMessage<'a>>,
    params: KeyParams<'a>,
}

#[derive(Serialize)]
struct KeyMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct KeyParams<'a> {
    max_tokens: u32,
    temperature: f32,
    top_p: Option<f32>,
    stop: &'a [String],
    seed: Option<u64>,
    /// Absent for free-text requests, so their keys are those of earlier versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<&'a domain::Choices>,
}

/// Lowercase sha256 hex of a canonical JSON document of the request. The document has a fixed
/// field order and a version number (`"v": 1`), bumped whenever its shape changes, so old keys
/// simply stop matching. A trailing `/` on `base_url` does not change the key.
pub fn cache_key(
    base_url: &str,
    model: &str,
    messages: &[Message],
    params: &GenerationParams,
) -> String {
    let doc = KeyDoc {
        v: 1,
        base_url: base_url.trim_end_matches('/'),
        model,
        messages: messages
            .iter()
            .map(|m| KeyMessage {
                role: m.role.as_str(),
                content: &m.content,
            })
            .collect(),
        params: KeyParams {
            max_tokens: params.max_tokens,
            temperature: params.temperature,
            top_p: params.top_p,
            stop: &params.stop,
            seed: params.seed,
            choices: params.choices.as_ref(),
        },
    };
    // Serialising strings and numbers into memory does not fail (serde_json writes a NaN as
    // null). Should it ever, hash the Debug form: still distinct per request, never a panic.
    let bytes = serde_json::to_vec(&doc).unwrap_or_else(|_| {
        format!("v1 {base_url:?} {model:?} {messages:?} {params:?}").into_bytes()
    });
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(base: &str, msgs: &[Message], params: &GenerationParams) -> String {
        cache_key(base, "gpt-4o-mini", msgs, params)
    }

    /// Pinned: a change here silently invalidates every cached answer, so it must be deliberate
    /// (and come with a bump of `v`). Reference: Python's `hashlib.sha256` of the document
    /// `{"v":1,"base_url":"https://api.openai.com/v1","model":"gpt-4o-mini","messages":[{"role":
    /// "system","content":"s"},{"role":"user","content":"hi"}],"params":{"max_tokens":64,
    /// "temperature":0.0,"top_p":null,"stop":[],"seed":null}}` (no whitespace).
    #[test]
    fn key_is_pinned() {
        let msgs = [Message::system("s"), Message::user("hi")];
        let got = key(
            "https://api.openai.com/v1",
            &msgs,
            &GenerationParams::default(),
        );
        assert_eq!(
            got,
            "b26c70b4914bb6482caa18c6e6a19c096799016aa5001c670350089fc17525c9"
        );
    }

    #[test]
    fn stable_and_sensitive() {
        let msgs = [Message::system("s"), Message::user("hi")];
        let p = GenerationParams::default();
        let k = key("https://api.openai.com/v1", &msgs, &p);
        assert_eq!(k.len(), 64);
        assert_eq!(k, key("https://api.openai.com/v1/", &msgs, &p));
        assert_ne!(k, key("http://localhost:8000/v1", &msgs, &p));
        assert_ne!(k, key("https://api.openai.com/v1", &msgs[1..], &p));
        let swapped = [Message::user("s"), Message::system("hi")];
        assert_ne!(k, key("https://api.openai.com/v1", &swapped, &p));
        let hot = GenerationParams {
            temperature: 0.7,
            ..p.clone()
        };
        assert_ne!(k, key("https://api.openai.com/v1", &msgs, &hot));
        let labelled = GenerationParams {
            choices: Some(domain::Choices {
                labels: vec!["yes".into(), "no".into()],
                normalize: false,
            }),
            ..p.clone()
        };
        assert_ne!(k, key("https://api.openai.com/v1", &msgs, &labelled));
        assert_ne!(
            k,
            cache_key("https://api.openai.com/v1", "gpt-4o", &msgs, &p)
        );
    }
}
