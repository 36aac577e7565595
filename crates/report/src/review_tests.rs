//! Tests of `review`: the calibration split, the quality view and each arm's review on runs
//! built in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{ReviewCorrection, ReviewSpec};

use super::*;
use crate::testing::{ArmSpec, FEW_SHOT, run};

fn spec(calibration: f64) -> ReviewSpec {
    ReviewSpec {
        target_accuracy: 0.9,
        delta: 0.1,
        calibration,
        correction: ReviewCorrection::FixedSequence,
        seed: 7,
    }
}

#[test]
fn the_split_takes_the_declared_share_the_same_way_every_time() {
    let ids: Vec<String> = (0..200).map(|i| format!("row-{i}")).collect();
    let items: Vec<&str> = ids.iter().map(String::as_str).collect();
    let a = calibration_split(&items, &spec(0.5));
    assert_eq!(a.len(), 100);
    assert_eq!(a, calibration_split(&items, &spec(0.5)));
    // The order items come in does not matter, the seed does.
    let mut reversed = items.clone();
    reversed.reverse();
    assert_eq!(a, calibration_split(&reversed, &spec(0.5)));
    let other = calibration_split(
        &items,
        &ReviewSpec {
            seed: 8,
            ..spec(0.5)
        },
    );
    assert_ne!(a, other);
    assert_eq!(calibration_split(&items, &spec(0.25)).len(), 50);
    // Both halves keep at least one item.
    assert_eq!(calibration_split(&items[..2], &spec(0.99)).len(), 1);
    assert_eq!(calibration_split(&items[..2], &spec(0.01)).len(), 1);
}

/// 400 items: the arm is right on the first 300 with confidence 0.99 and wrong on the rest
/// with confidence 0.4, so the threshold lands at 0.99, automating the right answers only.
fn reviewed_run() -> RunResults {
    let n = 400;
    let correct: Vec<bool> = (0..n).map(|i| i < 300).collect();
    let confidence = correct
        .iter()
        .map(|&ok| if ok { 0.99 } else { 0.4 })
        .collect();
    let mut results = run(
        n,
        vec![ArmSpec::prompt(FEW_SHOT, correct).with_confidence(confidence)],
    );
    results.run.settings.as_mut().unwrap().review = Some(spec(0.5));
    results
}

#[test]
fn a_confident_arm_automates_its_right_answers_and_reviews_the_rest() {
    let results = reviewed_run();
    let (summary, arms) = review(&results, "equals", &[FEW_SHOT]).unwrap();
    assert_eq!((summary.calibration_items, summary.test_items), (200, 200));
    assert!(summary.unavailable.is_none());
    let r = arms[0].as_ref().unwrap();
    let t = r.selection.chosen.unwrap();
    assert!((t.threshold - 0.99).abs() < 1e-6, "{t:?}");
    assert_eq!(t.errors, 0);
    let index = ResultIndex::new(&results);
    let cal = calibration_split(&index.items, &spec(0.5));
    let right_in_test = (0..300)
        .filter(|i| !cal.contains(format!("item-{i:03}").as_str()))
        .count();
    assert!(
        (r.coverage - right_in_test as f64 / 200.0).abs() < 1e-12,
        "{r:?}"
    );
    assert_eq!(r.automated_accuracy, Some(1.0));
    assert!((r.reviewed_share() + r.coverage - 1.0).abs() < 1e-12);
    // What ships is right everywhere: the automated answers are, and people answer the rest.
    let view = quality_view(&results);
    let shipped = system_values(&ResultIndex::new(&view), FEW_SHOT, "equals", r.threshold());
    assert_eq!(shipped.len(), 200);
    assert!(shipped.iter().all(|&v| v == 1.0), "{shipped:?}");
    let last = r.curve.last().unwrap();
    assert!((last.coverage - 1.0).abs() < 1e-12);
    assert!((last.accuracy - (right_in_test as f64 / 200.0)).abs() < 1e-12);
}

#[test]
fn quality_figures_leave_the_calibration_items_out() {
    let results = reviewed_run();
    let view = quality_view(&results);
    assert_eq!(view.items.len(), 200);
    assert_eq!(view.calls.len(), 200);
    let index = ResultIndex::new(&results);
    let cal = calibration_split(&index.items, &spec(0.5));
    assert!(view.items.iter().all(|i| !cal.contains(i.item_id.as_str())));
    let mut plain = results.clone();
    plain.run.settings.as_mut().unwrap().review = None;
    assert!(matches!(quality_view(&plain), Cow::Borrowed(_)));
    assert!(review(&plain, "equals", &[FEW_SHOT]).is_none());
}

#[test]
fn an_arm_without_confidences_reviews_everything() {
    let mut results = run(100, vec![ArmSpec::prompt(FEW_SHOT, vec![true; 100])]);
    results.run.settings.as_mut().unwrap().review = Some(spec(0.5));
    let (_, arms) = review(&results, "equals", &[FEW_SHOT]).unwrap();
    let r = arms[0].as_ref().unwrap();
    assert_eq!(r.selection.chosen, None);
    assert_eq!(
        (
            r.coverage,
            r.reviewed_share(),
            r.automated_accuracy.unwrap_or(1.0)
        ),
        (0.0, 1.0, 1.0)
    );
    assert!(r.curve.is_empty());
}

#[test]
fn a_graded_metric_cannot_be_reviewed() {
    let mut results = reviewed_run();
    results.scores[0].value = 0.5;
    let (summary, arms) = review(&results, "equals", &[FEW_SHOT]).unwrap();
    assert!(summary.unavailable.unwrap().contains("pass/fail"));
    assert_eq!(arms, vec![None]);
}

#[test]
fn long_curves_are_thinned_to_101_points() {
    let curve: Vec<CoveragePoint> = (0..1000)
        .map(|i| CoveragePoint {
            threshold: 1.0 - i as f64 / 1000.0,
            coverage: (i + 1) as f64 / 1000.0,
            accuracy: 1.0,
        })
        .collect();
    let thinned = thin(curve.clone());
    assert_eq!(thinned.len(), 101);
    assert_eq!(thinned[0], curve[0]);
    assert_eq!(thinned[100], curve[999]);
}
