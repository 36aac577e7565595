//! Tests of `serving`: both modes against hand computations on the fixture's run of 100 items
//! (a hosted prompt arm at $0.002 a request, a fine-tune answering in 0.36 compute seconds; see
//! `testing`), and the verdict sentence when the mode decides it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain::{ServingAssumptions, ServingMode};

use crate::decide;
use crate::testing::{ArmSpec, assumptions, decision, inputs, right, run};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

const MONTHS: f64 = 365.0 / 30.4375;

fn results() -> domain::RunResults {
    run(
        100,
        vec![
            ArmSpec::prompt("p@api", right(100, 0, 95)),
            ArmSpec::finetune("ft", right(100, 0, 95)),
        ],
    )
}

fn batch(daily: f64, utilisation: f64) -> domain::CostAssumptions {
    let mut c = assumptions(daily);
    c.serving = ServingAssumptions {
        mode: ServingMode::Batch,
        utilisation,
        ..ServingAssumptions::default()
    };
    c
}

/// At 1,000 a day, utilisation 0.5:
/// - prompt: batch rates halve $0.002 to $0.001; total 500.2 + 365 × 1000 × 0.001 = 865.2;
/// - fine-tune: 0.36 s ÷ 0.5 × $1/h ÷ 3600 = $0.0002 a request, 0.2 machine-hours a day, no
///   24/7 machine: fixed = upkeep 2 h × $100 = $200 a month; total = 4004.02 + 73 + 200 × months.
#[test]
fn batches_halve_hosted_prices_and_pay_self_hosting_by_the_hour() {
    let r = results();
    let costs = batch(1000.0, 0.5);
    let report = decide(&r, &costs, &decision(0.9), &inputs(&r));
    let (p, f) = (&report.arms[0].cost, &report.arms[1].cost);
    assert!(close(p.cost_per_request_usd, 0.001), "{p:?}");
    assert!(close(p.horizon_total_usd, 865.2), "{p:?}");
    assert!(close(f.cost_per_request_usd, 0.0002), "{f:?}");
    assert!(close(f.fixed_monthly_usd, 200.0), "{f:?}");
    assert!(
        close(f.horizon_total_usd, 4004.02 + 73.0 + 200.0 * MONTHS),
        "{f:?}"
    );
    assert!(
        f.cost_per_request_basis.contains("0.2 machine-hours a day"),
        "{f:?}"
    );
    let m = &report.arms[1].measured;
    assert!(close(super::machine_hours_per_day(m, &costs), 0.2));

    // The other mode, real time, as `decide.rs` computes it by hand: 500.2 + 730 and
    // 4004.02 + 73 + 930 × months.
    let [declared, other] = &report.serving[..] else {
        panic!("two modes")
    };
    assert_eq!(
        (declared.mode, declared.declared),
        (ServingMode::Batch, true)
    );
    assert_eq!((other.mode, other.declared), (ServingMode::Realtime, false));
    assert!(close(other.arms[0].horizon_total_usd, 1230.2));
    assert!(close(
        other.arms[1].horizon_total_usd,
        4004.02 + 73.0 + 930.0 * MONTHS
    ));
    assert_eq!(other.recommended_arm.as_deref(), Some("p@api"));
    assert!(
        report
            .would_change
            .iter()
            .any(|s| s.starts_with("Served in real time") && s.contains("would be the same")),
        "{:?}",
        report.would_change
    );
}

/// With no data preparation, at 10,000 a day: in real time the prompt arm costs
/// 500.2 + 7300 = 7800.2 against 4.02 + 730 + 930 × months = 11,886.4 (stay); in batches
/// 500.2 + 3650 = 4150.2 against 4.02 + 730 + 200 × months = 3,132.4 (escalate).
#[test]
fn the_report_says_when_the_serving_mode_changes_the_verdict() {
    let r = results();
    let mut costs = assumptions(10_000.0);
    costs.data_prep_hours = 0.0;
    costs.serving.utilisation = 0.5;
    let report = decide(&r, &costs, &decision(0.9), &inputs(&r));
    assert_eq!(report.verdict, crate::Verdict::Stay);
    let batch = &report.serving[1];
    assert_eq!(batch.mode, ServingMode::Batch);
    assert!(close(batch.arms[0].horizon_total_usd, 4150.2));
    assert!(close(
        batch.arms[1].horizon_total_usd,
        734.02 + 200.0 * MONTHS
    ));
    assert_eq!(batch.verdict, crate::Verdict::Escalate);
    let sentence = report
        .would_change
        .iter()
        .find(|s| s.starts_with("Served in batches"))
        .unwrap();
    assert!(
        sentence.contains("the verdict would change: escalate to fine-tune `ft` ($3,132"),
        "{sentence}"
    );
}

#[test]
fn a_short_batch_window_is_a_warning_for_hosted_arms() {
    let r = results();
    let mut costs = batch(1000.0, 0.6);
    costs.serving.batch_window_hours = 2.0;
    let report = decide(&r, &costs, &decision(0.9), &inputs(&r));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("`batch_window_hours` is 2")),
        "{:?}",
        report.warnings
    );
    let names: Vec<&str> = report.assumptions.iter().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"batch_window_hours"));
}
