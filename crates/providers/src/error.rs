//! Errors: [`Error`] for a client that cannot be built, [`CallError`] for a call that failed,
//! and the redaction that keeps an API key out of both.
//!
//! Every string a [`CallError`] carries passes through [`Redactor`] when the error is built, so
//! its `Display` and `Debug` are safe to log and to store. Which errors are retried is decided
//! here ([`CallError::is_retryable`]); when and how long to wait is `retry.rs`.

use std::time::Duration;

/// A [`crate::Client`] could not be built from its endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoint {endpoint}: base URL {url:?} is not an http(s) URL")]
    InvalidBaseUrl { endpoint: String, url: String },
    /// The key cannot be sent as an HTTP header (control characters, newline). The key itself
    /// is never part of the message.
    #[error("endpoint {endpoint}: the API key contains characters not allowed in an HTTP header")]
    InvalidApiKey { endpoint: String },
    #[error("endpoint {endpoint}: {field} must be at least 1")]
    InvalidLimit {
        endpoint: String,
        field: &'static str,
    },
    #[error("endpoint {endpoint}: cannot build the HTTP client")]
    HttpClient {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Why a call failed (after any retries). `Display` never contains the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The server answered with a non-success status.
    #[error("HTTP {status}: {body_excerpt}")]
    Http { status: u16, body_excerpt: String },
    /// An attempt did not finish within the endpoint's timeout.
    #[error("no complete response within {:.1} s", after.as_secs_f64())]
    Timeout { after: Duration },
    /// Connecting or sending failed, or the connection broke before a response arrived.
    #[error("connection failed: {message}")]
    Connection { message: String },
    /// The response body ended before it was complete.
    #[error("response body cut off: {message}")]
    Truncated { message: String },
    /// A success status with a body that is not a chat completion.
    #[error("malformed response ({reason}): {body_excerpt}")]
    Malformed {
        reason: String,
        body_excerpt: String,
    },
    /// The request could not be built or sent at all (a client-side problem; never retried).
    #[error("invalid request: {message}")]
    InvalidRequest { message: String },
    /// A success status whose choice holds no answer: `content: null` without a refusal, or
    /// an answer withheld by the provider's content filter. Billed, so not retried at once
    /// (another attempt would be billed again); a new run retries it.
    #[error("no answer: {reason}")]
    NoAnswer { reason: String },
    /// A batch did not answer this request (OpenAI's per-line `error`: `batch_expired`,
    /// `batch_cancelled`, ...); nothing was billed. Whether to ask again in real time is the
    /// caller's choice, so it is not retried here.
    #[error("not answered in the batch: {code}: {message}")]
    Batch { code: String, message: String },
}

impl CallError {
    /// Whether another attempt may succeed: rate limits (429), request timeouts (408), server
    /// errors (5xx), timeouts, broken connections and truncated or malformed bodies. Other 4xx
    /// mean the request itself is wrong and fail at once.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Http { status, .. } => {
                *status == 429 || *status == 408 || (500..=599).contains(status)
            }
            CallError::Timeout { .. }
            | CallError::Connection { .. }
            | CallError::Truncated { .. }
            | CallError::Malformed { .. } => true,
            CallError::InvalidRequest { .. }
            | CallError::NoAnswer { .. }
            | CallError::Batch { .. } => false,
        }
    }

    /// The HTTP status, for `Http` errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Longest body excerpt an error keeps, in characters.
const EXCERPT_CHARS: usize = 300;

/// Removes the endpoint's API key, and any bearer token, from text that came from the network
/// or from a library's error message, and shortens it to an excerpt.
#[derive(Clone)]
pub(crate) struct Redactor {
    key: Option<domain::Secret>,
}

impl Redactor {
    pub(crate) fn new(key: Option<domain::Secret>) -> Self {
        // An empty key would "redact" between every character.
        let key = key.filter(|k| !k.expose().is_empty());
        Self { key }
    }

    /// `text` with the key and bearer tokens replaced by `****`, whitespace collapsed, cut to
    /// an excerpt. Redaction happens before cutting, so a key straddling the cut cannot leave a
    /// prefix behind.
    pub(crate) fn excerpt(&self, text: &str) -> String {
        let redacted = self.redact(text);
        let collapsed = redacted.split_whitespace().collect::<Vec<_>>().join(" ");
        match collapsed.char_indices().nth(EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}…", &collapsed[..cut]),
            None => collapsed,
        }
    }

    /// `text` with the key replaced by `****`, and nothing else changed: for answers, which
    /// are stored and cached whole (a server that echoes the key must not get it stored).
    pub(crate) fn redact_key(&self, text: &str) -> String {
        match &self.key {
            Some(key) if text.contains(key.expose()) => text.replace(key.expose(), "****"),
            _ => text.to_owned(),
        }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = match &self.key {
            Some(key) => text.replace(key.expose(), "****"),
            None => text.to_owned(),
        };
        // Whatever follows "Bearer " is a credential, ours or another one a proxy echoed.
        let mut from = 0;
        while let Some(pos) = find_ascii_case_insensitive(&out[from..], "bearer ") {
            let start = from + pos + "bearer ".len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '}'))
                .map_or(out.len(), |n| start + n);
            let token = &out[start..end];
            if token.is_empty() || token == "****" {
                from = end;
            } else {
                out.replace_range(start..end, "****");
                from = start + "****".len();
            }
        }
        out
    }
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(Some(domain::Secret::new("sk-live-abc123")))
    }

    #[test]
    fn removes_key_and_bearer_tokens() {
        let r = redactor();
        assert_eq!(
            r.redact(r#"{"auth":"Bearer sk-live-abc123","x":"key sk-live-abc123"}"#),
            r#"{"auth":"Bearer ****","x":"key ****"}"#
        );
        assert_eq!(
            r.redact("authorization: bearer other-token; ok"),
            "authorization: bearer ****; ok"
        );
        assert_eq!(r.redact("Bearer "), "Bearer ");
    }

    #[test]
    fn redacts_before_cutting() {
        let r = redactor();
        let text = format!("{}sk-live-abc123", "x".repeat(EXCERPT_CHARS - 3));
        let excerpt = r.excerpt(&text);
        assert!(!excerpt.contains("sk-"), "{excerpt}");
        assert!(excerpt.ends_with('…'));
    }

    #[test]
    fn retryable_classes() {
        let http = |status| CallError::Http {
            status,
            body_excerpt: String::new(),
        };
        assert!(http(429).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(401).is_retryable());
        assert!(
            CallError::Timeout {
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
    }
}
