//! The break-even daily volume between a prompt arm and a fine-tune: the traffic at which their
//! totals over the horizon are equal, which arm is cheaper on either side of it, and the equation
//! with its numbers substituted, so a reader can redo it.
//!
//! It solves one linear equation on two [`ArmCost`]s; the costs themselves come from `cost`.

use serde::{Deserialize, Serialize};

use crate::cost::{ArmCost, DAYS_PER_MONTH};
use crate::figures::num;

/// The daily volume at which a fine-tune's horizon total equals a prompt arm's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakEven {
    pub prompt_arm: String,
    pub finetune_arm: String,
    /// Requests a day at which both totals are equal; `None` ("never") when no positive volume
    /// makes them equal.
    pub daily_requests: Option<f64>,
    /// The cheaper arm over the horizon as traffic approaches zero…
    pub cheaper_at_low_volume: String,
    /// …and as traffic grows without bound. They differ exactly when a break-even exists.
    pub cheaper_at_high_volume: String,
    /// The equation solved, with the numbers substituted.
    pub formula: String,
}

/// Solves `total_prompt(v) = total_finetune(v)` for the daily volume `v`, where
/// `total(v) = A + H·v·c` with `A = upfront + H/30.4375 × fixed_monthly` and `H = horizon_days`:
/// `v = (A_ft − A_p) / (H × (c_p − c_ft))`. Positive `v` is a break-even; anything else
/// (negative, or parallel lines) is "never".
pub fn break_even(
    prompt: (&str, &ArmCost),
    finetune: (&str, &ArmCost),
    horizon_days: f64,
) -> BreakEven {
    let (p_name, p) = prompt;
    let (f_name, f) = finetune;
    let months = horizon_days / DAYS_PER_MONTH;
    let a_p = p.volume_independent(horizon_days);
    let a_f = f.volume_independent(horizon_days);
    let numerator = a_f - a_p;
    let denominator = horizon_days * (p.cost_per_request_usd - f.cost_per_request_usd);
    let solved = numerator / denominator;
    let daily_requests =
        (denominator != 0.0 && solved.is_finite() && solved > 0.0).then_some(solved);
    // Which arm is cheaper at the two ends; ties go to the prompt arm (no migration needed).
    let low = if a_f < a_p || (a_f == a_p && f.cost_per_request_usd < p.cost_per_request_usd) {
        f_name
    } else {
        p_name
    };
    let high = if f.cost_per_request_usd < p.cost_per_request_usd
        || (f.cost_per_request_usd == p.cost_per_request_usd && a_f < a_p)
    {
        f_name
    } else {
        p_name
    };
    let outcome = match daily_requests {
        Some(v) => format!("{} requests/day", num(v)),
        None if denominator == 0.0 => {
            "never (equal per-request cost: the totals differ by the same amount at every volume)"
                .to_owned()
        }
        None => format!("{} → never (no positive volume)", num(solved)),
    };
    let formula = format!(
        "daily_requests = (A_ft − A_p) / (H × (c_p − c_ft)), A = upfront + H/{DAYS_PER_MONTH} × fixed_monthly, H = {h} days: \
         ((${uf} + {m} × ${ff}) − (${up} + {m} × ${fp})) / ({h} × (${cp} − ${cf})) = ${n} / ${d} = {outcome}",
        h = num(horizon_days),
        m = num(months),
        uf = num(f.upfront_usd),
        ff = num(f.fixed_monthly_usd),
        up = num(p.upfront_usd),
        fp = num(p.fixed_monthly_usd),
        cp = num(p.cost_per_request_usd),
        cf = num(f.cost_per_request_usd),
        n = num(numerator),
        d = num(denominator),
    );
    BreakEven {
        prompt_arm: p_name.to_owned(),
        finetune_arm: f_name.to_owned(),
        daily_requests,
        cheaper_at_low_volume: low.to_owned(),
        cheaper_at_high_volume: high.to_owned(),
        formula,
    }
}

