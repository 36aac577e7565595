//! `bench-serving` through the binary on the tiny llama (`llm::testing`): a local prompt arm is
//! measured at two batch sizes on the eval prompts, the figures are stored with the run and
//! the report costs the arm at the size within the latency SLO; a hosted or unknown arm, or a
//! spec never run, is bad input.

use crate::support::Env;

const SPEC: &str = r#"name: e2e-bench
dataset: { path: data.jsonl, input: text, target: label }
providers:
  - { id: tiny, type: local, model: ./tiny.gguf, batch_size: 4 }
  - { id: fake, type: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:9/v1", api_key_env: OPENAI_API_KEY }
prompts:
  - id: plain
    template: "Q: {{text}}"
generation: { max_tokens: 4, temperature: 0 }
scorers: [{ type: equals }]
costs:
  serving: { latency_slo_ms: 600000 }
"#;

fn setup() -> Env {
    let env = Env::without_server();
    let mut rows = String::new();
    for i in 0..8 {
        let row = serde_json::json!({ "id": format!("item-{i}"), "text": format!("<q{i}> fine?"), "label": "yes" });
        rows.push_str(&format!("{row}\n"));
    }
    env.write("data.jsonl", &rows);
    llm::testing::write_tiny_gguf(&env.path("tiny.gguf"), 5).expect("writing the tiny model");
    env.write("spec.yaml", SPEC);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_arm_is_measured_stored_and_costed() {
    let env = setup();
    let before = env
        .run(&["bench-serving", "spec.yaml", "--arm", "plain@tiny"])
        .await;
    before.expect_code(1);
    assert!(
        before.stderr.contains("run the experiment first"),
        "{}",
        before.stderr
    );

    env.run(&["run", "spec.yaml", "--arms", "plain@tiny"])
        .await
        .expect_code(0);
    let out = env
        .run(&[
            "bench-serving",
            "spec.yaml",
            "--arm",
            "plain@tiny",
            "--sizes",
            "1,4",
            "--items",
            "8",
        ])
        .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("items/s") && out.stdout.contains("stored with run 1"),
        "{}",
        out.stdout
    );

    let report = env.run(&["report", "--format", "json"]).await;
    report.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    let rows = json["serving_bench"].as_array().expect("serving_bench");
    let sizes: Vec<u64> = rows
        .iter()
        .map(|r| r["batch_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 4]);
    for r in rows {
        assert_eq!(r["items"], 8);
        assert!(r["items_per_second"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["latency_p95_ms"].as_f64().unwrap() >= r["latency_p50_ms"].as_f64().unwrap());
    }
    let arm = json["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == "plain@tiny")
        .unwrap();
    let used = &arm["serving_bench"];
    let ips = used["items_per_second"].as_f64().unwrap();
    let per_request = arm["cost_per_request_usd"].as_f64().unwrap();
    // 0.05 $/h (the local default) for 1 / items-per-second machine seconds.
    assert!((per_request - 0.05 / 3600.0 / ips).abs() < 1e-12, "{arm}");
    let text = env.run(&["report"]).await;
    assert!(
        text.stdout
            .contains("Local throughput and latency (bench-serving)"),
        "{}",
        text.stdout
    );
}

/// `bench-serving spec.yaml --arm ARM EXTRA…` fails as bad input, saying `why`.
async fn refused(env: &Env, arm: &str, extra: &[&str], why: &str) {
    let mut args = vec!["bench-serving", "spec.yaml", "--arm", arm];
    args.extend_from_slice(extra);
    let out = env.run(&args).await;
    out.expect_code(1);
    assert!(out.stderr.contains(why), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_local_arms_of_the_spec_can_be_measured() {
    let env = setup();
    env.run(&["run", "spec.yaml", "--arms", "plain@tiny"])
        .await
        .expect_code(0);
    refused(&env, "plain@fake", &[], "is a hosted arm").await;
    refused(&env, "nope", &[], "its local arms are: `plain@tiny`").await;
    refused(
        &env,
        "plain@tiny",
        &["--sizes", "0"],
        "each batch size must be 1 to 1024",
    )
    .await;
}
