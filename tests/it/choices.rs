//! Answers constrained to labels (`choices:`) on a hosted endpoint, through the binary: with
//! structured outputs the label comes from the JSON-schema enum with a confidence from the
//! token log-probabilities; a server without them gets one refused request, then free text
//! mapped onto the labels. Either way the scorer compares the label, the choice is stored, and
//! a cached answer keeps it.

use testserver::ServerConfig;

use crate::support::{Env, SpecOptions};

const ITEMS: usize = 10;

async fn run_with_choices(config: ServerConfig) -> Env {
    let env = Env::with_server(config).await;
    env.write_dataset(ITEMS);
    let spec = env.write_spec(&SpecOptions {
        two_prompts: false,
        max_concurrency: 1,
        ..SpecOptions::default()
    });
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = text.replace(
        "template: \"Q: {{text}}\"",
        "template: \"Q: {{text}}\"\n    choices: [yes, no]",
    );
    assert!(text.contains("choices: [yes, no]"), "{text}");
    std::fs::write(&spec, text).unwrap();
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_outputs_give_the_label_and_its_confidence() {
    let env = run_with_choices(ServerConfig {
        default_answers: vec!["yes".into()],
        ..ServerConfig::default()
    })
    .await;
    let log = env.server().requests_log();
    assert!(
        log.iter()
            .all(|e| e.response_format.as_deref() == Some("json_schema"))
    );
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["choice_via"]["schema"], ITEMS as u64, "{row}");
    // 8 of 10 labels are `yes`; the server always says `yes`.
    assert_eq!(row["quality"], 0.8, "{row}");
    let confidence = row["mean_confidence"].as_f64().unwrap();
    assert!(
        (confidence - (-0.1f64).exp()).abs() < 1e-6,
        "one label token at logprob -0.1: {row}"
    );

    // Every answer at confidence c = e^-0.1, 8 of 10 right: one bin, ECE = |0.8 − c|, Brier =
    // 0.8 (1 − c)² + 0.2 c².
    let c = (-0.1f64).exp();
    let calibration = &row["calibration"];
    assert_eq!(calibration["n"], ITEMS as u64, "{row}");
    let ece = calibration["ece"].as_f64().unwrap();
    assert!((ece - (c - 0.8)).abs() < 1e-6, "{calibration}");
    let brier = calibration["brier"].as_f64().unwrap();
    let expected = 0.8 * (1.0 - c).powi(2) + 0.2 * c * c;
    assert!((brier - expected).abs() < 1e-6, "{calibration}");

    let sent = env.server().requests();
    env.run(&["run", "spec.yaml", "--new"]).await.expect_code(0);
    assert_eq!(env.server().requests(), sent, "answered from the cache");
    let cached = env.row(None, "plain@fake").await;
    assert_eq!(cached["choice_via"], row["choice_via"], "{cached}");
    assert_eq!(cached["mean_confidence"], row["mean_confidence"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_structured_outputs_free_text_is_mapped_onto_the_labels() {
    let env = run_with_choices(ServerConfig {
        default_answers: vec!["Yes, it is fine.".into()],
        structured_outputs: false,
        ..ServerConfig::default()
    })
    .await;
    let log = env.server().requests_log();
    let with_schema = log.iter().filter(|e| e.response_format.is_some()).count();
    assert_eq!(with_schema, 1, "one refused request, then free text");
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["choice_via"]["first_word"], ITEMS as u64, "{row}");
    assert_eq!(
        row["quality"], 0.8,
        "the label is scored, not the sentence: {row}"
    );
}

/// `logprobs: true` on a provider gives free-text answers a confidence too (the geometric-mean
/// probability of their tokens), so the leaderboard reports their calibration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logprobs_on_a_provider_give_free_text_a_confidence() {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(ITEMS);
    let spec = env.write_spec(&SpecOptions {
        two_prompts: false,
        ..SpecOptions::default()
    });
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "    api_key_env: OPENAI_API_KEY\n",
        "    api_key_env: OPENAI_API_KEY\n    logprobs: true\n",
    );
    assert!(text.contains("logprobs: true"), "{text}");
    std::fs::write(&spec, text).unwrap();
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    let log = env.server().requests_log();
    assert!(
        log.iter()
            .all(|e| e.logprobs && e.response_format.is_none())
    );
    let row = env.row(None, "plain@fake").await;
    assert!(row.get("choice_via").is_none(), "{row}");
    assert_eq!(row["calibration"]["n"], ITEMS as u64, "{row}");
    let confidence = row["calibration"]["mean_confidence"].as_f64().unwrap();
    assert!((confidence - (-0.1f64).exp()).abs() < 1e-6, "{row}");
}
