//! Label issues in the decision report, on constructed runs: which arm's probabilities rank
//! the eval items, which items come out as suspects and in what order, what is left unranked,
//! and how the section is shown. The confident-learning arithmetic itself is checked against
//! cleanlab in `scoring`'s tests; here every row is either clearly right (0.9 on its label) or
//! clearly flipped, so the expected suspects follow from the rule by hand.

use domain::{ChoiceRecord, ChoiceVia, RunResults, SweepPoint};
use report::testing::{ArmSpec, assumptions, decision, inputs, right, run};
use report::{DecisionReport, ReportFormat, decide, render_html, render_report};

const N: usize = 40;
/// Labels in the order the probabilities are stored; `run` labels even items positive.
const LABELS: [&str; 2] = ["negative", "positive"];

fn given(i: usize) -> usize {
    usize::from(i.is_multiple_of(2))
}

/// Gives `arm` choices over [`LABELS`]: on item `i`, `p(i)` is the probability of its stored
/// label (the rest goes to the other label), and the answer chooses the likelier one.
fn with_choices(results: &mut RunResults, arm: &str, p: impl Fn(usize) -> f64) {
    let info = results.arms.iter_mut().find(|a| a.arm == arm).unwrap();
    info.choices = Some(LABELS.map(str::to_owned).to_vec());
    for (i, call) in results
        .calls
        .iter_mut()
        .filter(|c| c.arm == arm)
        .enumerate()
    {
        let mut probs = vec![1.0 - p(i); 2];
        probs[given(i)] = p(i);
        let chosen = if p(i) >= 0.5 { given(i) } else { 1 - given(i) };
        call.choice = Some(ChoiceRecord {
            label: Some(LABELS[chosen].to_owned()),
            via: ChoiceVia::Likelihood,
            confidence: Some(probs[chosen]),
            probabilities: probs,
        });
    }
}

/// Items 17 and 3 are flipped: the probe gives their stored label 0.05 and 0.1.
fn flipped(i: usize) -> f64 {
    match i {
        17 => 0.05,
        3 => 0.1,
        _ => 0.9,
    }
}

fn report_of(results: &RunResults) -> DecisionReport {
    decide(
        results,
        &assumptions(1000.0),
        &decision(0.9),
        &inputs(results),
    )
}

/// A prompt arm right on 30 items (its choices agree with the probe on item 17 only), and a
/// fine-tune right on 36 whose probabilities find the flips.
fn two_arms() -> RunResults {
    let mut results = run(
        N,
        vec![
            ArmSpec::prompt("zero-shot@api", right(N, 0, 30)),
            ArmSpec::finetune("lora", right(N, 0, 36)),
        ],
    );
    with_choices(&mut results, "zero-shot@api", |i| {
        if i == 17 { 0.3 } else { 0.6 }
    });
    with_choices(&mut results, "lora", flipped);
    results
}

#[test]
fn the_best_arm_with_label_probabilities_ranks_the_eval_items() {
    let li = report_of(&two_arms()).label_issues.unwrap();
    assert_eq!(li.arm, "lora");
    assert_eq!((li.scored, li.unscored), (N, 0));
    let found: Vec<(&str, &str, &str)> = li
        .suspects
        .iter()
        .map(|s| (s.item_id.as_str(), s.given.as_str(), s.likely.as_str()))
        .collect();
    // Lowest self-confidence first.
    assert_eq!(
        found,
        [
            ("item-017", "negative", "positive"),
            ("item-003", "negative", "positive")
        ]
    );
    assert_eq!(li.suspects[0].self_confidence, 0.05);
    // The prompt arm chose `positive` on item 17 and the stored `negative` on item 3.
    let others: Vec<(usize, usize)> = li
        .suspects
        .iter()
        .map(|s| (s.others_likely, s.others_answered))
        .collect();
    assert_eq!(others, [(1, 1), (0, 1)]);
    assert_eq!(li.suspects[0].input, "Review 17: the film was dull.");
    // Per-label mean probability over the items carrying it: 18 × 0.9 + 0.05 + 0.1 over 20.
    assert!((li.thresholds[0].unwrap() - 16.35 / 20.0).abs() < 1e-12);
    assert!((li.thresholds[1].unwrap() - 0.9).abs() < 1e-12);
}

#[test]
fn a_noisy_sweep_point_is_never_the_probe_however_good() {
    let mut results = two_arms();
    let noisy = results.arms.iter_mut().find(|a| a.arm == "zero-shot@api");
    noisy.unwrap().sweep = Some(SweepPoint {
        family: "zero-shot".into(),
        examples: 0,
        label_noise: 0.2,
    });
    // Make the noisy arm the better one: it now scores every item right.
    for s in results
        .scores
        .iter_mut()
        .filter(|s| s.arm == "zero-shot@api")
    {
        s.value = 1.0;
    }
    let li = report_of(&results).label_issues.unwrap();
    assert_eq!(li.arm, "lora");
}

#[test]
fn items_without_full_probabilities_or_with_an_unknown_label_are_counted_not_ranked() {
    let mut results = two_arms();
    results.items[5].target = "mixed".into();
    let call = results
        .calls
        .iter_mut()
        .find(|c| c.arm == "lora" && c.item_id == "item-008")
        .unwrap();
    call.choice.as_mut().unwrap().probabilities.clear();
    let li = report_of(&results).label_issues.unwrap();
    assert_eq!((li.scored, li.unscored), (N - 2, 2));
    let notes = render(&results, ReportFormat::Text);
    assert!(notes.contains("2 eval items were not ranked"), "{notes}");
}

#[test]
fn without_stored_probabilities_there_is_no_section() {
    let plain = run(N, vec![ArmSpec::finetune("lora", right(N, 0, 36))]);
    assert_eq!(report_of(&plain).label_issues, None);
    assert!(!render(&plain, ReportFormat::Text).contains("Label issues"));

    // Labels but only a chosen label per answer (a hosted endpoint): nothing to rank with.
    let mut hosted = two_arms();
    for call in &mut hosted.calls {
        call.choice.as_mut().unwrap().probabilities.clear();
    }
    assert_eq!(report_of(&hosted).label_issues, None);
}

#[test]
fn the_section_is_shown_in_every_format() {
    let results = two_arms();
    let table = render(&results, ReportFormat::Text);
    let section = table
        .split("Label issues in the eval split")
        .nth(1)
        .unwrap();
    assert!(
        section.contains("2 of 40 eval items (5%) look mislabelled"),
        "{section}"
    );
    assert!(section.contains("item-017"), "{section}");
    assert!(section.contains("1 of 1"), "{section}");
    let html = render_html(&report_of(&results), &results);
    assert!(html.contains("<h2>Label issues in the eval split</h2>"));
    assert!(
        html.contains("<td><code>item-003</code></td>"),
        "label table missing"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(&results, ReportFormat::Json)).unwrap();
    assert_eq!(json["label_issues"]["suspects"][1]["item_id"], "item-003");
}

fn render(results: &RunResults, format: ReportFormat) -> String {
    render_report(&report_of(results), format)
}
