//! `orchestrator data check` through the binary: the model-free checks on a dataset with known
//! repeats, a leak, an empty and an overlong input; label issues ranked by confident learning
//! over a local prompt arm's label probabilities (the tiny llama), written to a suspects file;
//! and an arm that cannot give probabilities refused with exit 1. No database is made.

use crate::support::Env;

/// 24 rows: labels alternate yes/no; row 3 repeats row 1 exactly, row 5 repeats row 1 once
/// normalised and with the other label; row 7 is empty, row 9 overlong.
fn write_dataset(env: &Env) {
    let mut s = String::new();
    for i in 0..24 {
        let text = match i {
            3 => "The film was great".to_owned(),
            5 => "the FILM was great!!".to_owned(),
            1 => "The film was great".to_owned(),
            7 => "  ".to_owned(),
            9 => "long ".repeat(100),
            _ => format!("review number {i} of a film"),
        };
        let label = if i % 2 == 0 { "yes" } else { "no" };
        let label = if i == 5 { "yes" } else { label };
        let row = serde_json::json!({ "id": format!("r{i}"), "text": text, "label": label });
        s.push_str(&format!("{row}\n"));
    }
    env.write("data.jsonl", &s);
}

const SPEC: &str = r#"name: e2e-data
dataset: { path: data.jsonl, input: text, target: label, split: { eval: 8, train: 16, seed: 3 } }
providers:
  - { id: tiny, type: local, model: ./tiny.gguf, batch_size: 4 }
prompts:
  - { id: labels, template: "Q: {{text}}", choices: [yes, no] }
  - { id: free, template: "Q: {{text}}" }
generation: { max_tokens: 4, temperature: 0 }
scorers: [{ type: equals }]
"#;

fn env() -> Env {
    let env = Env::without_server();
    write_dataset(&env);
    llm::testing::write_tiny_gguf(&env.path("tiny.gguf"), 5).expect("writing the tiny model");
    env.write("spec.yaml", SPEC);
    env
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_free_checks_find_repeats_leaks_empty_and_overlong_inputs() {
    let env = env();
    let out = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--format",
            "json",
            "--max-input-tokens",
            "50",
        ])
        .await;
    out.expect_code(0);
    let v = json(&out.stdout);
    let rows: u64 = v["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 24);
    let group = v["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["text"] == "the film was great")
        .unwrap_or_else(|| panic!("{}", v["duplicates"]));
    assert_eq!(group["rows"].as_array().unwrap().len(), 3);
    assert_eq!(
        (&group["exact"], &group["labels"]),
        (&false.into(), &serde_json::json!(["no", "yes"]))
    );
    let empty: Vec<&str> = v["empty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(empty, ["r7"]);
    assert_eq!(v["overlong"][0]["row"]["id"], "r9");
    // Three rows share one input across an 8/16 split: unless all three are in train, an eval
    // one leaks; the report lists exactly the eval members of the group.
    let eval_members: Vec<&str> = group["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["split"] == "eval")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let leaked: Vec<&str> = v["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["eval_id"].as_str().unwrap())
        .collect();
    let train_members = group["rows"].as_array().unwrap().len() - eval_members.len();
    assert_eq!(
        leaked,
        if train_members > 0 {
            eval_members
        } else {
            vec![]
        }
    );
    assert!(v.get("label_issues").is_none());
    assert!(!env.db().exists(), "data check makes no database");

    let table = env.run(&["data", "check", "spec.yaml"]).await;
    table.expect_code(0);
    assert!(
        table.stdout.contains("repeated inputs: 1 group(s)"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_issues_are_ranked_by_self_confidence_and_written_for_review() {
    let env = env();
    let out = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--arm",
            "labels@tiny",
            "--format",
            "json",
            "--suspects",
            "suspects.jsonl",
        ])
        .await;
    out.expect_code(0);
    let v = json(&out.stdout);
    let li = &v["label_issues"];
    assert_eq!(
        li["scored"].as_u64().unwrap() + li["failed"].as_u64().unwrap(),
        24,
        "{li}"
    );
    assert_eq!(li["labels"], serde_json::json!(["yes", "no"]));
    let suspects = li["suspects"].as_array().unwrap();
    let confidences: Vec<f64> = suspects
        .iter()
        .map(|s| s["self_confidence"].as_f64().unwrap())
        .collect();
    assert!(
        confidences.windows(2).all(|w| w[0] <= w[1]),
        "{confidences:?}"
    );
    for s in suspects {
        assert_ne!(s["label"], s["likely"], "{s}");
    }
    let written = std::fs::read_to_string(env.path("suspects.jsonl")).unwrap();
    assert_eq!(written.lines().count(), suspects.len());

    let refused = env
        .run(&["data", "check", "spec.yaml", "--arm", "free@tiny"])
        .await;
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("labels@tiny"),
        "names the arms that can: {}",
        refused.stderr
    );
}
