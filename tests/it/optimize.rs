//! `optimize:` through the binary, on the test server with scripted answers: only one
//! instruction, shown with demonstrations, gets every item right (without demonstrations it gets
//! the positives only; every other prompt gets nothing). The search must find that candidate
//! within its call budget, score it on eval like any arm, keep dev, eval and train apart, stop
//! cleanly when its dollar budget ends, and never pay for an answer twice.

use std::collections::BTreeSet;

use testserver::{ContextRule, ServerConfig};

use crate::support::Env;

/// The instruction the scripted model rewards.
const BEST: &str = "Label the review as positive or negative.";

/// 120 reviews, alternately `good` (positive) and `bad` (negative).
pub(crate) fn write_reviews(env: &Env) {
    let mut s = String::new();
    for i in 0..120 {
        let (word, label) = if i % 2 == 0 {
            ("good", "positive")
        } else {
            ("bad", "negative")
        };
        let row = serde_json::json!({"id": format!("r{i}"), "text": format!("a {word} film #{i}"), "label": label});
        s.push_str(&format!("{row}\n"));
    }
    env.write("reviews.jsonl", &s);
}

pub(crate) fn server() -> ServerConfig {
    let rule = |context: &[&str], word: &str, answer: &str| ContextRule {
        context: context.iter().map(|s| (*s).to_owned()).collect(),
        last_user: word.to_owned(),
        answer: answer.to_owned(),
    };
    ServerConfig {
        context_rules: vec![
            rule(&[BEST, "Review:"], "good", "positive"),
            rule(&[BEST, "Review:"], "bad", "negative"),
            rule(&[BEST], "good", "positive"),
        ],
        default_answers: vec!["unsure".into()],
        ..ServerConfig::default()
    }
}

/// Eval 40, train 80 (of which the search's 40 dev items are carved); seeds `zero-shot` and
/// `few-shot`; `budget` is the block's.
pub(crate) fn write_spec(env: &Env, budget: &str) {
    let url = env.server().base_url();
    let spec = format!(
        r#"name: opt
dataset:
  path: reviews.jsonl
  input: text
  target: label
  split: {{ eval: 40, train: 80 }}
providers:
  - id: api
    type: openai
    model: gpt-test
    base_url: {url}
    api_key_env: OPENAI_API_KEY
    pricing: {{ input_per_mtok: 1.0, output_per_mtok: 2.0 }}
prompts:
  - id: zero-shot
    system: Classify.
    template: "Review: {{{{text}}}}"
  - id: few-shot
    system: Classify.
    template: "Review: {{{{text}}}}"
    few_shot: 2
optimize:
  - id: opt
    from: [zero-shot, few-shot]
    instructions: ["Be brief.", "{BEST}"]
    demos: {{ max: 2, candidates: 3 }}
    dev: 40
    budget: {budget}
generation: {{ max_tokens: 8, temperature: 0 }}
"#
    );
    env.write("spec.yaml", &spec);
}

