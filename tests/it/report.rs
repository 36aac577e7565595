//! The decision report read back from a run: each cost assumption says whether the spec declared
//! it or it is the default, even when the declared value equals the default.

use std::time::Duration;

use crate::support::{Env, SpecOptions, yes_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_assumptions_written_in_the_spec_are_declared_even_at_their_default() {
    let env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.write_dataset(5);
    env.write_spec(&SpecOptions {
        two_prompts: false,
        // 10,000 requests a day is also the default.
        extra: "costs:\n  traffic: { daily_requests: 10000 }\n  staff: { hourly_rate_usd: 120 }\n"
            .into(),
        ..SpecOptions::default()
    });
    env.run(&["run", "spec.yaml"]).await.expect_code(0);

    let out = env.run(&["report", "--format", "json"]).await;
    out.expect_code(0);
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let source = |name: &str| {
        let assumptions = report["assumptions"].as_array().expect("assumptions");
        let a = assumptions
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no assumption {name}: {report}"));
        (
            a["value"].clone(),
            a["source"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        source("daily_requests"),
        (10000.0.into(), "declared".into())
    );
    assert_eq!(source("hourly_rate_usd"), (120.0.into(), "declared".into()));
    assert_eq!(source("horizon_days"), (365.0.into(), "default".into()));
    assert_eq!(source("batch_api"), (false.into(), "default".into()));

    let text = env.run(&["report"]).await;
    text.expect_code(0);
    let line = text
        .stdout
        .lines()
        .find(|l| l.contains("daily_requests"))
        .unwrap_or_else(|| panic!("{}", text.stdout));
    assert!(line.contains("declared"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_under_exits_4_when_the_recommended_arm_misses_the_bar() {
    let env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.write_dataset(5);
    env.write_spec(&SpecOptions::default());
    env.run(&["run", "spec.yaml"]).await.expect_code(0);

    // Without the flag the report never fails.
    env.run(&["report"]).await.expect_code(0);
    // No arm can score above 1.0, so this bar is always missed.
    let out = env.run(&["report", "--fail-under", "1.01"]).await;
    out.expect_code(4);
    assert!(out.stderr.contains("fail-under"), "{}", out.stderr);

    // A bar of 0 passes exactly when some arm is recommended.
    let json = env.run(&["report", "--format", "json"]).await;
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let expected = if report["recommended_arm"].is_null() {
        4
    } else {
        0
    };
    env.run(&["report", "--fail-under", "0"])
        .await
        .expect_code(expected);

    // The flag before the experiment's name: the name is not taken for a quality.
    let name = report["experiment"].as_str().unwrap().to_owned();
    let flag_first = env.run(&["report", "--fail-under", &name]).await;
    assert_ne!(flag_first.code, Some(1), "{}", flag_first.stderr);
    assert_eq!(flag_first.stdout, env.run(&["report", &name]).await.stdout);
    env.run(&["report", "--fail-under", "1.01", &name])
        .await
        .expect_code(4);
    let bad = env.run(&["report", "--fail-under", "high", &name]).await;
    bad.expect_code(1);
    assert!(
        bad.stderr.contains("--fail-under takes a quality"),
        "{}",
        bad.stderr
    );
}
