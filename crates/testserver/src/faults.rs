//! Fault injection: which failure a request gets, decided from its prompt and its place in the
//! request sequence, so a test can make one item fail transiently, one fail forever, or every
//! k-th request fail.
//!
//! This module only decides; turning a [`Fault`] into bytes on the wire lives in `server.rs`.

use std::sync::Mutex;
use std::time::Duration;

/// A failure the server can answer with instead of a normal completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `429 Too Many Requests` with `Retry-After` (written as whole seconds when it is whole,
    /// else as a decimal, which lenient clients accept).
    RateLimited { retry_after_secs: f64 },
    /// `500 Internal Server Error` with an OpenAI-style error body.
    ServerError,
    /// Waits this long before answering normally: longer than a client's timeout, it looks like
    /// a hung server.
    Stall(Duration),
    /// `200 OK` whose body is not valid JSON.
    MalformedJson,
    /// `200 OK` announcing a `Content-Length` larger than the bytes sent, then closing the
    /// connection mid-body.
    TruncatedBody,
    /// `400 Bad Request` with an OpenAI-style `invalid_request_error` body.
    BadRequest,
    /// Answers with `status` and a body that echoes the request's `Authorization` header, like a
    /// careless proxy would: lets tests check that a client never lets its key reach an error.
    EchoAuthorization { status: u16 },
    /// `200 OK` whose message has `content: null` (and no refusal).
    NullContent,
    /// `200 OK` with `finish_reason: content_filter` and no content.
    ContentFilter,
    /// `200 OK` whose answer repeats the request's `Authorization` header: a server that echoes
    /// the key into the text a client stores.
    EchoKeyInAnswer,
    /// `200 OK` whose answer holds terminal escape sequences (clear screen, window title) and a
    /// bidi override.
    EscapeSequences,
    /// `200 OK` claiming this many prompt and completion tokens.
    HugeUsage { tokens: u32 },
}

impl Fault {
    /// Parses the command-line spelling: `rate-limited[:SECS]`, `server-error`, `stall:MS`,
    /// `malformed`, `truncated`, `bad-request`, `echo-authorization[:STATUS]`, `null-content`,
    /// `content-filter`, `echo-key`, `escapes`, `huge-usage[:TOKENS]`.
    pub fn parse(s: &str) -> Result<Fault, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let num = |default: f64| -> Result<f64, String> {
            arg.map_or(Ok(default), |a| {
                a.parse()
                    .map_err(|_| format!("bad number {a:?} in fault {s:?}"))
            })
        };
        Ok(match kind {
            "rate-limited" => Fault::RateLimited {
                retry_after_secs: num(1.0)?,
            },
            "server-error" => Fault::ServerError,
            "stall" => Fault::Stall(Duration::from_millis(num(60_000.0)? as u64)),
            "malformed" => Fault::MalformedJson,
            "truncated" => Fault::TruncatedBody,
            "bad-request" => Fault::BadRequest,
            "echo-authorization" => Fault::EchoAuthorization {
                status: num(400.0)? as u16,
            },
            "null-content" => Fault::NullContent,
            "content-filter" => Fault::ContentFilter,
            "echo-key" => Fault::EchoKeyInAnswer,
            "escapes" => Fault::EscapeSequences,
            "huge-usage" => Fault::HugeUsage {
                tokens: num(f64::from(u32::MAX))? as u32,
            },
            _ => return Err(format!("unknown fault kind {kind:?}")),
        })
    }
}

/// When a [`FaultRule`] fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The first `times` requests whose prompt (any message) contains `marker`; later ones
    /// succeed. Makes a specific item fail transiently.
    FirstN { marker: String, times: u32 },
    /// Every request whose prompt contains `marker`: a permanent failure.
    Always { marker: String },
    /// Every k-th request the server receives (the k-th, 2k-th, ...), whatever its prompt.
    EveryKth { k: u64 },
    /// Exactly the n-th request the server receives (1-based).
    Nth { n: u64 },
}

/// One rule of a [`FaultPlan`].
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub trigger: Trigger,
    pub fault: Fault,
}