async fn report(env: &Env) -> serde_json::Value {
    let out = env.run(&["report", "--format", "json"]).await;
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_finds_the_rewarded_instruction_and_demos() {
    let env = Env::with_server(server()).await;
    write_reviews(&env);
    write_spec(&env, "{ max_calls: 400 }");
    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);

    let store = store::Store::open_read_only(&env.db()).await.unwrap();
    let run = store.latest_run(None).await.unwrap().unwrap();
    let results = store.results(run.id).await.unwrap();
    // 2 seeds + 3 instructions × 4 demo sets (none and three drawn) − the one grid cell equal
    // to `zero-shot` = 13 candidates; rungs 13×20 and 7×40: 260 + 140 = 400 calls.
    assert_eq!(results.searches.len(), 13, "{:?}", results.searches);
    let searched = results
        .calls
        .iter()
        .filter(|c| c.arm.starts_with("opt@api~"))
        .count();
    assert_eq!(searched, 400, "within max_calls");
    let chosen: Vec<_> = results.searches.iter().filter(|s| s.chosen).collect();
    assert_eq!(chosen.len(), 1, "{:?}", results.searches);
    let winner = chosen[0];
    assert_eq!(winner.instruction.as_deref(), Some(BEST), "{winner:?}");
    let demos = winner.demo_ids.clone().unwrap_or_default();
    assert!(!demos.is_empty(), "{winner:?}");
    assert_eq!((winner.dev_items, winner.dev_score), (40, Some(1.0)));

    // Dev, eval and train are disjoint: dev items are what candidates answered, eval the
    // stored items, demonstrations come from train.
    let eval: BTreeSet<&str> = results.items.iter().map(|i| i.item_id.as_str()).collect();
    let dev: BTreeSet<&str> = results
        .calls
        .iter()
        .filter(|c| c.arm.starts_with("opt@api~"))
        .map(|c| c.item_id.as_str())
        .collect();
    assert_eq!((eval.len(), dev.len()), (40, 40));
    assert!(eval.is_disjoint(&dev), "dev and eval overlap");
    for s in &results.searches {
        for d in s.demo_ids.iter().flatten() {
            assert!(
                !eval.contains(d.as_str()) && !dev.contains(d.as_str()),
                "{d}"
            );
        }
    }

    let row = env.row(None, "opt@api").await;
    assert_eq!(row["quality"], 1.0, "the chosen prompt on eval: {row}");
    let zero = env.row(None, "zero-shot@api").await;
    assert_eq!(zero["quality"], 0.0, "{zero}");

    let r = report(&env).await;
    let ceiling = &r["prompt_ceiling"];
    assert_eq!(ceiling["arm"], "opt@api", "{ceiling}");
    assert_eq!(ceiling["dev_quality"], 1.0, "{ceiling}");
    assert_eq!(ceiling["searched"]["candidates"], 13, "{ceiling}");
    assert_eq!(ceiling["searched"]["calls"], 400, "{ceiling}");
    let reasons = r["reasons"].to_string();
    assert!(
        reasons.contains("Prompting's ceiling as searched"),
        "{reasons}"
    );

    env.run(&["report", "--html", "report.html"])
        .await
        .expect_code(0);
    let html = std::fs::read_to_string(env.path("report.html")).unwrap();
    assert!(
        html.contains("<h2>Prompt search</h2>") && html.contains(BEST) && html.contains(">chosen<"),
        "the HTML report lists the candidates"
    );

    // A new run of the same spec searches again from the response cache: nothing is paid twice.
    let sent = env.server().requests();
    env.run(&["run", "spec.yaml", "--new"]).await.expect_code(0);
    assert_eq!(env.server().requests(), sent, "answered from the cache");
    let again = env.row(None, "opt@api").await;
    assert_eq!(again["quality"], 1.0, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_stops_at_its_dollar_budget_and_the_run_completes() {
    let env = Env::with_server(server()).await;
    write_reviews(&env);
    // Each call costs a few dozen micro-dollars; $0.002 buys a part of the first rung.
    write_spec(&env, "{ max_calls: 400, max_cost_usd: 0.002 }");
    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(
        out.stderr.contains("the budget stopped the search"),
        "{}",
        out.stderr
    );
    let store = store::Store::open_read_only(&env.db()).await.unwrap();
    let run = store.latest_run(None).await.unwrap().unwrap();
    let results = store.results(run.id).await.unwrap();
    let spent: f64 = results
        .calls
        .iter()
        .filter(|c| c.arm.starts_with("opt@api~"))
        .map(|c| c.cost_usd)
        .sum();
    assert!(spent > 0.0 && spent <= 0.002, "{spent}");
    let searched = results
        .calls
        .iter()
        .filter(|c| c.arm.starts_with("opt@api~"))
        .count();
    assert!(searched < 260, "{searched}");
    // The optimised arm still answers every eval item: with the best prompt scored so far, or
    // (here, where no candidate answered half of the first rung) with its first seed.
    let row = env.row(None, "opt@api").await;
    assert_eq!(
        (&row["n"], &row["errors"], &row["unanswered"]),
        (&40.into(), &0.into(), &0.into()),
        "{row}"
    );
    assert_eq!(run.status, domain::RunStatus::Completed);
}

/// The search on a local model (the tiny llama of `llm::testing`): candidates answer the dev
/// split in-process, with their fixed demonstrations, and the winner answers eval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_is_searched_in_process() {
    let env = Env::without_server();
    write_reviews(&env);
    llm::testing::write_tiny_gguf(&env.path("tiny.gguf"), 5).expect("writing the tiny model");
    env.write(
        "spec.yaml",
        r#"name: opt-local
dataset: { path: reviews.jsonl, input: text, target: label, split: { eval: 10, train: 50 } }
providers:
  - { id: tiny, type: local, model: ./tiny.gguf, batch_size: 8 }
prompts:
  - { id: plain, template: "Review: {{text}}", choices: [positive, negative] }
optimize:
  - { id: opt, from: [plain], instructions: [Be brief.], demos: { max: 2, candidates: 1 }, dev: 20, budget: { max_calls: 80 } }
generation: { max_tokens: 4, temperature: 0 }
"#,
    );
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    let store = store::Store::open_read_only(&env.db()).await.unwrap();
    let run = store.latest_run(None).await.unwrap().unwrap();
    let results = store.results(run.id).await.unwrap();
    // plain, then {none, Be brief.} × {no demos, one set} less the cell equal to plain: 4.
    assert_eq!(results.searches.len(), 4, "{:?}", results.searches);
    let dev_calls: Vec<_> = results
        .calls
        .iter()
        .filter(|c| c.arm.starts_with("opt@tiny~"))
        .collect();
    assert_eq!(dev_calls.len(), 80);
    assert!(
        dev_calls
            .iter()
            .all(|c| c.error.is_none() && c.compute_seconds > 0.0)
    );
    assert_eq!(results.searches.iter().filter(|s| s.chosen).count(), 1);
    let row = env.row(None, "opt@tiny").await;
    assert_eq!(
        (&row["n"], &row["errors"]),
        (&10.into(), &0.into()),
        "{row}"
    );
}

/// The real SmolLM2 on held-out movie reviews (gated like the other slow tests). Selection is
/// exact on dev: the chosen candidate has the best dev score among those that reached the last
/// rung. On eval it must not fall clearly below the best hand-written prompt (measured on the
/// 2-core Intel Xeon: best hand-written `few-shot` 0.550, searched 0.537; SmolLM2-135M is near
/// chance on this task, so no prompt is far from another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_smollm2_the_search_picks_its_best_dev_candidate() {
    if std::env::var("ORCHESTRATOR_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping: set ORCHESTRATOR_SLOW_TESTS=1 to run it");
        return;
    }
    let env = Env::without_server();
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../datasets/vader-movie/movie_snippets.jsonl"
    );
    std::fs::copy(data, env.path("movies.jsonl")).unwrap();
    let model = models::smollm2_gguf();
    let spec = format!(
        r#"name: opt-smollm2
dataset: {{ path: movies.jsonl, input: text, target: label, split: {{ eval: 80, train: 80, seed: 7 }} }}
providers:
  - {{ id: smollm2, type: local, model: {model}, batch_size: 16 }}
prompts:
  - id: labels
    system: You label the sentiment of movie reviews.
    template: "Review: {{{{text}}}}\nIs this review positive or negative?"
    choices: [positive, negative]
  - id: few-shot
    system: You label the sentiment of movie reviews.
    template: "Review: {{{{text}}}}\nIs this review positive or negative?"
    few_shot: 2
    choices: [positive, negative]
optimize:
  - id: opt
    from: [labels, few-shot]
    instructions: [Decide whether the review is positive or negative.]
    demos: {{ max: 2, candidates: 4 }}
    dev: 60
    budget: {{ max_calls: 300 }}
generation: {{ max_tokens: 4, temperature: 0 }}
"#,
        model = model.display()
    );
    env.write("spec.yaml", &spec);
    env.run(&["run", "spec.yaml"]).await.expect_code(0);

    let store = store::Store::open_read_only(&env.db()).await.unwrap();
    let run = store.latest_run(None).await.unwrap().unwrap();
    let searches = store.results(run.id).await.unwrap().searches;
    let deepest = searches.iter().map(|s| s.dev_items).max().unwrap();
    assert_eq!(deepest, 60, "{searches:?}");
    let chosen = searches.iter().find(|s| s.chosen).unwrap();
    assert_eq!(chosen.dev_items, deepest, "{searches:?}");
    for s in searches.iter().filter(|s| s.dev_items == deepest) {
        assert!(s.dev_score <= chosen.dev_score, "{searches:?}");
    }

    let q = |row: serde_json::Value| row["quality"].as_f64().unwrap();
    let labels = q(env.row(None, "labels@smollm2").await);
    let few_shot = q(env.row(None, "few-shot@smollm2").await);
    let searched = q(env.row(None, "opt@smollm2").await);
    eprintln!("labels {labels:.3}, few-shot {few_shot:.3}, searched {searched:.3}");
    assert!(
        searched + 0.1 >= labels.max(few_shot),
        "{searched} vs {labels}, {few_shot}"
    );
}

