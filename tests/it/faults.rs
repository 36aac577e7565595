//! Each fault the test server can inject: transient ones (429 with Retry-After, 500, a stall past
//! the timeout, malformed JSON, a truncated body) are retried and the run completes with every
//! item answered; a permanent 400 fails its item without retry, the run finishes with exit 3,
//! and every other item is stored.

use std::time::Duration;

use testserver::{Fault, FaultPlan, ServerConfig};

use crate::support::{Env, SpecOptions};

const ITEMS: usize = 12;

fn env_spec() -> SpecOptions {
    SpecOptions {
        two_prompts: false,
        timeout_s: 1.0,
        max_retries: 4,
        ..SpecOptions::default()
    }
}

async fn check_transient(fault: Fault, times: u32) {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        // `<q3>` fails `times` times, then succeeds.
        faults: FaultPlan::none().first_n("<q3>", times, fault.clone()),
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(ITEMS);
    env.write_spec(&env_spec());

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["n"], ITEMS as u64, "{fault:?}: {row}");
    assert_eq!(row["errors"], 0, "{fault:?}: {row}");
    assert_eq!(
        env.server().requests_for("Q: <q3> is this fine?"),
        u64::from(times) + 1,
        "{fault:?}: retried until it succeeded"
    );
    assert_eq!(env.server().requests(), ITEMS as u64 + u64::from(times));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_with_retry_after_is_retried() {
    check_transient(
        Fault::RateLimited {
            retry_after_secs: 1.0,
        },
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    check_transient(Fault::ServerError, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_timeout_is_retried() {
    check_transient(Fault::Stall(Duration::from_secs(30)), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_retried() {
    check_transient(Fault::MalformedJson, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_is_retried() {
    check_transient(Fault::TruncatedBody, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_bad_request_fails_its_item_and_exit_code_3() {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        faults: FaultPlan::none().always("<q5>", Fault::BadRequest),
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(ITEMS);
    env.write_spec(&env_spec());

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(3);
    assert!(
        out.stderr.contains("item-5"),
        "the failure is shown: {}",
        out.stderr
    );
    assert!(out.stdout.contains("1 failed"), "{}", out.stdout);
    assert_eq!(
        env.server().requests_for("Q: <q5> is this fine?"),
        1,
        "a 400 is not retried"
    );
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["errors"], 1, "{row}");
    // Every other item was answered and stored.
    let answered = row["n"].as_u64().unwrap() - row["errors"].as_u64().unwrap();
    assert!(
        answered == ITEMS as u64 - 1 || row["n"] == ITEMS as u64 - 1,
        "{row}"
    );
}

/// A wrong key is a 401 for every item: the first one stops the provider's arms (calls already
/// in flight finish), the rest fail unsent with the reason, and the run exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_stops_the_providers_arms_after_the_first_answer() {
    let mut env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        require_api_key: Some("sk-the-right-key-000".into()),
        ..ServerConfig::default()
    })
    .await;
    env.api_key = Some("sk-a-wrong-key-111".into());
    env.write_dataset(40);
    env.write_spec(&SpecOptions {
        max_concurrency: 2,
        ..env_spec()
    });
    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(3);
    assert!(out.stderr.contains("refused the API key"), "{}", out.stderr);
    // At most the calls in flight at the first 401 (max_concurrency 2) were sent.
    let sent = env.server().requests();
    assert!(sent <= 2, "{sent} requests after a 401");
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["errors"], 40, "{row}");
}

/// `finish_reason: length`: the answer is kept and scored, marked truncated in the leaderboard,
/// and a cached copy served later is still marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_cut_at_max_tokens_are_marked_truncated() {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes and then a great many more words than eight".into()],
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(4);
    env.write_spec(&SpecOptions {
        two_prompts: false,
        ..SpecOptions::default()
    });
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    let row = env.row(None, "plain@fake").await;
    assert_eq!(
        (row["truncated"].as_u64(), row["errors"].as_u64()),
        (Some(4), Some(0))
    );
    let table = env.run(&["leaderboard"]).await;
    assert!(table.stdout.contains("truncated"), "{}", table.stdout);

    let sent = env.server().requests();
    env.run(&["run", "spec.yaml", "--new"]).await.expect_code(0);
    assert_eq!(env.server().requests(), sent, "answered from the cache");
    let row = env.row(None, "plain@fake").await;
    assert_eq!(row["truncated"].as_u64(), Some(4), "{row}");
}
