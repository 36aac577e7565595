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

/// The first `n` rows of `datasets/<dataset>` written to `file` as `{id: rN, text, label}`,
/// with the label of every tenth row (a fixed pattern: rows where `(7i + 3) % 10 == 0`) moved
/// to the next label in sorted order; returns the ids of those rows.
fn write_flipped(
    env: &Env,
    dataset: &str,
    n: usize,
    file: &str,
) -> std::collections::BTreeSet<String> {
    let path = format!("{}/../../datasets/{dataset}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .take(n)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let labels: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    let labels: Vec<&str> = labels.into_iter().collect();
    let mut flipped = std::collections::BTreeSet::new();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut label = row["label"].as_str().unwrap();
        if (i * 7 + 3) % 10 == 0 {
            let at = labels.iter().position(|l| *l == label).unwrap();
            label = labels[(at + 1) % labels.len()];
            flipped.insert(format!("r{i}"));
        }
        let line = serde_json::json!({"id": format!("r{i}"), "text": row["text"], "label": label});
        out.push_str(&format!("{line}\n"));
    }
    env.write(file, &out);
    flipped
}

/// Precision and recall of a `data check` report's suspects against the rows `flipped`, and the
/// precision of its `flipped.len()` least self-confident suspects; printed too.
fn measured(
    report: &serde_json::Value,
    flipped: &std::collections::BTreeSet<String>,
) -> (f64, f64, f64) {
    let suspects: Vec<&str> = report["label_issues"]["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let hits = |ids: &[&str]| ids.iter().filter(|id| flipped.contains(**id)).count() as f64;
    let top = &suspects[..flipped.len().min(suspects.len())];
    let precision = hits(&suspects) / suspects.len().max(1) as f64;
    let recall = hits(&suspects) / flipped.len().max(1) as f64;
    let top_precision = hits(top) / top.len().max(1) as f64;
    eprintln!(
        "flagged {}: precision {precision:.3}, recall {recall:.3}; top {}: precision {top_precision:.3}",
        suspects.len(),
        top.len()
    );
    (precision, recall, top_precision)
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
    assert!(
        !suspects.is_empty(),
        "the tiny model disagrees with some labels: {li}"
    );
    assert_lowest_confidence_first(suspects);
    for s in suspects {
        assert_ne!(s["label"], s["likely"], "{s}");
    }
    let written = std::fs::read_to_string(env.path("suspects.jsonl")).unwrap();
    assert_eq!(written.lines().count(), suspects.len());

    // Names the arms that can.
    refused(&env, "free@tiny", "labels@tiny").await;
}

/// Known flips on real data: the first 200 VADER movie snippets, 20 labels flipped at a fixed
/// pattern of rows ([`write_flipped`]), SmolLM2 zero-shot with `choices` as the probe. Measured on a 2-core AMD EPYC
/// (2026-12-04): 100 rows flagged, precision 0.130, recall 0.650; the 20 least self-confident
/// suspects precision 0.650 (chance: 0.10). `bench/label_issues.sh` gives the larger runs
/// recorded in BENCHMARKS.md. SmolLM2-135M is a weak judge of sentiment, so the test asks
/// only that the least self-confident suspects are flips far more often than chance (10%).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_smollm2_injected_flips_are_found_among_the_least_confident_rows() {
    if std::env::var("ORCHESTRATOR_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping: set ORCHESTRATOR_SLOW_TESTS=1 to run it");
        return;
    }
    let env = Env::without_server();
    let flipped = write_flipped(
        &env,
        "vader-movie/movie_snippets.jsonl",
        200,
        "movies.jsonl",
    );
    let model = models::smollm2_gguf().display().to_string();
    env.write(
        "spec.yaml",
        &format!(
            r#"name: flips
dataset: {{ path: movies.jsonl, input: text, target: label, split: {{ eval: 100, train: 100, seed: 7 }} }}
providers:
  - {{ id: smollm2, type: local, model: {model}, batch_size: 16 }}
prompts:
  - id: labels
    system: You label the sentiment of movie reviews.
    template: "Review: {{{{text}}}}\nIs this review positive or negative? Answer with one word: positive or negative."
    choices: [positive, negative]
"#
        ),
    );
    let out = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--arm",
            "labels@smollm2",
            "--format",
            "json",
        ])
        .await;
    out.expect_code(0);
    let v = json(&out.stdout);
    let (_, recall, top_precision) = measured(&v, &flipped);
    assert_eq!(flipped.len(), 20);
    assert!(top_precision >= 0.3, "top-20 precision {top_precision}");
    assert!(recall >= 0.3, "recall {recall}");
}

