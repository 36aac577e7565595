//! A whole run against a healthy server: every arm answers every item, the leaderboard has the
//! `report::LeaderboardRow` fields, `runs` lists the run, and `--arms`/`--limit` narrow the work.

use std::time::Duration;

use crate::support::{Env, SpecOptions, run_id, yes_server};

const ITEMS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_scores_every_arm_on_every_item() {
    let env = Env::with_server(yes_server(Duration::from_millis(5))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions::default());

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert_eq!(run_id(&out.stdout), 1);
    assert_eq!(
        env.server().requests(),
        2 * ITEMS as u64,
        "one call per arm and item"
    );

    let rows = env.leaderboard(None).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        for field in [
            "arm",
            "kind",
            "provider",
            "prompt",
            "n",
            "errors",
            "metric",
            "quality",
            "ci_low",
            "ci_high",
            "cost_usd",
            "cost_per_1k_usd",
            "latency_p50_ms",
            "latency_p95_ms",
            "tokens_in",
            "tokens_out",
        ] {
            assert!(
                row.get(field).is_some(),
                "leaderboard row lacks {field}: {row}"
            );
        }
        assert_eq!(row["kind"], "prompt");
        assert_eq!(row["provider"], "fake");
        assert_eq!(row["n"], ITEMS as u64);
        assert_eq!(row["errors"], 0);
        assert_eq!(row["metric"], "equals");
        // The server says "yes"; every fifth target is "no".
        let quality = row["quality"].as_f64().unwrap();
        assert!((quality - 0.8).abs() < 1e-9, "{row}");
        let (lo, hi) = (
            row["ci_low"].as_f64().unwrap(),
            row["ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= quality && quality <= hi, "{row}");
        assert!(row["cost_usd"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["tokens_in"].as_u64().unwrap() > 0, "{row}");
    }

    let runs = env.run(&["runs"]).await;
    runs.expect_code(0);
    assert!(runs.stdout.contains("completed"), "{}", runs.stdout);

    for format in ["table", "csv", "markdown"] {
        let out = env.run(&["leaderboard", "e2e", "--format", format]).await;
        out.expect_code(0);
        assert!(
            out.stdout.contains("plain@fake"),
            "{format}: {}",
            out.stdout
        );
    }
    env.run(&["compare", "plain@fake", "polite@fake"])
        .await
        .expect_code(0);
    env.run(&["report", "--format", "json"])
        .await
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arms_and_limit_narrow_the_run() {
    let env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions::default());

    let out = env
        .run(&[
            "run",
            "spec.yaml",
            "--arms",
            "polite@fake",
            "--limit",
            "5",
            "-j",
            "2",
        ])
        .await;
    out.expect_code(0);
    assert_eq!(env.server().requests(), 5);
    let rows = env.leaderboard(None).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["arm"], "polite@fake");
    assert_eq!(rows[0]["n"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_stays_within_the_provider_limit() {
    let env = Env::with_server(yes_server(Duration::from_millis(20))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        max_concurrency: 3,
        ..SpecOptions::default()
    });
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    assert!(
        env.server().max_in_flight() <= 3,
        "{}",
        env.server().max_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_its_key_is_skipped_with_a_note() {
    let mut env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.api_key = None;
    env.write_dataset(4);
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["run", "spec.yaml"]).await;
    // Every arm of the experiment needs the missing key: nothing can run.
    out.expect_code(1);
    assert!(out.stderr.contains("OPENAI_API_KEY"), "{}", out.stderr);
    assert_eq!(env.server().requests(), 0);
}