/// `propose:` asks the hosted model once for instructions; the rewarded one arrives only that
/// way here, and the search finds it. The call is stored under `opt@api~propose` and a rerun
/// takes it from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposed_instructions_join_the_grid() {
    let mut config = server();
    config.rules = vec![(
        "Write 2 different instructions".to_owned(),
        format!("1. {BEST}\n2. Be brief."),
    )];
    let env = Env::with_server(config).await;
    write_reviews(&env);
    write_spec(&env, "{ max_calls: 400 }");
    let spec = std::fs::read_to_string(env.path("spec.yaml")).unwrap();
    let spec = spec.replace(
        &format!("instructions: [\"Be brief.\", \"{BEST}\"]"),
        "propose: { provider: api, n: 2 }",
    );
    assert!(spec.contains("propose:"), "{spec}");
    env.write("spec.yaml", &spec);
    env.run(&["run", "spec.yaml"]).await.expect_code(0);

    let store = store::Store::open_read_only(&env.db()).await.unwrap();
    let run = store.latest_run(None).await.unwrap().unwrap();
    let results = store.results(run.id).await.unwrap();
    let proposal: Vec<_> = results
        .calls
        .iter()
        .filter(|c| c.arm == "opt@api~propose")
        .collect();
    assert_eq!(proposal.len(), 1);
    assert!(proposal[0].cost_usd > 0.0, "{:?}", proposal[0]);
    assert_eq!(results.searches.len(), 13, "{:?}", results.searches);
    let winner = results.searches.iter().find(|s| s.chosen).unwrap();
    assert_eq!(winner.instruction.as_deref(), Some(BEST), "{winner:?}");

    let sent = env.server().requests();
    env.run(&["run", "spec.yaml", "--new"]).await.expect_code(0);
    assert_eq!(
        env.server().requests(),
        sent,
        "the proposal and the search from the cache"
    );
}
