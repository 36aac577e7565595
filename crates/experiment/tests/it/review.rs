//! `review:` and `costs.review:`: what a spec declares reaches the plan and the run's settings,
//! and what cannot work is refused with its position before anything runs.

use domain::{ReviewCorrection, ReviewCosts, ReviewSpec};
use expect_test::{Expect, expect};

use crate::Fixture;

/// `n` rows, alternating labels.
fn rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            let label = if i % 2 == 0 { "positive" } else { "negative" };
            format!("{{\"id\": \"r{i}\", \"text\": \"Review {i}.\", \"label\": \"{label}\"}}\n")
        })
        .collect()
}

fn spec(review: &str, costs: &str) -> String {
    format!(
        r#"
        name: t
        dataset: {{ path: data.jsonl, input: text, target: label }}
        providers: [{{ type: openai, model: gpt-4o-mini }}]
        prompts: [{{ id: zs, template: "Review: {{{{text}}}}" }}]
        {review}
        {costs}
        "#
    )
}

fn check(spec: &str, n: usize, expect: Expect) {
    expect.assert_eq(&Fixture::new(spec, &[("data.jsonl", &rows(n))]).outcome());
}

#[test]
fn a_review_block_reaches_the_run_settings_with_its_defaults() {
    let text = spec(
        "review: { target_accuracy: 0.9 }",
        "costs: { review: { minutes_per_review: 2 } }",
    );
    let plan = Fixture::new(&text, &[("data.jsonl", &rows(200))])
        .load()
        .unwrap();
    let expected = ReviewSpec {
        target_accuracy: 0.9,
        delta: 0.1,
        calibration: 0.5,
        correction: ReviewCorrection::FixedSequence,
        seed: 7,
    };
    assert_eq!(plan.review, Some(expected));
    let settings = plan.run_settings();
    assert_eq!(settings.review, Some(expected));
    assert_eq!(
        settings.costs.review,
        ReviewCosts {
            cost_per_review_usd: None,
            minutes_per_review: Some(2.0)
        }
    );
    assert!(
        settings
            .declared_costs
            .unwrap()
            .contains("minutes_per_review")
    );
    let none = Fixture::new(&spec("", ""), &[("data.jsonl", &rows(10))])
        .load()
        .unwrap();
    assert_eq!(none.review, None);
}

