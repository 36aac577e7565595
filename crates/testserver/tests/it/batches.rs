//! The files and batches endpoints over real HTTP: upload, create, the compressed completion
//! time, output and error files keyed by `custom_id` (in another order than the input), the
//! injected faults (failing lines, expiry, a lost create response), validation of the input
//! file, and listing newest first.

use testserver::BatchConfig;

use super::*;

fn line(custom_id: &str, user: &str) -> String {
    json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
        "body": body(user)})
    .to_string()
}

async fn upload(server: &TestServer, jsonl: String) -> String {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(jsonl.into_bytes()).file_name("b.jsonl"),
        );
    let r = reqwest::Client::new()
        .post(format!("{}/files", server.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["purpose"], "batch");
    v["id"].as_str().unwrap().to_owned()
}

async fn create(server: &TestServer, file: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/batches", server.base_url()))
        .json(
            &json!({"input_file_id": file, "endpoint": "/v1/chat/completions",
            "completion_window": "24h", "metadata": {"token": "t1"}}),
        )
        .send()
        .await
        .unwrap();
    json_of(r).await
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{path}", server.base_url()))
        .await
        .unwrap();
    json_of(r).await
}

async fn lines_of(server: &TestServer, file: &Value) -> Vec<Value> {
    let Some(id) = file.as_str() else {
        return Vec::new();
    };
    let url = format!("{}/files/{id}/content", server.base_url());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls until the batch leaves `in_progress`.
async fn finished(server: &TestServer, id: &str) -> Value {
    loop {
        let (status, v) = get(server, &format!("/batches/{id}")).await;
        assert_eq!(status, 200);
        if v["status"] != "in_progress" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_batch_answers_every_line_after_its_completion_time() {
    let server = testserver::spawn(ServerConfig {
        rules: vec![("great".into(), "positive".into())],
        batch: BatchConfig {
            failing_lines: vec!["doomed".into()],
            ..BatchConfig::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let jsonl = [
        line("a", "a great film"),
        line("b", "meh"),
        line("c", "doomed"),
    ]
    .join("\n");
    let file = upload(&server, jsonl).await;
    let (status, batch) = create(&server, &file).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["status"], "in_progress");
    assert_eq!(batch["metadata"]["token"], "t1");
    let id = batch["id"].as_str().unwrap().to_owned();
    let done = finished(&server, &id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["request_counts"],
        json!({"total": 3, "completed": 2, "failed": 1})
    );
    let output = lines_of(&server, &done["output_file_id"]).await;
    let ids: Vec<&str> = output
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["b", "a"],
        "output comes in another order than the input"
    );
    let a = &output[1]["response"];
    assert_eq!(a["status_code"], 200);
    assert_eq!(a["body"]["choices"][0]["message"]["content"], "positive");
    assert!(a["body"]["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let errors = lines_of(&server, &done["error_file_id"]).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["custom_id"], "c");
    assert_eq!(errors[0]["response"]["status_code"], 500);
    assert_eq!(server.batches_created(), 1);
    assert_eq!(server.batch_lines_for("a"), 1);
    assert_eq!(server.requests(), 0, "batch lines are not chat requests");
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_batch_answers_part_and_marks_the_rest_expired() {
    let server = testserver::spawn(ServerConfig {
        batch: BatchConfig {
            expire_after: Some(1),
            shuffle_output: false,
            ..BatchConfig::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let file = upload(
        &server,
        [line("a", "x"), line("b", "y"), line("c", "z")].join("\n"),
    )
    .await;
    let (_, batch) = create(&server, &file).await;
    let done = finished(&server, batch["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "expired");
    assert_eq!(lines_of(&server, &done["output_file_id"]).await.len(), 1);
    let errors = lines_of(&server, &done["error_file_id"]).await;
    let codes: Vec<_> = errors
        .iter()
        .map(|e| (e["custom_id"].clone(), e["error"]["code"].clone()))
        .collect();
    assert_eq!(
        codes,
        [
            (json!("b"), json!("batch_expired")),
            (json!("c"), json!("batch_expired"))
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_create_response_still_made_the_batch_and_listing_finds_it() {
    let server = testserver::spawn(ServerConfig {
        batch: BatchConfig {
            lose_create_responses: 1,
            ..BatchConfig::default()
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let file = upload(&server, line("a", "x")).await;
    let (status, _) = create(&server, &file).await;
    assert_eq!(status, 500);
    let (status, second) = create(&server, &file).await;
    assert_eq!(status, 200);
    assert_eq!(server.batches_created(), 2);
    assert_eq!(
        server.batch_lines_for("a"),
        2,
        "the counter sees both submissions"
    );
    let (_, page) = get(&server, "/batches?limit=1").await;
    assert_eq!(page["data"][0]["id"], second["id"], "newest first");
    assert_eq!(page["has_more"], true);
    let after = page["last_id"].as_str().unwrap();
    let (_, rest) = get(&server, &format!("/batches?limit=10&after={after}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["metadata"]["token"], "t1");
    assert_eq!(rest["has_more"], false);
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_input_file_fails_the_batch_with_its_errors() {
    let server = testserver::spawn(ServerConfig::default()).await.unwrap();
    let file = upload(
        &server,
        [line("a", "x"), line("a", "y"), "{oops".into()].join("\n"),
    )
    .await;
    let (status, batch) = create(&server, &file).await;
    assert_eq!(status, 200);
    assert_eq!(batch["status"], "failed");
    let codes: Vec<_> = batch["errors"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("duplicate_custom_id"), json!("invalid_json_line")]
    );
    assert_eq!(
        server.batch_lines_for("a"),
        0,
        "a failed batch answers nothing"
    );
    let (status, _) = get(&server, "/batches/nope").await;
    assert_eq!(status, 404);
    server.shutdown().await;
}
