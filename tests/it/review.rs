//! Review routing (`review:`) through the binary: a hosted arm answering in the label set with
//! confidences from the endpoint's log-probabilities, its threshold chosen on the calibration
//! half of the eval items, every quality figure on the other half, and review's cost in the
//! report, all read back from the stored run.
//!
//! The server says `yes` (log-probability −0.01) to items 0, 1, 2 of every five, all labelled
//! `yes`, and `no` (−1.0) to items 3 and 4, of which only 4 is labelled `no`: the confident
//! answers are all right, the unsure ones half wrong, so the threshold lands on the confident ones.

use std::collections::HashMap;

use testserver::ServerConfig;

use crate::support::{Env, SpecOptions};

const ITEMS: usize = 200;

fn server() -> ServerConfig {
    let rules = (0..ITEMS)
        .filter(|i| i % 5 >= 3)
        .map(|i| (format!("<q{i}>"), "no".to_owned()))
        .collect();
    ServerConfig {
        rules,
        default_answers: vec!["yes".into()],
        token_logprobs: HashMap::from([("yes".into(), vec![-0.01]), ("no".into(), vec![-1.0])]),
        ..ServerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_chooses_a_threshold_and_costs_what_it_sends_to_people() {
    let env = Env::with_server(server()).await;
    env.write_dataset(ITEMS);
    let spec = env.write_spec(&SpecOptions {
        two_prompts: false,
        extra: "review: { target_accuracy: 0.9, delta: 0.1 }\n\
                costs:\n  traffic: { daily_requests: 1000 }\n  review: { cost_per_review_usd: 0.25 }\n"
            .into(),
        ..SpecOptions::default()
    });
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = text.replace(
        "template: \"Q: {{text}}\"",
        "template: \"Q: {{text}}\"\n    choices: [yes, no]",
    );
    std::fs::write(&spec, text).unwrap();
    env.run(&["run", "spec.yaml"]).await.expect_code(0);

    let out = env.run(&["report", "--format", "json"]).await;
    out.expect_code(0);
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let summary = &report["review"];
    assert_eq!(summary["calibration_items"], 100, "{summary}");
    assert_eq!(summary["test_items"], 100, "{summary}");
    assert_eq!(summary["spec"]["correction"], "fixed_sequence");
    let arm = &report["arms"][0];
    let review = &arm["review"];
    let chosen = &review["selection"]["chosen"];
    let threshold = chosen["threshold"].as_f64().unwrap();
    assert!((threshold - (-0.01f64).exp()).abs() < 1e-4, "{review}");
    assert_eq!(chosen["errors"], 0, "{review}");
    assert_eq!(review["automated_accuracy"], 1.0, "{review}");
    // About three in five test items get the confident `yes`.
    let coverage = review["coverage"].as_f64().unwrap();
    assert!((0.45..=0.75).contains(&coverage), "{review}");
    let automated = coverage * 100.0;
    assert!((automated - automated.round()).abs() < 1e-9);
    // What ships: automated answers right, reviewed ones right too.
    assert_eq!(arm["quality"], 1.0, "{arm}");
    let cost = &arm["breakdown"]["review"];
    let reviewed = 1.0 - coverage;
    let close = |v: &serde_json::Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-9;
    assert!(close(&cost["reviews_per_day"], 1000.0 * reviewed), "{cost}");
    assert!(close(&cost["daily_usd"], 250.0 * reviewed), "{cost}");
    assert!(close(&cost["per_request_usd"], 0.25 * reviewed), "{cost}");

    // Every quality figure leaves the calibration half out; the leaderboard's too.
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["n"], 100, "{row}");
    let text = env.run(&["report"]).await;
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("With review (accuracy of automated answers at least 90%")
    );
    assert!(
        text.stdout.contains("100 set aside to calibrate review"),
        "{}",
        text.stdout
    );

    let html = env.path("report.html");
    env.run(&["report", "--html", html.to_str().unwrap()])
        .await
        .expect_code(0);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Accuracy against coverage"));
}
