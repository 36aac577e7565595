//! `batch:`: how `run --batch` uses a provider's Batch API (what becomes of items a batch did
//! not answer, how often a batch is polled, how many requests go in one batch), read with its
//! positions and checked in range.

use domain::{BatchFailure, BatchSpec};

use super::review::keyword;
use crate::decode::{Ctx, fields};
use crate::yaml::Node;

const BATCH: &[&str] = &[
    "on_failure",
    "poll_seconds",
    "max_poll_seconds",
    "max_requests",
];

/// `batch:`; `None` when it is not a mapping (reported).
pub(super) fn batch(cx: &mut Ctx<'_>, node: &Node) -> Option<BatchSpec> {
    let f = fields(cx, node, "`batch`", BATCH, &[])?;
    let on_failure = keyword(
        cx,
        &f,
        "on_failure",
        "`on_failure`",
        &BatchFailure::ALL,
        BatchFailure::as_str,
    );
    let positive = "more than 0";
    let poll = f.number(cx, "poll_seconds", |x| x > 0.0, positive);
    let max_poll = f.number(cx, "max_poll_seconds", |x| x > 0.0, positive);
    let max_requests = f.uint(cx, "max_requests", 1);
    let mut spec = BatchSpec {
        on_failure: on_failure.unwrap_or_default(),
        ..BatchSpec::default()
    };
    if let Some(p) = &poll {
        spec.poll_seconds = p.value;
        spec.max_poll_seconds = spec.max_poll_seconds.max(p.value);
    }
    if let Some(m) = max_poll {
        if m.value < spec.poll_seconds {
            cx.error(
                m.pos,
                format!(
                    "`max_poll_seconds` must be at least `poll_seconds` ({}), found {}",
                    spec.poll_seconds, m.value
                ),
            );
        }
        spec.max_poll_seconds = m.value.max(spec.poll_seconds);
    }
    if let Some(n) = max_requests {
        spec.max_requests = usize::try_from(n.value).unwrap_or(usize::MAX);
    }
    Some(spec)
}
