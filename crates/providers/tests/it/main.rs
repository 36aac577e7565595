//! `providers::Client` against the real test server over loopback HTTP: answers and cost,
//! every retry class, the limits, and that the API key never reaches an error.
//!
//! Timing checks are lower bounds only (a retry honoured `Retry-After`, a rate limit spaced
//! attempts); nothing asserts that something was fast.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use domain::{GenerationParams, Message, Pricing, Secret};
use providers::{CallError, CallOutcome, Client, Endpoint, RetryPolicy};
use testserver::{Fault, FaultPlan, ServerConfig, TestServer};

const KEY: &str = "sk-test-7f3a9c1e5b";

fn endpoint(server: &TestServer) -> Endpoint {
    Endpoint {
        id: "test".into(),
        base_url: server.base_url(),
        model: "gpt-4o-mini".into(),
        api_key: Some(Secret::new(KEY)),
        max_concurrency: 4,
        requests_per_minute: None,
        timeout: Duration::from_secs(10),
        max_retries: 3,
        structured_outputs: None,
        logprobs: None,
        pricing: Pricing {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        },
    }
}

/// Backoff in milliseconds, so retry tests finish quickly.
fn fast() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(10),
    }
}

fn client(endpoint: Endpoint) -> Client {
    Client::new(endpoint).unwrap().with_retry_policy(fast())
}

fn prompt(user: &str) -> Vec<Message> {
    vec![Message::system("Answer in one word."), Message::user(user)]
}

