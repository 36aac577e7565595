//! What a `200 OK` may carry that is not a usable answer, and what the client makes of it: no
//! content, a content filter, the key echoed into the text, and usage no request could incur.

use super::*;

#[tokio::test]
async fn null_content_and_content_filter_are_failures_not_empty_answers() {
    let server = serve(
        FaultPlan::none()
            .always("null", Fault::NullContent)
            .always("filtered", Fault::ContentFilter),
    )
    .await;
    let client = client(endpoint(&server));
    for (user, reason) in [("null", "content: null"), ("filtered", "content filter")] {
        let out = call(&client, user).await;
        let err = out.result.unwrap_err();
        assert!(
            matches!(&err, CallError::NoAnswer { reason: r } if r.contains(reason)),
            "{user}: {err:?}"
        );
        assert!(!err.is_retryable(), "billed once is enough: {err}");
        assert_eq!(out.attempts, 1, "{user}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_answer_that_echoes_the_key_is_redacted_before_anyone_sees_it() {
    let server = serve(FaultPlan::none().always("echo", Fault::EchoKeyInAnswer)).await;
    let client = client(endpoint(&server));
    let answer = call(&client, "echo this").await.result.unwrap();
    assert!(!answer.text.contains(KEY), "{}", answer.text);
    assert!(
        answer.text.contains("(you sent Bearer ****)"),
        "{}",
        answer.text
    );
    assert!(answer.text.starts_with("negative"), "{}", answer.text);
    server.shutdown().await;
}

#[tokio::test]
async fn absurd_usage_is_capped_at_what_the_request_allows() {
    let server =
        serve(FaultPlan::none().always("greedy", Fault::HugeUsage { tokens: u32::MAX })).await;
    let client = client(endpoint(&server));
    let params = GenerationParams {
        max_tokens: 8,
        ..GenerationParams::default()
    };
    let messages = prompt("greedy");
    let answer = client.chat(&messages, &params).await.result.unwrap();
    assert_eq!(answer.usage.completion_tokens, 8, "at most max_tokens");
    // 16 x our estimate of the prompt plus 256 (see providers::client).
    let cap = providers::estimate_prompt_tokens(&messages) * 16 + 256;
    assert_eq!(answer.usage.prompt_tokens, cap);
    assert!(answer.cost_usd < 1e-3, "{}", answer.cost_usd);
    server.shutdown().await;
}
