//! The OpenAI chat-completions wire format, as much of it as a test double needs: parsing a
//! request, choosing a deterministic answer, counting tokens, and writing the response and error
//! bodies.
//!
//! Token counts are whitespace-separated words, not a real tokenizer: deterministic and cheap,
//! which is all tests and benchmarks need. Nothing here does IO.

use serde::Deserialize;
use serde_json::{Value, json};

/// The fields of a chat-completions request the server looks at; everything else is accepted
/// and ignored, as a lenient real server would.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    #[serde(default)]
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Kept raw: [`crate::structured::shape`] reads it.
    #[serde(default)]
    pub response_format: Option<Value>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Value,
}

impl WireMessage {
    /// The message text: a plain string, or the text parts of a content array joined by `\n`.
    pub fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

impl ChatRequest {
    pub fn texts(&self) -> Vec<String> {
        self.messages.iter().map(WireMessage::text).collect()
    }

    /// The last message with role `user`, or "" when there is none.
    pub fn last_user_message(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(WireMessage::text)
            .unwrap_or_default()
    }

    pub fn answer_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// FNV-1a, 64 bit: a hash that is stable across processes, platforms and Rust versions (unlike
/// `std`'s `DefaultHasher`), so "pick an answer by hash" gives the same answer everywhere.
pub fn prompt_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The deterministic token count the server reports: whitespace-separated words.
pub fn count_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// Picks the answer for a last user message: the first rule whose key it contains, else a
/// default answer chosen by [`prompt_hash`], else `"ok"`.
pub(crate) fn choose_answer(
    rules: &[(String, String)],
    defaults: &[String],
    last_user: &str,
) -> String {
    if let Some((_, answer)) = rules.iter().find(|(k, _)| last_user.contains(k.as_str())) {
        return answer.clone();
    }
    if defaults.is_empty() {
        return "ok".to_owned();
    }
    // The modulo keeps the index below `defaults.len()`, which fits in usize.
    let i = (prompt_hash(last_user) % defaults.len() as u64) as usize;
    defaults[i].clone()
}

/// Cuts `answer` to at most `limit` words. Returns the text and whether it was cut.
pub(crate) fn limit_answer(answer: String, limit: Option<u32>) -> (String, bool) {
    match limit {
        Some(limit) if count_tokens(&answer) > limit => {
            let cut = answer
                .split_whitespace()
                .take(limit as usize)
                .collect::<Vec<_>>()
                .join(" ");
            (cut, true)
        }
        _ => (answer, false),
    }
}

/// A `chat.completion` response body; `logprobs` is the choice's `logprobs` block, if asked for.
pub(crate) fn completion_body(
    index: u64,
    model: &str,
    answer: &str,
    truncated: bool,
    prompt_tokens: u32,
    logprobs: Option<&Value>,
) -> Vec<u8> {
    let completion_tokens = count_tokens(answer);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut body = json!({
        "id": format!("chatcmpl-test-{index}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": answer },
            "finish_reason": if truncated { "length" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens.saturating_add(completion_tokens),
        },
    });
    if let Some(logprobs) = logprobs {
        body["choices"][0]["logprobs"] = logprobs.clone();
    }
    body.to_string().into_bytes()
}

/// An OpenAI-style error body: `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn error_body(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    error_body_for(message, kind, code, None)
}

/// [`error_body`] naming the request parameter at fault.
pub(crate) fn error_body_for(
    message: &str,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Vec<u8> {
    json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic() {
        let rules = vec![("great".to_owned(), "positive".to_owned())];
        let defaults = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(choose_answer(&rules, &defaults, "a great film"), "positive");
        let first = choose_answer(&rules, &defaults, "meh");
        assert_eq!(first, choose_answer(&rules, &defaults, "meh"));
        assert_eq!(choose_answer(&[], &[], "anything"), "ok");
        // FNV-1a reference value for "a" (from the FNV specification's test vectors).
        assert_eq!(prompt_hash("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn limits_and_counts() {
        assert_eq!(count_tokens("  one two\nthree "), 3);
        assert_eq!(
            limit_answer("a b c".into(), Some(2)),
            ("a b".to_owned(), true)
        );
        assert_eq!(
            limit_answer("a b".into(), Some(2)),
            ("a b".to_owned(), false)
        );
    }

    #[test]
    fn parses_string_and_array_content() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"system","content":"s"},
                {"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":"there"}]}]}"#,
        )
        .unwrap();
        assert_eq!(req.last_user_message(), "hi\nthere");
        assert_eq!(req.texts(), vec!["s", "hi\nthere"]);
    }
}