/// Which requests fail, and how. Rules are checked in order; the first that fires decides.
/// The default plan injects nothing.
///
/// ```
/// # use testserver::{Fault, FaultPlan};
/// let plan = FaultPlan::none()
///     .first_n("item-7", 2, Fault::ServerError)   // item 7 fails twice, then succeeds
///     .always("item-9", Fault::BadRequest)         // item 9 never succeeds
///     .every_kth(10, Fault::RateLimited { retry_after_secs: 1.0 });
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// A plan that never injects a fault.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn rule(mut self, trigger: Trigger, fault: Fault) -> Self {
        self.rules.push(FaultRule { trigger, fault });
        self
    }

    /// The first `times` requests whose prompt contains `marker` get `fault`.
    pub fn first_n(self, marker: impl Into<String>, times: u32, fault: Fault) -> Self {
        let marker = marker.into();
        self.rule(Trigger::FirstN { marker, times }, fault)
    }

    /// Every request whose prompt contains `marker` gets `fault`.
    pub fn always(self, marker: impl Into<String>, fault: Fault) -> Self {
        let marker = marker.into();
        self.rule(Trigger::Always { marker }, fault)
    }

    /// Every k-th request gets `fault` (k = 0 never fires).
    pub fn every_kth(self, k: u64, fault: Fault) -> Self {
        self.rule(Trigger::EveryKth { k }, fault)
    }

    /// The n-th request (1-based) gets `fault`.
    pub fn nth(self, n: u64, fault: Fault) -> Self {
        self.rule(Trigger::Nth { n }, fault)
    }
}

/// A plan plus the per-rule counters that `FirstN` needs, shared by all request handlers.
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    /// How many times each rule has fired, indexed like `plan.rules`. One lock for the whole
    /// decision keeps "first N" exact when matching requests race.
    fired: Mutex<Vec<u32>>,
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        let fired = Mutex::new(vec![0; plan.rules.len()]);
        Self { plan, fired }
    }

    /// The fault for request number `index` (1-based) whose message texts are `prompt`.
    pub(crate) fn decide(&self, index: u64, prompt: &[&str]) -> Option<Fault> {
        if self.plan.rules.is_empty() {
            return None;
        }
        let contains = |marker: &str| prompt.iter().any(|m| m.contains(marker));
        // A poisoned lock only means another handler panicked mid-decision; the counters are
        // still meaningful, so keep using them.
        let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        for (i, rule) in self.plan.rules.iter().enumerate() {
            let fires = match &rule.trigger {
                Trigger::FirstN { marker, times } => fired[i] < *times && contains(marker),
                Trigger::Always { marker } => contains(marker),
                Trigger::EveryKth { k } => *k > 0 && index.is_multiple_of(*k),
                Trigger::Nth { n } => index == *n,
            };
            if fires {
                fired[i] = fired[i].saturating_add(1);
                return Some(rule.fault.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_all(plan: FaultPlan, prompts: &[&str]) -> Vec<Option<Fault>> {
        let state = FaultState::new(plan);
        prompts
            .iter()
            .enumerate()
            .map(|(i, p)| state.decide(i as u64 + 1, &[p]))
            .collect()
    }

    #[test]
    fn first_n_then_succeeds() {
        let plan = FaultPlan::none().first_n("x", 2, Fault::ServerError);
        let got = decide_all(plan, &["a x", "b", "x", "x"]);
        assert_eq!(
            got,
            vec![
                Some(Fault::ServerError),
                None,
                Some(Fault::ServerError),
                None
            ]
        );
    }

    #[test]
    fn always_and_every_kth_and_nth() {
        let plan = FaultPlan::none()
            .always("bad", Fault::BadRequest)
            .every_kth(3, Fault::MalformedJson)
            .nth(4, Fault::TruncatedBody);
        let got = decide_all(plan, &["bad", "a", "b", "c", "bad", "d"]);
        assert_eq!(
            got,
            vec![
                Some(Fault::BadRequest),
                None,
                Some(Fault::MalformedJson),
                Some(Fault::TruncatedBody),
                Some(Fault::BadRequest),
                Some(Fault::MalformedJson),
            ]
        );
    }
}
