//! Prompt arms on a `type: local` provider, on the tiny llama written as a GGUF file
//! (`llm::testing`): one item whose prompt exceeds the model's context fails alone, with its id
//! and the context length stored as its error, and the rest of its batch is answered.

use domain::RunStatus;
use tokio_util::sync::CancellationToken;

use crate::support::Bench;

/// Eight rows; `item-2`'s text is far longer than the tiny model's 512-token context.
fn dataset(b: &Bench) {
    let mut s = String::new();
    for i in 0..8 {
        let text = if i == 2 {
            "forty thousand words ".repeat(100)
        } else {
            format!("<q{i}> ?")
        };
        let row = serde_json::json!({ "id": format!("item-{i}"), "text": text, "label": "yes" });
        s.push_str(&format!("{row}\n"));
    }
    std::fs::write(b.path("data.jsonl"), s).unwrap();
}

fn spec(model: &std::path::Path) -> String {
    format!(
        r#"name: runner-local
dataset: {{ path: data.jsonl, input: text, target: label }}
providers:
  - {{ id: tiny, type: local, model: {}, batch_size: 4, cost_per_hour: 3.6 }}
prompts:
  - id: plain
    template: "Q: {{{{text}}}}"
generation: {{ max_tokens: 4 }}
scorers: [{{ type: equals }}]
"#,
        model.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_prompt_fails_alone_and_its_batch_is_answered() {
    let b = Bench::new().await;
    dataset(&b);
    let model = b.path("tiny.gguf");
    llm::testing::write_tiny_gguf(&model, 5).unwrap();
    let plan = b.plan(&spec(&model));
    let (summary, _) = b.run(&plan, b.options(), CancellationToken::new()).await;
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.failed_items, 1, "{summary:?}");

    let results = b.store.results(summary.run_id).await.unwrap();
    assert_eq!(results.calls.len(), 8);
    for call in &results.calls {
        if call.item_id == "item-2" {
            let error = call.error.as_deref().unwrap();
            let tokens = error
                .strip_prefix("item \"item-2\": the prompt has ")
                .and_then(|rest| {
                    rest.strip_suffix(
                        " tokens; with 4 new tokens it exceeds the model's context of 512",
                    )
                })
                .unwrap_or_else(|| panic!("{error}"));
            assert!(tokens.parse::<usize>().unwrap() > 512, "{error}");
            assert_eq!(call.response, None);
        } else {
            assert_eq!(call.error, None, "{call:?}");
            assert!(
                call.response.is_some() && call.completion_tokens > 0,
                "{call:?}"
            );
        }
    }
}

/// With `choices`, every answer is a label chosen by likelihood: its confidence is the label's
/// softmax share, the labels' probabilities sum to 1, the scorer sees the label, and the item
/// too long for the context still fails alone. Free-text answers keep their token logprobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choices_answer_with_the_likeliest_label() {
    let b = Bench::new().await;
    dataset(&b);
    let model = b.path("tiny.gguf");
    llm::testing::write_tiny_gguf(&model, 5).unwrap();
    let text = spec(&model).replace(
        "    template: \"Q: {{text}}\"\n",
        "    template: \"Q: {{text}}\"\n  - id: labelled\n    template: \"Q: {{text}}\"\n    \
         choices: [yes, no, maybe]\n",
    );
    assert!(text.contains("labelled"), "{text}");
    let plan = b.plan(&text);
    let (summary, _) = b.run(&plan, b.options(), CancellationToken::new()).await;
    assert_eq!(
        summary.failed_items, 2,
        "item-2 fails in both arms: {summary:?}"
    );

    let results = b.store.results(summary.run_id).await.unwrap();
    // The arm's labels are stored in the order of its answers' probabilities.
    let labels = |arm: &str| {
        results
            .arms
            .iter()
            .find(|a| a.arm == arm)
            .unwrap()
            .choices
            .clone()
    };
    assert_eq!(
        labels("labelled@tiny"),
        Some(vec!["yes".into(), "no".into(), "maybe".into()])
    );
    assert_eq!(labels("plain@tiny"), None);
    for call in results.calls.iter().filter(|c| c.error.is_none()) {
        if call.arm == "labelled@tiny" {
            let choice = call.choice.as_ref().unwrap();
            assert_eq!(choice.via, domain::ChoiceVia::Likelihood);
            let label = choice.label.as_deref().unwrap();
            assert_eq!(call.response.as_deref(), Some(label));
            assert!(["yes", "no", "maybe"].contains(&label), "{label}");
            assert_eq!(choice.probabilities.len(), 3);
            let total: f64 = choice.probabilities.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{choice:?}");
            let best = choice.probabilities.iter().copied().fold(0.0, f64::max);
            // The JSON column may round the last bit.
            assert!(
                (choice.confidence.unwrap() - best).abs() < 1e-12,
                "{choice:?}"
            );
            let score = results
                .scores
                .iter()
                .find(|s| s.arm == call.arm && s.item_id == call.item_id)
                .unwrap();
            assert_eq!(score.value, if label == "yes" { 1.0 } else { 0.0 });
        } else {
            assert!(call.choice.is_none());
            let logprobs = call.token_logprobs.as_ref().unwrap();
            assert_eq!(logprobs.len() as u32, call.completion_tokens, "{call:?}");
            assert!(logprobs.iter().all(|&l| l <= 0.0));
        }
    }
}
