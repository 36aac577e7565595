//! Calls with `choices` against the real test server: the structured-output path (a JSON-schema
//! enum, the label back, confidence from the label's logprobs), an endpoint without structured
//! outputs (one 400, then free text mapped, and no `response_format` ever again from that
//! client), free text mapped onto the labels, and logprobs parsed.

use std::collections::HashMap;

use domain::{ChoiceVia, Choices};

use super::*;

fn choosing(labels: &[&str]) -> GenerationParams {
    GenerationParams {
        choices: Some(Choices {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            normalize: false,
        }),
        ..GenerationParams::default()
    }
}

async fn serve_with(config: ServerConfig) -> TestServer {
    testserver::spawn(ServerConfig {
        require_api_key: Some(KEY.into()),
        ..config
    })
    .await
    .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[tokio::test]
async fn a_schema_answer_is_the_label_with_its_tokens_probability() {
    let server = serve_with(ServerConfig {
        rules: vec![("great".into(), "very positive".into())],
        token_logprobs: HashMap::from([("very positive".to_owned(), vec![-0.2, -0.3])]),
        ..ServerConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let params = choosing(&["negative", "very positive"]);
    let out = client.chat(&prompt("a great film"), &params).await;
    let answer = out.result.unwrap();
    assert_eq!(answer.text, "very positive");
    let choice = answer.choice.unwrap();
    assert_eq!(choice.label.as_deref(), Some("very positive"));
    assert_eq!(choice.via, ChoiceVia::Schema);
    // Only the label's two tokens count, not the JSON framing's (-0.1 each).
    assert!(
        close(choice.confidence.unwrap(), (-0.5f64).exp()),
        "{choice:?}"
    );
    let lps = answer.token_logprobs.unwrap();
    assert_eq!(lps.len(), 4, "framing, two label tokens, framing: {lps:?}");
    assert_eq!(out.attempts, 1);

    let log = server.requests_log();
    assert_eq!(log[0].response_format.as_deref(), Some("json_schema"));
    assert!(log[0].logprobs);
    server.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_without_structured_outputs_is_asked_once_then_never_again() {
    let server = serve_with(ServerConfig {
        rules: vec![
            ("great".into(), "Positive, I think.".into()),
            ("awful".into(), "negative".into()),
        ],
        structured_outputs: false,
        ..ServerConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let params = choosing(&["negative", "positive"]);
    let first = client.chat(&prompt("a great film"), &params).await;
    assert_eq!(first.attempts, 2, "the refused attempt counts");
    let answer = first.result.unwrap();
    assert_eq!(answer.text, "positive");
    let choice = answer.choice.unwrap();
    assert_eq!(choice.via, ChoiceVia::FirstWord);
    // Free text's confidence: all its tokens (three at -0.1).
    assert!(
        close(choice.confidence.unwrap(), (-0.3f64).exp()),
        "{choice:?}"
    );

    let second = client.clone().chat(&prompt("an awful film"), &params).await;
    assert_eq!(second.attempts, 1);
    assert_eq!(second.result.unwrap().choice.unwrap().via, ChoiceVia::Exact);

    let log = server.requests_log();
    let sent: Vec<(Option<&str>, u16)> = log
        .iter()
        .map(|e| (e.response_format.as_deref(), e.status))
        .collect();
    assert_eq!(
        sent,
        vec![(Some("json_schema"), 400), (None, 200), (None, 200)]
    );
    assert!(log.iter().all(|e| e.logprobs));
    server.shutdown().await;
}

#[tokio::test]
async fn refused_logprobs_are_dropped_too() {
    let server = serve_with(ServerConfig {
        rules: vec![("great".into(), "positive".into())],
        logprobs: false,
        ..ServerConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let params = choosing(&["negative", "positive"]);
    let out = client.chat(&prompt("a great film"), &params).await;
    assert_eq!(out.attempts, 2);
    let answer = out.result.unwrap();
    let choice = answer.choice.unwrap();
    assert_eq!((choice.via, choice.confidence), (ChoiceVia::Schema, None));
    assert_eq!(answer.token_logprobs, None);
    let again = client.chat(&prompt("a great film"), &params).await;
    assert_eq!(again.attempts, 1);
    let log = server.requests_log();
    let logprobs: Vec<bool> = log.iter().map(|e| e.logprobs).collect();
    assert_eq!(logprobs, vec![true, false, false]);
    assert!(log.iter().all(|e| e.response_format.is_some()));
    server.shutdown().await;
}

#[tokio::test]
async fn structured_outputs_off_on_the_endpoint_sends_free_text_from_the_start() {
    let server = serve_with(ServerConfig {
        rules: vec![("great".into(), "I'd say positive overall".into())],
        ..ServerConfig::default()
    })
    .await;
    let client = client(Endpoint {
        structured_outputs: Some(false),
        ..endpoint(&server)
    });
    let params = choosing(&["negative", "positive"]);
    let answer = client
        .chat(&prompt("a great film"), &params)
        .await
        .result
        .unwrap();
    assert_eq!(answer.text, "positive");
    assert_eq!(answer.choice.unwrap().via, ChoiceVia::Contains);
    assert_eq!(server.requests_log()[0].response_format, None);
    server.shutdown().await;
}

#[tokio::test]
async fn a_forced_schema_that_is_refused_fails_the_call() {
    let server = serve_with(ServerConfig {
        structured_outputs: false,
        ..ServerConfig::default()
    })
    .await;
    let client = client(Endpoint {
        structured_outputs: Some(true),
        ..endpoint(&server)
    });
    let out = client.chat(&prompt("x"), &choosing(&["a", "b"])).await;
    assert_eq!(out.attempts, 1);
    assert_eq!(out.result.unwrap_err().status(), Some(400));
    server.shutdown().await;
}

#[tokio::test]
async fn unmapped_free_text_keeps_its_text() {
    let server = serve_with(ServerConfig {
        rules: vec![("meh".into(), "hard to say".into())],
        structured_outputs: false,
        ..ServerConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let answer = client
        .chat(&prompt("meh"), &choosing(&["negative", "positive"]))
        .await
        .result
        .unwrap();
    assert_eq!(answer.text, "hard to say");
    let choice = answer.choice.unwrap();
    assert_eq!((choice.label, choice.via), (None, ChoiceVia::Unmapped));
    assert_eq!(choice.confidence, None);
    server.shutdown().await;
}

#[tokio::test]
async fn logprobs_are_asked_only_with_choices_unless_the_endpoint_says_so() {
    let server = serve_with(ServerConfig {
        token_logprobs: HashMap::from([("negative".to_owned(), vec![-0.7])]),
        default_answers: vec!["negative".into()],
        ..ServerConfig::default()
    })
    .await;
    let plain = client(endpoint(&server));
    let answer = call(&plain, "hello").await.result.unwrap();
    assert_eq!((answer.choice, answer.token_logprobs), (None, None));
    let always = client(Endpoint {
        logprobs: Some(true),
        ..endpoint(&server)
    });
    let answer = call(&always, "hello").await.result.unwrap();
    assert_eq!(answer.text, "negative");
    assert_eq!(answer.choice, None);
    assert_eq!(answer.token_logprobs, Some(vec![-0.7]));
    let log = server.requests_log();
    assert_eq!((log[0].logprobs, log[1].logprobs), (false, true));
    assert!(log.iter().all(|e| e.response_format.is_none()));
    server.shutdown().await;
}
