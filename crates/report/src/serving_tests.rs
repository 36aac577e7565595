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
    assert!(close(crate::cost::machine_hours_per_day(m, &costs), 0.2));

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

fn bench(batch_size: u32, items_per_second: f64, p95: f64) -> domain::ServingBench {
    domain::ServingBench {
        arm: "ft".into(),
        batch_size,
        items: 64,
        items_per_second,
        latency_p50_ms: p95 * 0.8,
        latency_p95_ms: p95,
        measured_ms: 0,
    }
}

/// bench-serving measured the fine-tune at 2, 6 and 10 items/s with p95 of 500, 900 and 2,000
/// ms. Within an SLO of 1,000 ms the fastest is batch 4: 1/6 machine-second a request, so in
/// real time (1/6) × $2/h ÷ 3600 = $0.0000925926 a request, and in batches at utilisation 0.5
/// (1/6) ÷ 0.5 × $1/h ÷ 3600 = $0.0000925926 too.
#[test]
fn a_benchmark_within_the_slo_sets_the_machine_time_per_request() {
    let mut r = results();
    r.serving_bench = vec![
        bench(1, 2.0, 500.0),
        bench(4, 6.0, 900.0),
        bench(16, 10.0, 2000.0),
    ];
    let mut costs = assumptions(1000.0);
    costs.serving.latency_slo_ms = Some(1000.0);
    costs.serving.utilisation = 0.5;
    let report = decide(&r, &costs, &decision(0.9), &inputs(&r));
    let ft = &report.arms[1];
    assert_eq!(ft.serving_bench.as_ref().unwrap().batch_size, 4);
    let per_request = 1.0 / 6.0 * 2.0 / 3600.0;
    assert!(
        close(ft.cost.cost_per_request_usd, per_request),
        "{:?}",
        ft.cost
    );
    assert!(
        ft.cost
            .cost_per_request_basis
            .contains("bench-serving: batch size 4")
    );
    let batch = &report.serving[1].arms[1];
    assert!(close(batch.cost_per_request_usd, 1.0 / 6.0 / 0.5 / 3600.0));
    assert_eq!(report.serving_bench.len(), 3);
    let (_, rows) = super::bench_rows(&report).unwrap();
    let used: Vec<&str> = rows.iter().map(|row| row[5].as_str()).collect();
    assert_eq!(used, ["", "yes", ""]);

    // Without an SLO the fastest counts; with one nothing meets, the lowest latency, warned.
    costs.serving.latency_slo_ms = None;
    let report = decide(&r, &costs, &decision(0.9), &inputs(&r));
    assert_eq!(
        report.arms[1].serving_bench.as_ref().unwrap().batch_size,
        16
    );
    costs.serving.latency_slo_ms = Some(100.0);
    let report = decide(&r, &costs, &decision(0.9), &inputs(&r));
    assert_eq!(report.arms[1].serving_bench.as_ref().unwrap().batch_size, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("within the 100 ms SLO")),
        "{:?}",
        report.warnings
    );
    let html = crate::render_html(&report, &r);
    assert!(html.contains("Throughput against latency") && html.contains("SLO 100 ms"));
}
