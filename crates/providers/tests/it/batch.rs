//! The Batch API client against the test server: a file of lines built as real-time calls are,
//! answers read back by `custom_id` whatever their order and priced at batch rates, labels
//! read from structured answers, failed and expired lines as errors, a lost create response
//! found again by its token, and no key in any error.

use std::collections::HashMap;

use domain::{ChoiceVia, Choices};
use providers::{BatchRequest, BatchStatus, RemoteBatch};
use testserver::BatchConfig;

use super::*;

async fn serve_batches(batch: BatchConfig) -> TestServer {
    testserver::spawn(ServerConfig {
        rules: vec![("great".into(), "positive".into())],
        default_answers: vec!["negative".into()],
        require_api_key: Some(KEY.into()),
        batch,
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

async fn until_done(client: &Client, id: &str) -> RemoteBatch {
    loop {
        let batch = client.retrieve_batch(id).await.unwrap();
        if batch.status.is_terminal() {
            return batch;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits `users` as lines `i0`, `i1`, … and returns every line's result by id.
async fn submit_and_read(
    client: &Client,
    users: &[&str],
    params: &GenerationParams,
) -> (
    RemoteBatch,
    HashMap<String, Result<providers::Answer, CallError>>,
) {
    let ids: Vec<String> = (0..users.len()).map(|i| format!("i{i}")).collect();
    let messages: Vec<Vec<Message>> = users.iter().map(|u| prompt(u)).collect();
    let requests: HashMap<&str, BatchRequest<'_>> = ids
        .iter()
        .zip(&messages)
        .map(|(id, m)| {
            (
                id.as_str(),
                BatchRequest {
                    custom_id: id,
                    messages: m,
                    params,
                },
            )
        })
        .collect();
    let jsonl: Vec<String> = ids
        .iter()
        .map(|id| client.batch_line(requests[id.as_str()]))
        .collect();
    let file = client
        .upload_batch_file(jsonl.join("\n").into_bytes())
        .await
        .unwrap();
    let created = client.create_batch(&file, "tok-1").await.unwrap();
    assert_eq!(created.token.as_deref(), Some("tok-1"));
    let done = until_done(client, &created.id).await;
    let mut results = HashMap::new();
    for file in [&done.output_file_id, &done.error_file_id]
        .into_iter()
        .flatten()
    {
        let bytes = client.batch_file(file).await.unwrap();
        results.extend(client.read_batch_lines(&bytes, &requests));
    }
    (done, results)
}

#[tokio::test]
async fn a_batch_answers_like_real_time_calls_at_half_the_price() {
    let server = serve_batches(BatchConfig {
        failing_lines: vec!["doomed".into()],
        ..BatchConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let params = GenerationParams::default();
    let (done, results) =
        submit_and_read(&client, &["a great film", "dull", "doomed"], &params).await;
    assert_eq!(done.status, BatchStatus::Completed);
    let great = results["i0"].as_ref().unwrap();
    assert_eq!(great.text, "positive");
    let realtime = client
        .chat(&prompt("a great film"), &params)
        .await
        .result
        .unwrap();
    assert_eq!(great.usage, realtime.usage);
    assert!(
        (great.cost_usd - realtime.cost_usd / 2.0).abs() < 1e-12,
        "batch rates are half"
    );
    assert_eq!(results["i1"].as_ref().unwrap().text, "negative");
    let doomed = results["i2"].as_ref().unwrap_err();
    assert_eq!(doomed.status(), Some(500), "{doomed}");
    assert!(!format!("{results:?}").contains(KEY));
    server.shutdown().await;
}

#[tokio::test]
async fn labels_come_back_from_structured_answers_and_expired_lines_are_errors() {
    let server = serve_batches(BatchConfig {
        expire_after: Some(1),
        ..BatchConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let params = GenerationParams {
        choices: Some(Choices {
            labels: vec!["negative".into(), "positive".into()],
            normalize: false,
        }),
        ..GenerationParams::default()
    };
    let (done, results) = submit_and_read(&client, &["a great film", "dull"], &params).await;
    assert_eq!(done.status, BatchStatus::Expired);
    let great = results["i0"].as_ref().unwrap();
    assert_eq!(great.text, "positive");
    let choice = great.choice.as_ref().unwrap();
    assert_eq!(choice.via, ChoiceVia::Schema);
    assert!(
        choice.confidence.is_some(),
        "logprobs were asked for and read"
    );
    match results["i1"].as_ref().unwrap_err() {
        CallError::Batch { code, .. } => assert_eq!(code, "batch_expired"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_create_response_is_found_by_its_token() {
    let server = serve_batches(BatchConfig {
        lose_create_responses: 1,
        ..BatchConfig::default()
    })
    .await;
    let client = client(endpoint(&server));
    let line = client.batch_line(BatchRequest {
        custom_id: "only",
        messages: &prompt("x"),
        params: &GenerationParams::default(),
    });
    let file = client.upload_batch_file(line.into_bytes()).await.unwrap();
    let err = client.create_batch(&file, "tok-lost").await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    let found = client.find_batch("tok-lost", 0).await.unwrap().unwrap();
    assert_eq!(found.input_file_id, file);
    assert!(client.find_batch("tok-other", 0).await.unwrap().is_none());
    assert_eq!(server.batches_created(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_without_being_shown() {
    let server = serve_batches(BatchConfig::default()).await;
    let client = client(Endpoint {
        api_key: Some(Secret::new("sk-wrong-0000")),
        ..endpoint(&server)
    });
    let err = client.upload_batch_file(b"{}".to_vec()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.to_string().contains("sk-wrong"));
    server.shutdown().await;
}
