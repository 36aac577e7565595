//! Review in the decision report on a constructed run: 400 items, a prompt arm right on the
//! first 300 and a fine-tune right on the first 380, each confident (0.99) exactly where it is
//! right and unsure (0.4) where it is wrong, at 100 requests a day, target 0.9, $0.50 a review.
//!
//! Hand computation (assumptions of `report::testing::assumptions`, costs as in `decide.rs`
//! but over 400 items). The prompt arm's threshold lands at 0.99: it automates the `c_p` test
//! items it is right on and reviews the rest. The fine-tune's lands at 0.4: 20 errors in 400 keep
//! its accuracy above 0.9 with the guarantee, so it automates every item, at accuracy `c_f/200`:
//! - prompt: upfront 5 h × $100 + 400 × $0.002 = $500.8; total = 500.8 + 365 × 100 × (0.002
//!   + (1 − c_p/200) × 0.5) = 573.8 + 18250 × (1 − c_p/200);
//! - fine-tune: upfront 40 h × $100 + $4 training + 400 × $0.0002 = $4004.08; fixed $930 a
//!   month over 11.991786447638603 months = $11152.3613963039; total = 4004.08 + 7.3 +
//!   11152.3613963039, no review.
//!
//! Without review the prompt arm misses the target (0.75 on the test half) and the verdict
//! escalates; with review the prompt arm ships at accuracy 1 and costs far less.

use domain::{ReviewCorrection, ReviewSpec};
use report::review::calibration_split;
use report::testing::{ArmSpec, inputs, run};
use report::{ReportFormat, Verdict, decide, render_report};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

const N: usize = 400;

fn reviewed(review: bool) -> domain::RunResults {
    let arm = |right: usize| {
        let correct: Vec<bool> = (0..N).map(|i| i < right).collect();
        let conf = correct
            .iter()
            .map(|&ok| if ok { 0.99 } else { 0.4 })
            .collect();
        (correct, conf)
    };
    let (pc, pconf) = arm(300);
    let (fc, fconf) = arm(380);
    let mut results = run(
        N,
        vec![
            ArmSpec::prompt("p@api", pc).with_confidence(pconf),
            ArmSpec::finetune("ft", fc).with_confidence(fconf),
        ],
    );
    let settings = results.run.settings.as_mut().unwrap();
    settings.costs.daily_requests = 100.0;
    settings.costs.review.cost_per_review_usd = Some(0.5);
    settings.review = review.then_some(ReviewSpec {
        target_accuracy: 0.9,
        delta: 0.1,
        calibration: 0.5,
        correction: ReviewCorrection::FixedSequence,
        seed: 7,
    });
    results
}

fn report_of(results: &domain::RunResults) -> report::DecisionReport {
    let s = results.run.settings.clone().unwrap();
    decide(results, &s.costs, &s.decision, &inputs(results))
}

/// Test items among the first `right` items.
fn automated(results: &domain::RunResults, right: usize) -> f64 {
    let ids: Vec<&str> = results.items.iter().map(|i| i.item_id.as_str()).collect();
    let spec = results.run.settings.as_ref().unwrap().review.unwrap();
    let cal = calibration_split(&ids, &spec);
    ids[..right].iter().filter(|id| !cal.contains(*id)).count() as f64
}

#[test]
fn without_review_the_prompt_arm_misses_and_the_verdict_escalates() {
    let r = report_of(&reviewed(false));
    assert_eq!(r.verdict, Verdict::Escalate);
    assert!(r.review.is_none() && r.arms.iter().all(|a| a.review.is_none()));
    assert!(close(r.arms[0].quality, 0.75));
}

#[test]
fn review_costs_are_counted_and_flip_the_verdict_to_stay() {
    let results = reviewed(true);
    let r = report_of(&results);
    let summary = r.review.as_ref().unwrap();
    assert_eq!((summary.calibration_items, summary.test_items), (200, 200));
    let (cp, cf) = (automated(&results, 300), automated(&results, 380));
    let (p, f) = (&r.arms[0], &r.arms[1]);
    let review = p.review.as_ref().unwrap();
    assert!((review.threshold().unwrap() - 0.99).abs() < 1e-6);
    assert!(close(review.coverage, cp / 200.0), "{review:?}");
    assert_eq!(review.automated_accuracy, Some(1.0));
    assert!(close(p.quality, 1.0));
    let cost = p.cost.breakdown.review.unwrap();
    assert!(close(cost.reviews_per_day, 100.0 * (1.0 - cp / 200.0)));
    assert!(close(cost.daily_usd, 50.0 * (1.0 - cp / 200.0)));
    assert!(close(
        cost.staff_hours_per_day,
        cost.reviews_per_day * 1.5 / 60.0
    ));
    let review = f.review.as_ref().unwrap();
    assert!((review.threshold().unwrap() - 0.4).abs() < 1e-6);
    assert_eq!(review.coverage, 1.0);
    assert!(close(f.quality, cf / 200.0));
    assert_eq!(f.cost.breakdown.review.unwrap().reviews_per_day, 0.0);
    assert!(close(
        p.cost.cost_per_request_usd,
        0.002 + (1.0 - cp / 200.0) * 0.5
    ));
    assert!(close(
        p.cost.horizon_total_usd,
        573.8 + 18250.0 * (1.0 - cp / 200.0)
    ));
    let ft_total = 4004.08 + 7.3 + 11152.3613963039;
    assert!(
        close(f.cost.horizon_total_usd, ft_total),
        "{}",
        f.cost.horizon_total_usd
    );
    assert_eq!(r.verdict, Verdict::Stay);
    assert_eq!(r.recommended_arm.as_deref(), Some("p@api"));
    let text = render_report(&r, ReportFormat::Text);
    assert!(
        text.contains("With review (accuracy of automated answers at least 90%"),
        "{text}"
    );
    assert!(text.contains("`p@api` automates"), "{text}");
    let names: Vec<&str> = r.assumptions.iter().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"cost_per_review_usd") && names.contains(&"minutes_per_review"));
}

#[test]
fn the_leaderboard_leaves_the_calibration_items_out() {
    let results = reviewed(true);
    let rows = report::leaderboard(&results, "equals");
    let p = rows.iter().find(|r| r.arm == "p@api").unwrap();
    assert_eq!(p.n, 200);
    assert!(close(p.quality, automated(&results, 300) / 200.0));
}

#[test]
fn the_html_report_draws_accuracy_against_coverage() {
    let results = reviewed(true);
    let html = report::render_html(&report_of(&results), &results);
    assert!(report::is_report_html(html.as_bytes()));
    let chart = html
        .split("<figure")
        .find(|f| f.contains("Accuracy against coverage"))
        .expect("no risk–coverage figure");
    assert!(chart.contains("<polyline"), "no curve: {chart}");
    assert!(
        chart.contains("threshold 0.9900 automates"),
        "no chosen point: {chart}"
    );
    assert!(chart.contains("target 0.900"), "no target rule: {chart}");
    assert!(html.contains("<h2>Review</h2>"));
    let plain = reviewed(false);
    let html = report::render_html(&report_of(&plain), &plain);
    assert!(!html.contains("Accuracy against coverage"));
}
