//! Selective human review as a spec states it: `review:` (which answers go to people, chosen
//! with a guarantee on a calibration split of the eval set) and `costs.review:` (what a review
//! costs). The statistics are `scoring`'s, the report's use of them `report`'s.

use serde::{Deserialize, Serialize};

/// How the guarantee is kept over the many thresholds tried (Learn-then-Test's family-wise
/// error control).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewCorrection {
    /// Thresholds tested from the highest down, each at level `delta`, stopping at the first
    /// that fails: no price for trying many, but one failure ends the search.
    FixedSequence,
    /// Every threshold tested at `delta / m`.
    Bonferroni,
}

impl ReviewCorrection {
    pub const ALL: [ReviewCorrection; 2] = [
        ReviewCorrection::FixedSequence,
        ReviewCorrection::Bonferroni,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewCorrection::FixedSequence => "fixed_sequence",
            ReviewCorrection::Bonferroni => "bonferroni",
        }
    }
}

/// `review:` in the YAML: answer automatically only where the arm's confidence is high enough
/// that accuracy on the automated share is at least `target_accuracy` with probability at
/// least `1 − delta`; everything else goes to a person.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReviewSpec {
    /// Accuracy the automated answers must keep, in (0, 1).
    pub target_accuracy: f64,
    /// Allowed probability that the guarantee fails, in (0, 1). Default 0.1.
    pub delta: f64,
    /// Share of the eval items set aside to choose the threshold, in (0, 1); they are left out
    /// of every quality figure. Default 0.5.
    pub calibration: f64,
    /// Default fixed sequence.
    pub correction: ReviewCorrection,
    /// Seed of the calibration split. Default 7.
    pub seed: u64,
}

impl ReviewSpec {
    pub const DEFAULT_DELTA: f64 = 0.1;
    pub const DEFAULT_CALIBRATION: f64 = 0.5;
    pub const DEFAULT_SEED: u64 = 7;
}

/// `costs.review:` in the YAML: what one human review costs. Either figure may be given; the
/// money comes from `cost_per_review_usd` when given, else `minutes_per_review` × the staff
/// hourly rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewCosts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_review_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_per_review: Option<f64>,
}

impl ReviewCosts {
    /// Minutes a review takes when the spec names only a price. Default 1.5.
    pub const DEFAULT_MINUTES: f64 = 1.5;

    /// Dollars of one review at `hourly_rate_usd` an hour of staff time.
    pub fn cost_per_review(&self, hourly_rate_usd: f64) -> f64 {
        self.cost_per_review_usd
            .unwrap_or_else(|| self.minutes() / 60.0 * hourly_rate_usd)
    }

    /// Minutes of one review.
    pub fn minutes(&self) -> f64 {
        self.minutes_per_review.unwrap_or(Self::DEFAULT_MINUTES)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_review_costs_its_price_or_its_minutes_at_the_staff_rate() {
        let priced = ReviewCosts {
            cost_per_review_usd: Some(0.4),
            minutes_per_review: Some(3.0),
        };
        assert_eq!(priced.cost_per_review(90.0), 0.4);
        let timed = ReviewCosts {
            cost_per_review_usd: None,
            minutes_per_review: Some(2.0),
        };
        assert!((timed.cost_per_review(90.0) - 3.0).abs() < 1e-12);
        assert!((ReviewCosts::default().cost_per_review(60.0) - 1.5).abs() < 1e-12);
        for c in ReviewCorrection::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", c.as_str()),
                "the YAML spelling is the JSON one"
            );
        }
    }
}
