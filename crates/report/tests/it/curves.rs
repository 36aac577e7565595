//! Learning curves and noise sweeps in the decision report, on constructed runs: the fit and
//! the examples the target needs, labelling priced per example, the noise a fine-tune
//! tolerates, and a noisy point never recommended.

use domain::{RunResults, SweepPoint};
use report::testing::{ArmSpec, assumptions, decision, inputs, right, run};
use report::{DecisionReport, ReportFormat, Verdict, decide, render_report};

const N: usize = 200;

/// A prompt arm right on `prompt` items, then fine-tunes `(name, examples, noise, right)`.
fn report(prompt: usize, finetunes: &[(&'static str, usize, f64, usize)]) -> DecisionReport {
    sweep_run(prompt, finetunes).1
}

/// The run behind [`report`], and its report.
fn sweep_run(
    prompt: usize,
    finetunes: &[(&'static str, usize, f64, usize)],
) -> (RunResults, DecisionReport) {
    let mut arms = vec![ArmSpec::prompt("zero-shot@api", right(N, 0, prompt))];
    arms.extend(
        finetunes
            .iter()
            .map(|&(name, _, _, k)| ArmSpec::finetune(name, right(N, 0, k))),
    );
    let mut results = run(N, arms);
    for (arm, &(_, examples, label_noise, _)) in results.arms[1..].iter_mut().zip(finetunes) {
        arm.sweep = Some(SweepPoint {
            family: "lora".into(),
            examples,
            label_noise,
        });
    }
    let mut costs = assumptions(1000.0);
    costs.labelling_minutes_per_example = Some(2.0);
    let r = decide(&results, &costs, &decision(0.9), &inputs(&results));
    (results, r)
}

/// Quality 0.70, 0.80, 0.87 and 0.93 at 50–400 examples; 0.91 and 0.80 at 20% and 40% noise.
fn sweep() -> DecisionReport {
    sweep_with_run().1
}

/// [`sweep`] and its run, for the HTML page the browser test loads.
pub fn sweep_with_run() -> (RunResults, DecisionReport) {
    sweep_run(
        170,
        &[
            ("lora", 400, 0.0, 186),
            ("lora~n50", 50, 0.0, 140),
            ("lora~n100", 100, 0.0, 160),
            ("lora~n200", 200, 0.0, 174),
            ("lora~noise0.2", 400, 0.2, 182),
            ("lora~noise0.4", 400, 0.4, 160),
        ],
    )
}

#[test]
fn a_learning_curve_says_how_many_examples_the_target_needs() {
    let r = sweep();
    let [l] = r.curves.learning.as_slice() else {
        panic!("{:?}", r.curves.learning)
    };
    let sizes: Vec<usize> = l.points.iter().map(|p| p.examples).collect();
    assert_eq!(sizes, [50, 100, 200, 400], "the clean points, by size");
    let fit = l.fit.unwrap();
    assert!(matches!(fit, scoring::CurveFit::PowerLaw { .. }), "{fit:?}");
    for p in &l.points {
        let residual = (fit.predict(p.examples as f64) - p.quality).abs();
        assert!(residual < 0.02, "{}: residual {residual}", p.arm);
    }
    let need = l.needed.as_ref().unwrap();
    let n = need.examples.unwrap();
    assert!(
        200.0 < n && n < 400.0,
        "0.9 lies between the 200 and 400 points: {n}"
    );
    let (lo, hi) = (need.ci_low.unwrap(), need.ci_high.unwrap_or(f64::INFINITY));
    assert!(lo < n && n < hi, "[{lo}, {hi}] holds {n}");
    assert!(!need.extrapolated);
    // 2 minutes an example at $100 an hour.
    let hours = n.ceil() * 2.0 / 60.0;
    assert!((need.labelling_hours.unwrap() - hours).abs() < 1e-9);
    assert!((need.labelling_usd.unwrap() - 100.0 * hours).abs() < 1e-6);
    assert!(
        r.reasons
            .iter()
            .any(|s| s.starts_with("Learning curve of `lora`")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn labelling_minutes_price_each_fine_tunes_own_examples() {
    let r = sweep();
    let prep = |arm: &str| {
        let a = r.arms.iter().find(|a| a.arm == arm).unwrap();
        a.cost.breakdown.human_hours
    };
    assert!((prep("lora") - 400.0 * 2.0 / 60.0).abs() < 1e-9);
    assert!((prep("lora~n50") - 50.0 * 2.0 / 60.0).abs() < 1e-9);
    assert_eq!(
        prep("zero-shot@api"),
        5.0,
        "prompt arms keep prompt_iteration_hours"
    );
    assert!(
        r.assumptions
            .iter()
            .any(|a| a.name == "labelling_minutes_per_example")
    );
}

#[test]
fn a_noise_curve_names_the_noise_tolerated() {
    let r = sweep();
    let [n] = r.curves.noise.as_slice() else {
        panic!("{:?}", r.curves.noise)
    };
    let levels: Vec<f64> = n.points.iter().map(|p| p.label_noise).collect();
    assert_eq!(levels, [0.0, 0.2, 0.4]);
    assert_eq!(n.tolerated, Some(0.2));
    assert!(
        r.reasons
            .iter()
            .any(|s| s.contains("with 20% of its labels flipped"))
    );
    assert_eq!(r.verdict, Verdict::Escalate);
    assert_eq!(r.recommended_arm.as_deref(), Some("lora"));
    let compared: Vec<&str> = r.comparisons.iter().map(|c| c.a.as_str()).collect();
    assert!(
        !compared.iter().any(|a| a.contains("noise")),
        "{compared:?}"
    );
}

#[test]
fn a_noisy_point_is_never_recommended() {
    // Only the noisy point meets the target: nothing shippable does.
    let r = report(
        170,
        &[("lora", 400, 0.0, 176), ("lora~noise0.1", 400, 0.1, 182)],
    );
    assert_eq!(r.verdict, Verdict::Neither);
    assert_eq!(r.closest.as_ref().unwrap().arm, "lora");
    assert!(r.best_finetune_arm.as_deref() == Some("lora"));
}

#[test]
fn a_target_beyond_the_curve_is_never_or_an_extrapolation() {
    let r = report(
        170,
        &[
            ("lora", 400, 0.0, 150),
            ("lora~n50", 50, 0.0, 148),
            ("lora~n100", 100, 0.0, 149),
            ("lora~n200", 200, 0.0, 150),
        ],
    );
    let need = r.curves.learning[0].needed.as_ref().unwrap();
    assert!(need.extrapolated, "{need:?}");
    let text = render_report(&r, ReportFormat::Text);
    assert!(text.contains("Learning curves and label noise:"), "{text}");
    assert!(
        r.reasons
            .iter()
            .any(|s| s.contains("never reaches the target") || s.contains("extrapolation")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn the_curves_table_renders_in_text() {
    let text = render_report(&sweep(), ReportFormat::Text);
    let start = text.find("Learning curves and label noise:").unwrap();
    let section: String = text[start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    expect_test::expect![[r#"
        Learning curves and label noise:
          curve                      arm  examples  labels flipped  quality       95% CI    fit
          lora · examples       lora~n50        50              0%    0.700  0.635–0.760  0.701
          lora · examples      lora~n100       100              0%    0.800  0.745–0.855  0.798
          lora · examples      lora~n200       200              0%    0.870  0.825–0.915  0.872
          lora · examples           lora       400              0%    0.930  0.895–0.965  0.929
          lora · noise              lora       400              0%    0.930  0.895–0.965      –
          lora · noise     lora~noise0.2       400             20%    0.910  0.870–0.950      –
          lora · noise     lora~noise0.4       400             40%    0.800  0.745–0.855      –
          - `lora`: fitted a − b·n^(−c) on 4 sizes by least squares."#]]
    .assert_eq(&section);
}
