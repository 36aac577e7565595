//! Tests of `cost`: the cost model checked against hand computations.

use super::*;

/// The fixture's assumptions, at 1000 requests a day.
fn assumptions() -> CostAssumptions {
    crate::testing::assumptions(1000.0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn hosted_prompt_arm_by_hand() {
    let m = Measured {
        mean_prompt_tokens: 1000.0,
        mean_completion_tokens: 100.0,
        eval_spend_usd: 2.0,
        eval_machine_seconds: 1800.0,
        ..Measured::default()
    };
    let pricing = PricingUsed::Hosted {
        pricing: Some(Pricing {
            input_per_mtok: 1.0,
            output_per_mtok: 10.0,
        }),
        batch_api: false,
    };
    let c = arm_cost(ArmKind::Prompt, &m, pricing, &assumptions());
    // cost/request = (1000 × 1 + 100 × 10) / 1e6 = 0.002
    assert!(close(c.cost_per_request_usd, 0.002));
    // upfront = 5 h × $100 + $2 eval = 502
    assert!(close(c.upfront_usd, 502.0));
    assert_eq!(c.fixed_monthly_usd, 0.0);
    // total = 502 + 365 × 1000 × 0.002 = 502 + 730 = 1232
    assert!(close(c.horizon_total_usd, 1232.0));
    // time to ship = 5 h declared + 1800 s = 0.5 h measured
    assert!(close(c.time_to_ship_hours, 5.5));
    // staff share = 500 / 1232
    assert!(close(c.staff_share, 500.0 / 1232.0));
}

#[test]
fn batch_api_halves_the_hosted_price() {
    let m = Measured {
        mean_prompt_tokens: 1000.0,
        mean_completion_tokens: 100.0,
        ..Measured::default()
    };
    let pricing = PricingUsed::Hosted {
        pricing: Some(Pricing {
            input_per_mtok: 1.0,
            output_per_mtok: 10.0,
        }),
        batch_api: true,
    };
    let c = arm_cost(ArmKind::Prompt, &m, pricing, &assumptions());
    // 0.002 × 0.5
    assert!(close(c.cost_per_request_usd, 0.001));
    assert!(c.cost_per_request_basis.contains("batch API"));
}

#[test]
fn unknown_price_falls_back_to_recorded_uncached_cost() {
    let m = Measured {
        mean_uncached_cost_usd: Some(0.003),
        ..Measured::default()
    };
    let pricing = PricingUsed::Hosted {
        pricing: None,
        batch_api: false,
    };
    let c = arm_cost(ArmKind::Prompt, &m, pricing, &assumptions());
    assert!(close(c.cost_per_request_usd, 0.003));
}

#[test]
fn finetune_arm_by_hand() {
    let m = Measured {
        mean_compute_seconds: 0.36,
        eval_spend_usd: 0.5,
        eval_machine_seconds: 360.0,
        train_seconds: Some(7200.0),
        ..Measured::default()
    };
    let pricing = PricingUsed::Compute {
        cost_per_hour: 2.0,
        source: Source::Declared,
    };
    let c = arm_cost(ArmKind::Finetune, &m, pricing, &assumptions());
    // cost/request = 0.36 s × $2/h / 3600 = 0.0002
    assert!(close(c.cost_per_request_usd, 0.0002));
    // upfront = 2 h training × $2 + 40 h × $100 + $0.5 eval = 4 + 4000 + 0.5 = 4004.5
    assert!(close(c.upfront_usd, 4004.5));
    // fixed = $1 × 730 + 2 h × $100 = 930 per month
    assert!(close(c.fixed_monthly_usd, 930.0));
    // total = 4004.5 + 365 × 1000 × 0.0002 + (365 / 30.4375) × 930
    //       = 4004.5 + 73 + 11.991786447638603 × 930 = 4004.5 + 73 + 11152.361396303901
    assert!(close(c.horizon_total_usd, 15_229.861_396_303_9));
    // time to ship = 40 h + (360 s + 7200 s) / 3600 = 42.1 h
    assert!(close(c.time_to_ship_hours, 42.1));
    // staff = 4000 + 11.991786447638603 × 200 = 6398.357289527721
    assert!(close(c.breakdown.staff_horizon_usd, 6398.357289527721));
    assert!(close(
        c.staff_share,
        6_398.357_289_527_721 / 15_229.861_396_303_9
    ));
}

#[test]
fn compute_rate_is_inferred_from_the_records_when_not_declared() {
    let m = Measured {
        recorded_cost_per_hour: Some(3.0),
        mean_compute_seconds: 1.0,
        ..Measured::default()
    };
    let p = pricing_for(
        &ArmCostInputs::default(),
        "ft",
        ArmKind::Finetune,
        &m,
        &assumptions(),
    );
    assert_eq!(
        p,
        PricingUsed::Compute {
            cost_per_hour: 3.0,
            source: Source::Inferred
        }
    );
    let none = Measured::default();
    let p = pricing_for(
        &ArmCostInputs::default(),
        "ft",
        ArmKind::Finetune,
        &none,
        &assumptions(),
    );
    assert_eq!(
        p,
        PricingUsed::Compute {
            cost_per_hour: 0.05,
            source: Source::Default
        }
    );
    let p = pricing_for(
        &ArmCostInputs::default(),
        "p@api",
        ArmKind::Prompt,
        &none,
        &assumptions(),
    );
    assert!(matches!(p, PricingUsed::Hosted { pricing: None, .. }));
}
