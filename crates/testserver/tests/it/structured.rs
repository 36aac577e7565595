//! `response_format` and `logprobs` over real HTTP: a label enum answered as JSON, a server with
//! structured outputs off refusing it with a 400, scripted log-probabilities, and the request log
//! recording what was asked.

use std::collections::HashMap;

use super::*;

fn with_schema(user: &str, labels: &[&str]) -> Value {
    let mut b = body(user);
    b["response_format"] = json!({"type": "json_schema", "json_schema": {
        "name": "choice", "strict": true,
        "schema": {"type": "object", "additionalProperties": false, "required": ["answer"],
            "properties": {"answer": {"type": "string", "enum": labels}}}}});
    b
}

#[tokio::test]
async fn a_label_enum_is_answered_as_json_with_the_matching_or_first_label() {
    let server = testserver::spawn(ServerConfig {
        rules: vec![
            ("great".into(), "POSITIVE".into()),
            ("meh".into(), "unsure".into()),
        ],
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let labels = ["negative", "positive"];
    let (status, v) =
        json_of(post_with(&server, with_schema("a great film", &labels), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        r#"{"answer":"positive"}"#
    );
    assert!(v["choices"][0].get("logprobs").is_none());
    let (_, v) = json_of(post_with(&server, with_schema("meh", &labels), None).await).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        r#"{"answer":"negative"}"#
    );
    let log = server.requests_log();
    assert_eq!(log[0].response_format.as_deref(), Some("json_schema"));
    assert!(!log[0].logprobs);
    server.shutdown().await;
}

#[tokio::test]
async fn structured_outputs_off_refuses_response_format_with_a_400() {
    let server = testserver::spawn(ServerConfig {
        structured_outputs: false,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let (status, v) = json_of(post_with(&server, with_schema("x", &["a"]), None).await).await;
    assert_eq!(status, 400);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("response_format is not supported"),
        "{message}"
    );
    assert_eq!(v["error"]["param"], "response_format");
    // Without response_format the same server answers.
    let (status, _) = json_of(post(&server, "x").await).await;
    assert_eq!(status, 200);
    let statuses: Vec<u16> = server.requests_log().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![400, 200]);
    server.shutdown().await;
}

#[tokio::test]
async fn logprobs_are_scripted_per_answer_with_top_alternatives() {
    let server = testserver::spawn(ServerConfig {
        rules: vec![("great".into(), "very good".into())],
        token_logprobs: HashMap::from([("very good".to_owned(), vec![-0.5, -0.25])]),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let mut b = body("a great film");
    b["logprobs"] = json!(true);
    b["top_logprobs"] = json!(3);
    let (status, v) = json_of(post_with(&server, b, None).await).await;
    assert_eq!(status, 200);
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let tokens: Vec<&str> = content
        .iter()
        .map(|e| e["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, vec!["very", " good"]);
    assert_eq!(content[0]["logprob"], -0.5);
    assert_eq!(content[1]["logprob"], -0.25);
    assert_eq!(content[1]["top_logprobs"].as_array().unwrap().len(), 3);

    // Unscripted answers get the default per token.
    let mut b = body("something else");
    b["logprobs"] = json!(true);
    let (_, v) = json_of(post_with(&server, b, None).await).await;
    let lp = v["choices"][0]["logprobs"]["content"][0]["logprob"]
        .as_f64()
        .unwrap();
    assert!((lp - f64::from(testserver::DEFAULT_LOGPROB)).abs() < 1e-6);
    assert!(server.requests_log().iter().all(|e| e.logprobs));
    server.shutdown().await;
}
