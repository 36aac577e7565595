//! A `type: local` provider through the real binary, on the tiny llama written as a GGUF file
//! (`llm::testing`): one row far longer than the model's context fails alone, the `failed:` line
//! names the item and the context, the other items of its batch are answered, and the run exits 3.

use crate::support::Env;

/// Eight rows; `item-2`'s text is far longer than the tiny model's 512-token context.
fn write_dataset(env: &Env) {
    let mut s = String::new();
    for i in 0..8 {
        let text = if i == 2 {
            "forty thousand words ".repeat(100)
        } else {
            format!("<q{i}> is this fine?")
        };
        let row = serde_json::json!({ "id": format!("item-{i}"), "text": text, "label": "yes" });
        s.push_str(&format!("{row}\n"));
    }
    env.write("data.jsonl", &s);
}

const SPEC: &str = r#"name: e2e-local
dataset: { path: data.jsonl, input: text, target: label }
providers:
  - { id: tiny, type: local, model: ./tiny.gguf, batch_size: 4 }
prompts:
  - id: plain
    template: "Q: {{text}}"
generation: { max_tokens: 4, temperature: 0 }
scorers: [{ type: equals }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_row_fails_alone_in_its_local_batch() {
    let env = Env::without_server();
    write_dataset(&env);
    llm::testing::write_tiny_gguf(&env.path("tiny.gguf"), 5).expect("writing the tiny model");
    env.write("spec.yaml", SPEC);

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(3);
    let failed = out
        .stderr
        .lines()
        .find(|l| l.contains("failed: plain@tiny item item-2: "))
        .unwrap_or_else(|| panic!("no failed line for item-2: {}", out.stderr));
    assert!(
        failed.contains("item \"item-2\": the prompt has ")
            && failed.ends_with("tokens; with 4 new tokens it exceeds the model's context of 512"),
        "{failed}"
    );
    let row = env.row(None, "plain@tiny").await;
    assert_eq!(row["n"], 8, "{row}");
    assert_eq!(
        row["errors"], 1,
        "the three others of its batch were answered: {row}"
    );
}