async fn serve(faults: FaultPlan) -> TestServer {
    testserver::spawn(ServerConfig {
        rules: vec![("great".into(), "positive".into())],
        default_answers: vec!["negative".into()],
        faults,
        require_api_key: Some(KEY.into()),
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

async fn call(client: &Client, user: &str) -> CallOutcome {
    client
        .chat(&prompt(user), &GenerationParams::default())
        .await
}

#[tokio::test]
async fn a_normal_call_reports_usage_and_cost() {
    let server = serve(FaultPlan::none()).await;
    let client = client(endpoint(&server));
    let out = call(&client, "a great film").await;
    let answer = out.result.unwrap();
    assert_eq!(answer.text, "positive");
    // "Answer in one word." (4 words) + "a great film" (3 words); "positive" (1 word).
    assert_eq!(answer.usage.prompt_tokens, 7);
    assert_eq!(answer.usage.completion_tokens, 1);
    assert!((answer.cost_usd - (7.0 * 1.0 + 1.0 * 2.0) / 1e6).abs() < 1e-15);
    assert_eq!(out.attempts, 1);

    let log = server.requests_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].model, "gpt-4o-mini");
    assert_eq!(log[0].last_user_message, "a great film");
    assert_eq!(log[0].api_key_matched, Some(true));
    server.shutdown().await;
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured_then_succeeds() {
    let server = serve(FaultPlan::none().first_n(
        "flaky",
        1,
        Fault::RateLimited {
            retry_after_secs: 1.0,
        },
    ))
    .await;
    let client = client(endpoint(&server));
    let start = Instant::now();
    let out = call(&client, "flaky item").await;
    assert_eq!(out.result.unwrap().text, "negative");
    assert_eq!(out.attempts, 2);
    // The backoff alone would wait at most 20 ms: only Retry-After explains a full second.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(out.latency >= Duration::from_secs(1));
    assert_eq!(server.requests_for("flaky item"), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = serve(FaultPlan::none().first_n("wobbly", 2, Fault::ServerError)).await;
    let client = client(endpoint(&server));
    let out = call(&client, "wobbly").await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.attempts, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_attempt_times_out_and_is_retried() {
    let server =
        serve(FaultPlan::none().first_n("hang", 1, Fault::Stall(Duration::from_secs(60)))).await;
    let client = client(Endpoint {
        timeout: Duration::from_millis(300),
        ..endpoint(&server)
    });
    let start = Instant::now();
    let out = call(&client, "hang").await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.attempts, 2);
    assert!(start.elapsed() >= Duration::from_millis(300));
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_retried() {
    let server = serve(
        FaultPlan::none()
            .first_n("garbled", 2, Fault::MalformedJson)
            .first_n("cut", 2, Fault::TruncatedBody),
    )
    .await;
    let client = client(endpoint(&server));
    let garbled = call(&client, "garbled").await;
    assert!(garbled.result.is_ok(), "{:?}", garbled.result);
    assert_eq!(garbled.attempts, 3);
    let cut = call(&client, "cut").await;
    assert!(cut.result.is_ok(), "{:?}", cut.result);
    assert_eq!(cut.attempts, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn the_last_malformed_or_truncated_attempt_is_reported_as_such() {
    let server = serve(
        FaultPlan::none()
            .always("garbled", Fault::MalformedJson)
            .always("cut", Fault::TruncatedBody),
    )
    .await;
    let client = client(Endpoint {
        max_retries: 1,
        ..endpoint(&server)
    });
    let garbled = call(&client, "garbled").await;
    assert!(
        matches!(garbled.result, Err(CallError::Malformed { .. })),
        "{:?}",
        garbled.result
    );
    let cut = call(&client, "cut").await;
    assert!(
        matches!(cut.result, Err(CallError::Truncated { .. })),
        "{:?}",
        cut.result
    );
    assert_eq!((garbled.attempts, cut.attempts), (2, 2));
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_request_is_not_retried() {
    let server = serve(FaultPlan::none().always("wrong", Fault::BadRequest)).await;
    let client = client(endpoint(&server));
    let out = call(&client, "wrong").await;
    assert_eq!(out.attempts, 1);
    match out.result {
        Err(CallError::Http {
            status: 400,
            body_excerpt,
        }) => assert!(body_excerpt.contains("Invalid request"), "{body_excerpt}"),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    assert_eq!(server.requests_for("wrong"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let server = serve(FaultPlan::none().always("doomed", Fault::ServerError)).await;
    let client = client(Endpoint {
        max_retries: 2,
        ..endpoint(&server)
    });
    let out = call(&client, "doomed").await;
    assert_eq!(out.attempts, 3);
    assert_eq!(out.result.unwrap_err().status(), Some(500));
    assert_eq!(server.requests_for("doomed"), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = serve(FaultPlan::none()).await;
    let client = client(Endpoint {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        max_retries: 1,
        ..endpoint(&server)
    });
    let out = call(&client, "anyone there").await;
    assert_eq!(out.attempts, 2);
    assert!(
        matches!(out.result, Err(CallError::Connection { .. })),
        "{:?}",
        out.result
    );
    server.shutdown().await;
}

#[tokio::test]
async fn max_concurrency_is_respected() {
    let server = testserver::spawn(ServerConfig {
        latency: Duration::from_millis(30),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let client = client(Endpoint {
        max_concurrency: 3,
        ..endpoint(&server)
    });
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let client = client.clone();
        set.spawn(async move { call(&client, &format!("item {i}")).await });
    }
    while let Some(out) = set.join_next().await {
        assert!(out.unwrap().result.is_ok());
    }
    assert_eq!(server.requests(), 20);
    assert!(
        server.max_in_flight() <= 3,
        "{} in flight",
        server.max_in_flight()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn requests_per_minute_spaces_attempts() {
    let server = serve(FaultPlan::none()).await;
    let client = client(Endpoint {
        max_concurrency: 8,
        requests_per_minute: Some(600), // one attempt per 100 ms
        ..endpoint(&server)
    });
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let client = client.clone();
        set.spawn(async move { call(&client, &format!("item {i}")).await });
    }
    while let Some(out) = set.join_next().await {
        assert!(out.unwrap().result.is_ok());
    }
    // Five slots 100 ms apart: the last starts at least 400 ms after the first.
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_key_never_reaches_an_error() {
    let server = serve(
        FaultPlan::none()
            .always("echo-400", Fault::EchoAuthorization { status: 400 })
            .always("echo-502", Fault::EchoAuthorization { status: 502 }),
    )
    .await;
    let client = client(Endpoint {
        max_retries: 1,
        ..endpoint(&server)
    });
    for user in ["echo-400", "echo-502"] {
        let out = call(&client, user).await;
        let err = out.result.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(!shown.contains("sk-test"), "{shown}");
        assert!(shown.contains("Bearer ****"), "{shown}");
    }
    // The server did receive the key: the echo is real, the redaction is ours.
    assert!(
        server
            .requests_log()
            .iter()
            .all(|e| e.api_key_matched == Some(true))
    );

    // A wrong key is a 401: not retried, and not shown either.
    let wrong = Client::new(Endpoint {
        api_key: Some(Secret::new("sk-wrong-0000")),
        ..endpoint(&server)
    })
    .unwrap()
    .with_retry_policy(fast());
    let out = call(&wrong, "hello").await;
    assert_eq!(out.attempts, 1);
    let err = out.result.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!format!("{err} {err:?}").contains("sk-wrong"));
    server.shutdown().await;
}

#[tokio::test]
async fn client_debug_does_not_show_the_key() {
    let server = serve(FaultPlan::none()).await;
    let client = client(endpoint(&server));
    let shown = format!("{client:?} {:?}", client.endpoint());
    assert!(!shown.contains(KEY), "{shown}");
    server.shutdown().await;
}

mod answers;
mod batch;
mod choices;