#[cfg(test)]
mod tests {
    use domain::{ArmKind, CostAssumptions};

    use super::*;
    use crate::cost::{Measured, PricingUsed, arm_cost};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    fn cost(cpr: f64, upfront: f64, fixed: f64) -> ArmCost {
        let m = Measured::default();
        let mut c = arm_cost(
            ArmKind::Prompt,
            &m,
            PricingUsed::Hosted {
                pricing: None,
                batch_api: false,
            },
            &CostAssumptions::default(),
        );
        c.cost_per_request_usd = cpr;
        c.upfront_usd = upfront;
        c.fixed_monthly_usd = fixed;
        c
    }

    #[test]
    fn break_even_by_hand() {
        // Prompt: $0.01/request, $500 upfront. Fine-tune: $0.001/request, $4,000 upfront,
        // $0 fixed, over 100 days:
        // v = (4000 − 500) / (100 × (0.01 − 0.001)) = 3500 / 0.9 = 3888.888…
        let p = cost(0.01, 500.0, 0.0);
        let f = cost(0.001, 4000.0, 0.0);
        let b = break_even(("p", &p), ("f", &f), 100.0);
        let v = b.daily_requests.unwrap_or(f64::NAN);
        assert!(close(v, 3500.0 / 0.9));
        assert!(close(p.total_at(v, 100.0), f.total_at(v, 100.0)));
        assert_eq!(
            (
                b.cheaper_at_low_volume.as_str(),
                b.cheaper_at_high_volume.as_str()
            ),
            ("p", "f")
        );
        assert!(b.formula.contains("3888.89 requests/day"), "{}", b.formula);
        assert!(b.formula.contains("$3500 / $0.9"), "{}", b.formula);
    }

    #[test]
    fn break_even_with_monthly_costs_by_hand() {
        // Fine-tune adds $304.375/month: over 304.375 days that is 10 months = $3043.75.
        // v = (1000 + 3043.75 − 0) / (304.375 × (0.002 − 0.0005)) = 4043.75 / 0.4565625 = 8857.0431…
        let p = cost(0.002, 0.0, 0.0);
        let f = cost(0.0005, 1000.0, 304.375);
        let b = break_even(("p", &p), ("f", &f), 304.375);
        assert!(close(
            b.daily_requests.unwrap_or(f64::NAN),
            4043.75 / 0.4565625
        ));
    }

    #[test]
    fn break_even_never_when_the_finetune_costs_more_per_request_too() {
        // v = (4000 − 500) / (100 × (0.001 − 0.002)) = 3500 / −0.1 = −35000: never.
        let p = cost(0.001, 500.0, 0.0);
        let f = cost(0.002, 4000.0, 0.0);
        let b = break_even(("p", &p), ("f", &f), 100.0);
        assert_eq!(b.daily_requests, None);
        assert_eq!(b.cheaper_at_low_volume, "p");
        assert_eq!(b.cheaper_at_high_volume, "p");
        assert!(b.formula.contains("-35000 → never"), "{}", b.formula);
    }

    #[test]
    fn break_even_never_when_the_finetune_is_cheaper_everywhere() {
        let p = cost(0.01, 5000.0, 0.0);
        let f = cost(0.001, 400.0, 0.0);
        let b = break_even(("p", &p), ("f", &f), 100.0);
        assert_eq!(b.daily_requests, None);
        assert_eq!(b.cheaper_at_low_volume, "f");
        assert_eq!(b.cheaper_at_high_volume, "f");
    }

    #[test]
    fn break_even_never_when_per_request_costs_are_equal() {
        let p = cost(0.01, 500.0, 0.0);
        let f = cost(0.01, 400.0, 0.0);
        let b = break_even(("p", &p), ("f", &f), 100.0);
        assert_eq!(b.daily_requests, None);
        assert!(
            b.formula.contains("equal per-request cost"),
            "{}",
            b.formula
        );
    }
}
