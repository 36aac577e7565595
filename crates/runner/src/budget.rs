//! `budget.max_cost_usd`, enforced before money is spent: every hosted call reserves its
//! worst-case cost before it is scheduled, and the reservation is settled with the measured cost
//! when the call returns. Scheduling stops at the first call whose reservation would not fit, so
//! the money spent never passes the limit as long as estimates are upper bounds.
//!
//! It is plain arithmetic owned by the scheduler loop; it holds no lock and knows no provider.

use domain::{Message, Pricing};

/// Extra prompt tokens assumed per message for the chat format's framing.
const TOKENS_PER_MESSAGE: u64 = 8;

#[derive(Debug, Clone)]
pub(crate) struct Budget {
    limit: Option<f64>,
    spent: f64,
    reserved: f64,
}

impl Budget {
    /// `spent` is what the run already cost before this invocation (a resumed run).
    pub(crate) fn new(limit: Option<f64>, spent: f64) -> Self {
        Self {
            limit,
            spent,
            reserved: 0.0,
        }
    }

    /// Reserves `estimate` dollars; false when that could take spending past the limit.
    pub(crate) fn try_reserve(&mut self, estimate: f64) -> bool {
        match self.limit {
            Some(limit) if self.spent + self.reserved + estimate > limit => false,
            _ => {
                self.reserved += estimate;
                true
            }
        }
    }

    /// Reserves `estimate` dollars whatever the limit: for calls already paid for, such as the
    /// requests of a batch submitted by an earlier invocation.
    pub(crate) fn commit(&mut self, estimate: f64) {
        self.reserved += estimate;
    }

    /// Replaces a reservation with what the call really cost.
    pub(crate) fn settle(&mut self, estimate: f64, actual: f64) {
        self.reserved = (self.reserved - estimate).max(0.0);
        self.spent += actual;
    }

    pub(crate) fn spent(&self) -> f64 {
        self.spent
    }

    pub(crate) fn limit(&self) -> Option<f64> {
        self.limit
    }
}

/// Prompt tokens of `messages`, estimated generously (a quarter more than the estimator says,
/// plus the per-message framing), so that budget reservations stay upper bounds.
pub(crate) fn prompt_tokens_upper_bound(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| {
            let t = u64::from(providers::estimate_tokens(&m.content));
            t + t / 4 + TOKENS_PER_MESSAGE
        })
        .sum()
}

/// The most a call with these messages can cost: the estimated prompt plus `max_tokens` of answer.
pub(crate) fn call_cost_upper_bound(
    messages: &[Message],
    max_tokens: u32,
    pricing: &Pricing,
) -> f64 {
    pricing.cost(prompt_tokens_upper_bound(messages), u64::from(max_tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_pass_the_limit() {
        let mut b = Budget::new(Some(1.0), 0.25);
        assert!(b.try_reserve(0.5));
        assert!(!b.try_reserve(0.5), "0.25 spent + 0.5 reserved + 0.5 > 1.0");
        b.settle(0.5, 0.1);
        assert!((b.spent() - 0.35).abs() < 1e-12);
        assert!(b.try_reserve(0.6));
        assert!(!b.try_reserve(0.1));
    }

    #[test]
    fn no_limit_always_fits() {
        let mut b = Budget::new(None, 100.0);
        assert!(b.try_reserve(1e9));
    }
}