/// `--probe knn`: cross-validated neighbours in embedding space (the tiny BERT of
/// `embed::testing`) give every train and eval row label probabilities; no arm is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knn_probe_scores_every_row_from_embeddings() {
    let env = env();
    embed::testing::write_tiny_model(&env.path("tiny-embed")).expect("writing the tiny embedder");
    let embedding = env.path("tiny-embed").display().to_string();
    let out = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--probe",
            "knn",
            "--embedding",
            &embedding,
            "--folds",
            "3",
            "--neighbours",
            "3",
            "--format",
            "json",
        ])
        .await;
    out.expect_code(0);
    let li = &json(&out.stdout)["label_issues"];
    assert_eq!(li["scored"], 24, "{li}");
    assert!(li["arm"].as_str().unwrap().starts_with("knn("), "{li}");
    assert_eq!(li["labels"], serde_json::json!(["no", "yes"]));
    let both = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--probe",
            "knn",
            "--arm",
            "labels@tiny",
        ])
        .await;
    both.expect_code(1);
}

/// Known flips on real data with the kNN probe: the first 400 SNIPS utterances (7 intents), 40
/// labels moved to the next intent at a fixed pattern of rows, all-MiniLM-L6-v2 embeddings, 5
/// folds, 10 neighbours. Measured on a 2-core AMD EPYC (2026-12-04): 43 flagged, precision
/// 0.698, recall 0.750; the assertion asks for at least 0.5 of both (chance: 10%).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_minilm_the_knn_probe_finds_injected_intent_flips() {
    if std::env::var("ORCHESTRATOR_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping: set ORCHESTRATOR_SLOW_TESTS=1 to run it");
        return;
    }
    let env = Env::without_server();
    let flipped = write_flipped(&env, "snips-intent/snips_intent.jsonl", 400, "snips.jsonl");

    env.write(
        "spec.yaml",
        r#"name: snips-flips
dataset: { path: snips.jsonl, input: text, target: label, split: { eval: 200, train: 200, seed: 7 } }
providers: [{ id: api, type: openai, model: gpt-4o-mini }]
prompts: [{ id: zs, template: "{{text}}" }]
"#,
    );
    let minilm = models::all_minilm_l6_v2_dir().display().to_string();
    let out = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--probe",
            "knn",
            "--embedding",
            &minilm,
            "--format",
            "json",
        ])
        .await;
    out.expect_code(0);
    let (precision, recall, _) = measured(&json(&out.stdout), &flipped);
    assert_eq!(flipped.len(), 40);
    assert!(
        precision >= 0.5 && recall >= 0.5,
        "precision {precision}, recall {recall}"
    );
}

/// A fine-tune `--arm`: one real `finetune-worker --serve` trains the tiny llama `--folds`
/// times, each time on the rows outside a fold, and answers that fold's rows with `choices`,
/// so every row's probabilities are out of fold. The worker is the one `cargo test --workspace` built beside
/// the binary. A fine-tune whose prompt has no `choices` is refused with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_tune_arm_scores_every_row_with_k_fold_fine_tunes() {
    let env = env();
    let worker = crate::support::orchestrator_bin().with_file_name("finetune-worker");
    assert!(
        worker.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        worker.display()
    );
    env.write(
        "spec.yaml",
        &format!(
            "{SPEC}finetunes:\n  - {{ id: lora, base_model: ./tiny.gguf, prompt: labels, \
             num_epochs: 1, micro_batch_size: 4, val_set_size: 0.0, compute: {{ device: cpu }} }}\n  \
             - {{ id: loose, base_model: ./tiny.gguf, prompt: free, compute: {{ device: cpu }} }}\n"
        ),
    );
    let out = env
        .run(&[
            "data",
            "check",
            "spec.yaml",
            "--arm",
            "lora",
            "--folds",
            "3",
            "--format",
            "json",
        ])
        .await;
    out.expect_code(0);
    let li = &json(&out.stdout)["label_issues"];
    // The overlong row 9 is past the tiny model's context: its answer fails alone.
    assert_eq!(
        (li["scored"].as_u64(), li["failed"].as_u64()),
        (Some(23), Some(1)),
        "{li}"
    );
    let suspects = li["suspects"].as_array().unwrap();
    assert!(suspects.iter().all(|s| s["id"] != "r9"), "{li}");
    assert_lowest_confidence_first(suspects);
    assert_eq!(li["arm"], "lora (3-fold fine-tunes)", "{li}");
    assert_eq!(li["labels"], serde_json::json!(["yes", "no"]));
    for f in 1..=3 {
        assert!(
            out.stderr.contains(&format!("fold {f}/3: training `lora`")),
            "{}",
            out.stderr
        );
    }

    refused(&env, "loose", "has no `choices`").await;
}

/// Suspects come lowest self-confidence first.
fn assert_lowest_confidence_first(suspects: &[serde_json::Value]) {
    let confidences: Vec<f64> = suspects
        .iter()
        .map(|s| s["self_confidence"].as_f64().unwrap())
        .collect();
    assert!(
        confidences.windows(2).all(|w| w[0] <= w[1]),
        "{confidences:?}"
    );
}

/// `data check --arm ARM` exits 1 with `says` on stderr.
async fn refused(env: &Env, arm: &str, says: &str) {
    let out = env.run(&["data", "check", "spec.yaml", "--arm", arm]).await;
    out.expect_code(1);
    assert!(out.stderr.contains(says), "{}", out.stderr);
}