#[test]
fn every_field_is_read_and_checked() {
    let text = spec(
        "review: { target_accuracy: 0.95, delta: 0.05, calibration: 0.4, correction: bonferroni, seed: 3 }",
        "costs: { review: { cost_per_review_usd: 0.4 } }",
    );
    let plan = Fixture::new(&text, &[("data.jsonl", &rows(400))])
        .load()
        .unwrap();
    let r = plan.review.unwrap();
    assert_eq!(
        (
            r.target_accuracy,
            r.delta,
            r.calibration,
            r.correction,
            r.seed
        ),
        (0.95, 0.05, 0.4, ReviewCorrection::Bonferroni, 3)
    );
    check(
        &spec(
            "review: { target_accuracy: 1.0, delta: 0, calibration: 1, correction: holm }",
            "costs: { review: { cost_per_review_usd: -1, seconds: 3 } }",
        ),
        100,
        expect![[r#"
            $DIR/spec.yaml:5:28: `target_accuracy` must be more than 0 and less than 1, found 1
            $DIR/spec.yaml:5:40: `delta` must be more than 0 and less than 1, found 0
            $DIR/spec.yaml:5:56: `calibration` must be more than 0 and less than 1, found 1
            $DIR/spec.yaml:5:71: unknown `correction` `holm`: expected `fixed_sequence` or `bonferroni`
            $DIR/spec.yaml:6:41: `cost_per_review_usd` must be zero or more, found -1
            $DIR/spec.yaml:6:45: unknown field `seconds`, expected `cost_per_review_usd` or `minutes_per_review`
        "#]],
    );
    check(
        &spec("review: { delta: 0.1 }", ""),
        100,
        expect![[r#"
            $DIR/spec.yaml:5:9: missing field `target_accuracy`
        "#]],
    );
}

#[test]
fn a_calibration_split_too_small_to_pass_is_refused() {
    // 60 items, half to calibrate: 30, fewer than the 45 that target 0.95 at delta 0.1 needs.
    check(
        &spec("review: { target_accuracy: 0.95 }", ""),
        60,
        expect![[r#"
            $DIR/spec.yaml:5:9: `review`: the calibration split holds 30 of 60 eval items, and at `target_accuracy` 0.95 with `delta` 0.1 no threshold can pass on fewer than 45: add eval items, raise `calibration`, or lower the target
        "#]],
    );
    check(
        &spec("review: { target_accuracy: 0.5, calibration: 0.1 }", ""),
        4,
        expect![[r#"
            $DIR/spec.yaml:5:9: `review.calibration` 0.1 of 4 eval items leaves 0 to calibrate and 4 to measure: both need items
        "#]],
    );
}

#[test]
fn the_serving_mode_is_read_with_its_window_and_utilisation() {
    let text = spec(
        "",
        "costs: { serving: { mode: batch, batch_window_hours: 6, utilisation: 0.5, finetune_hourly_usd: 1.2 } }",
    );
    let plan = Fixture::new(&text, &[("data.jsonl", &rows(10))])
        .load()
        .unwrap();
    let s = plan.costs.serving;
    assert_eq!(
        (s.mode, s.batch_window_hours, s.utilisation),
        (domain::ServingMode::Batch, 6.0, 0.5)
    );
    let declared = plan.run_settings().declared_costs.unwrap();
    for name in [
        "serving_mode",
        "batch_window_hours",
        "utilisation",
        "finetune_hourly_usd",
    ] {
        assert!(declared.contains(name), "{name}: {declared:?}");
    }
    check(
        &spec(
            "",
            "costs: { serving: { mode: nightly, utilisation: 1.5, batch_window_hours: 0 } }",
        ),
        10,
        expect![[r#"
            $DIR/spec.yaml:6:27: unknown serving `mode` `nightly`: expected `realtime` or `batch`
            $DIR/spec.yaml:6:49: `utilisation` must be more than 0 and at most 1, found 1.5
            $DIR/spec.yaml:6:74: `batch_window_hours` must be more than zero, found 0
        "#]],
    );
}

#[test]
fn a_batch_block_is_read_with_its_defaults_and_checked() {
    let load = |block: &str| {
        Fixture::new(&spec(block, ""), &[("data.jsonl", &rows(10))])
            .load()
            .unwrap()
            .batch
    };
    assert_eq!(load(""), domain::BatchSpec::default());
    let b = load(
        "batch: { on_failure: fail, poll_seconds: 0.5, max_poll_seconds: 2, max_requests: 3 }",
    );
    assert_eq!(
        (
            b.on_failure,
            b.poll_seconds,
            b.max_poll_seconds,
            b.max_requests
        ),
        (domain::BatchFailure::Fail, 0.5, 2.0, 3)
    );
    assert_eq!(load("batch: { poll_seconds: 300 }").max_poll_seconds, 300.0);
    check(
        &spec(
            "batch: { on_failure: retry, poll_seconds: 0, max_requests: 0, window: 1 }",
            "",
        ),
        10,
        expect![[r#"
            $DIR/spec.yaml:5:22: unknown `on_failure` `retry`: expected `realtime` or `fail`
            $DIR/spec.yaml:5:43: `poll_seconds` must be more than 0, found 0
            $DIR/spec.yaml:5:60: `max_requests` must be at least 1, found 0
            $DIR/spec.yaml:5:63: unknown field `window`, expected `on_failure`, `poll_seconds`, `max_poll_seconds` or `max_requests`
        "#]],
    );
    check(
        &spec("batch: { poll_seconds: 10, max_poll_seconds: 5 }", ""),
        10,
        expect![[r#"
            $DIR/spec.yaml:5:46: `max_poll_seconds` must be at least `poll_seconds` (10), found 5
        "#]],
    );
}
