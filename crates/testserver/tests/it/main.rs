//! The test server over real loopback HTTP, driven with plain `reqwest`: wire format, answers,
//! usage, auth, fault plans, counting and concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testserver::{Fault, FaultPlan, ServerConfig, TestServer};

fn body(user: &str) -> Value {
    json!({
        "model": "test-model",
        "messages": [
            { "role": "system", "content": "You label reviews." },
            { "role": "user", "content": user },
        ],
        "max_tokens": 16,
        "temperature": 0,
    })
}

async fn post(server: &TestServer, user: &str) -> reqwest::Response {
    post_with(server, body(user), None).await
}

async fn post_with(server: &TestServer, body: Value, key: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn speaks_the_openai_wire_format() {
    let server = testserver::spawn(ServerConfig {
        rules: vec![("great".into(), "positive".into())],
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let (status, v) = json_of(post(&server, "a great movie").await).await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "test-model");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 0);
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "positive");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // "You label reviews." (3 words) + "a great movie" (3 words)
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["completion_tokens"], 1);
    assert_eq!(v["usage"]["total_tokens"], 7);
    server.shutdown().await;
}

#[tokio::test]
async fn default_answers_are_stable_and_max_tokens_cuts() {
    let server = testserver::spawn(ServerConfig {
        default_answers: vec!["one two three".into(), "four five six".into()],
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let (_, a) = json_of(post(&server, "same prompt").await).await;
    let (_, b) = json_of(post(&server, "same prompt").await).await;
    assert_eq!(a["choices"][0]["message"], b["choices"][0]["message"]);

    let mut short = body("same prompt");
    short["max_tokens"] = json!(2);
    let (_, c) = json_of(post_with(&server, short, None).await).await;
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(c["usage"]["completion_tokens"], 2);
    assert_eq!(server.requests(), 3);
    assert_eq!(server.requests_for("same prompt"), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn require_api_key_rejects_missing_and_wrong_keys_and_logs_no_key() {
    let server = testserver::spawn(ServerConfig {
        require_api_key: Some("sk-test-123".into()),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(post_with(&server, body("x"), None).await.status(), 401);
    let wrong = post_with(&server, body("x"), Some("sk-wrong")).await;
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains("sk-wrong"));
    assert_eq!(
        post_with(&server, body("x"), Some("sk-test-123"))
            .await
            .status(),
        200
    );
    let log = server.requests_log();
    let seen: Vec<_> = log
        .iter()
        .map(|e| (e.authorization_present, e.api_key_matched, e.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (false, Some(false), 401),
            (true, Some(false), 401),
            (true, Some(true), 200)
        ]
    );
    assert!(!format!("{log:?}").contains("sk-"));
    server.shutdown().await;
}

#[tokio::test]
async fn first_n_faults_then_success_and_always_faults() {
    let server = testserver::spawn(ServerConfig {
        faults: FaultPlan::none()
            .first_n(
                "flaky",
                2,
                Fault::RateLimited {
                    retry_after_secs: 2.0,
                },
            )
            .always("doomed", Fault::ServerError),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let r = post(&server, "flaky item").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let (_, err) = json_of(r).await;
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    assert_eq!(post(&server, "flaky item").await.status(), 429);
    assert_eq!(post(&server, "flaky item").await.status(), 200);
    for _ in 0..3 {
        assert_eq!(post(&server, "doomed item").await.status(), 500);
    }
    assert_eq!(post(&server, "fine").await.status(), 200);
    let faults: Vec<_> = server
        .requests_log()
        .into_iter()
        .map(|e| e.fault.is_some())
        .collect();
    assert_eq!(faults, [true, true, false, true, true, true, false]);
    server.shutdown().await;
}

#[tokio::test]
async fn every_kth_request_faults() {
    let server = testserver::spawn(ServerConfig {
        faults: FaultPlan::none().every_kth(3, Fault::BadRequest),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(post(&server, &format!("q{i}")).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 400, 200, 200, 400]);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_truncated_bodies_fail_to_decode() {
    let server = testserver::spawn(ServerConfig {
        faults: FaultPlan::none()
            .always("garbled", Fault::MalformedJson)
            .always("cut", Fault::TruncatedBody),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let garbled = post(&server, "garbled").await;
    assert_eq!(garbled.status(), 200);
    let text = garbled.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let cut = post(&server, "cut").await;
    assert_eq!(cut.status(), 200);
    let announced: usize = cut.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(announced > 0);
    let err = cut.bytes().await.unwrap_err();
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    // The server is still healthy afterwards.
    assert_eq!(post(&server, "fine").await.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn echo_authorization_fault_echoes_the_header() {
    let server = testserver::spawn(ServerConfig {
        faults: FaultPlan::none().always("echo", Fault::EchoAuthorization { status: 502 }),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let r = post_with(&server, body("echo"), Some("sk-echo-me")).await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("Bearer sk-echo-me"));
    server.shutdown().await;
}

#[tokio::test]
async fn stall_waits_and_shutdown_cuts_it_short() {
    let server = testserver::spawn(ServerConfig {
        faults: FaultPlan::none().first_n("slow", 1, Fault::Stall(Duration::from_secs(600))),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&body("slow"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    while server.in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await;
    // The stalled request ended with the shutdown instead of after 600 s.
    let outcome = pending.await.unwrap();
    assert!(matches!(outcome, Ok(503) | Err(_)), "{outcome:?}");
}

#[tokio::test]
async fn holds_hundreds_of_requests_in_flight() {
    let server = testserver::spawn(ServerConfig {
        latency: Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", server.base_url());
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..256 {
        let (client, url) = (client.clone(), url.clone());
        set.spawn(async move {
            client
                .post(url)
                .json(&body(&format!("item {i}")))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(server.requests(), 256);
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(
        server.max_in_flight() > 1,
        "requests were not served concurrently"
    );
    assert_eq!(server.in_flight(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_json_is_a_400_in_openai_shape() {
    let server = testserver::spawn(ServerConfig::default()).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(r).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    server.shutdown().await;
}

mod batches;
mod structured;
