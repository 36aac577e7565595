//! The one index of a run's results that every view reads — leaderboard, compare, the cost
//! model, the decision and the HTML page: the eval items in run order, each arm's calls, which
//! calls succeeded ([`succeeded`], the only place that rule is written), and every score.
//!
//! It only looks records up; what a view makes of them (a mean, a CI, a price) is the view's.

use std::collections::{BTreeSet, HashMap};

use domain::{CallRecord, RunResults};

/// A call that produced an answer: no error, and a response.
pub(crate) fn succeeded(c: &CallRecord) -> bool {
    c.error.is_none() && c.response.is_some()
}

/// The run's records keyed for per-arm and per-item lookups.
pub(crate) struct ResultIndex<'a> {
    /// Eval item ids in run order: the stored items, or (when none were stored) the distinct
    /// items the calls name, sorted.
    pub items: Vec<&'a str>,
    /// (arm, item) → its call.
    calls: HashMap<(&'a str, &'a str), &'a CallRecord>,
    /// arm → its calls, in stored order.
    by_arm: HashMap<&'a str, Vec<&'a CallRecord>>,
    /// (arm, item, scorer) → value.
    scores: HashMap<(&'a str, &'a str, &'a str), f64>,
    /// Whether the run is finished ([`domain::RunStatus::is_finished`]).
    finished: bool,
}

impl<'a> ResultIndex<'a> {
    pub(crate) fn new(results: &'a RunResults) -> Self {
        let items = if results.items.is_empty() {
            let named: BTreeSet<&str> = results.calls.iter().map(|c| c.item_id.as_str()).collect();
            named.into_iter().collect()
        } else {
            results.items.iter().map(|i| i.item_id.as_str()).collect()
        };
        let mut by_arm: HashMap<&str, Vec<&CallRecord>> = HashMap::new();
        for c in &results.calls {
            by_arm.entry(c.arm.as_str()).or_default().push(c);
        }
        ResultIndex {
            finished: results.run.status.is_finished(),
            items,
            calls: results
                .calls
                .iter()
                .map(|c| ((c.arm.as_str(), c.item_id.as_str()), c))
                .collect(),
            by_arm,
            scores: results
                .scores
                .iter()
                .map(|s| {
                    (
                        (s.arm.as_str(), s.item_id.as_str(), s.scorer.as_str()),
                        s.value,
                    )
                })
                .collect(),
        }
    }

    /// The call of `arm` for `item`, if one was recorded.
    pub(crate) fn call(&self, arm: &str, item: &str) -> Option<&'a CallRecord> {
        self.calls.get(&(arm, item)).copied()
    }

    /// Every call of `arm`, failed ones included.
    pub(crate) fn arm_calls(&self, arm: &str) -> &[&'a CallRecord] {
        self.by_arm.get(arm).map_or(&[], Vec::as_slice)
    }

    /// The successful calls of `arm`.
    pub(crate) fn ok_calls(&self, arm: &str) -> Vec<&'a CallRecord> {
        self.arm_calls(arm)
            .iter()
            .copied()
            .filter(|c| succeeded(c))
            .collect()
    }

    /// The successful calls that say what production traffic would see: the uncached ones, or
    /// all of them when every one came from the cache.
    pub(crate) fn fresh_ok_calls(&self, arm: &str) -> Vec<&'a CallRecord> {
        let ok = self.ok_calls(arm);
        let fresh: Vec<&CallRecord> = ok.iter().copied().filter(|c| !c.cache_hit).collect();
        if fresh.is_empty() { ok } else { fresh }
    }

    /// Latencies of [`Self::fresh_ok_calls`], in milliseconds.
    pub(crate) fn latencies(&self, arm: &str) -> Vec<f64> {
        self.fresh_ok_calls(arm)
            .iter()
            .map(|c| c.latency_ms)
            .collect()
    }

    /// The metric of one item as quality counts it; `None` when it counts as an error (no
    /// successful call, or no score of `metric`).
    pub(crate) fn value(&self, arm: &str, item: &str, metric: &str) -> Option<f64> {
        let answered = self.call(arm, item).is_some_and(succeeded);
        if !answered {
            return None;
        }
        self.scores.get(&(arm, item, metric)).copied()
    }

    /// One value per item (errors as 0), and the number of errors.
    pub(crate) fn values(&self, arm: &str, metric: &str) -> (Vec<f64>, usize) {
        let mut errors = 0;
        let values = self
            .items
            .iter()
            .map(|item| {
                self.value(arm, item, metric).unwrap_or_else(|| {
                    errors += 1;
                    0.0
                })
            })
            .collect();
        (values, errors)
    }

    /// Eval items `arm` has no call for at all, in a run that is not finished: not asked yet.
    /// They count 0 in quality like an error, but are not failures. In a finished run an item
    /// left without a call is an error (0 here).
    pub(crate) fn unanswered(&self, arm: &str) -> usize {
        if self.finished {
            return 0;
        }
        self.items
            .iter()
            .filter(|item| self.call(arm, item).is_none())
            .count()
    }

    /// Whether some arm has a score of `metric`.
    pub(crate) fn has_scores(&self, metric: &str) -> bool {
        self.scores.keys().any(|(_, _, m)| *m == metric)
    }

    /// Whether `metric` has scores and every one of them is 0 or 1 (pass/fail).
    pub(crate) fn is_binary(&self, metric: &str) -> bool {
        let mut any = false;
        for (&(_, _, m), &v) in &self.scores {
            if m == metric {
                any = true;
                if v != 0.0 && v != 1.0 {
                    return false;
                }
            }
        }
        any
    }
}
