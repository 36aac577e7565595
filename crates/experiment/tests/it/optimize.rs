//! `optimize:` blocks: the dev split is carved from train (disjoint from eval and train, the same
//! for the same seed), the candidates are the seeds then a shuffled instruction × demo-set grid
//! whose demos come from train only, and every refusal the issue asks for is made at load time
//! with a message that says where and what.

use std::collections::BTreeSet;

use expect_test::{Expect, expect};

use crate::Fixture;

/// 100 rows `r0`…`r99`, labels cycling through three intents.
fn rows() -> String {
    (0..100)
        .map(|i| {
            let label = ["music", "weather", "book"][i % 3];
            format!("{{\"id\": \"r{i}\", \"text\": \"utterance {i}\", \"label\": \"{label}\"}}\n")
        })
        .collect()
}

fn spec(block: &str) -> String {
    spec_split(block, 70)
}

fn spec_split(block: &str, train: usize) -> String {
    format!(
        r#"
        name: t
        dataset: {{ path: data.jsonl, input: text, target: label, split: {{ eval: 30, train: {train} }} }}
        providers:
          - {{ id: api, type: openai, model: gpt-4o-mini }}
        prompts:
          - {{ id: zs, system: "Classify.", template: "U: {{{{text}}}}" }}
          - {{ id: fs, system: "Classify.", template: "U: {{{{text}}}}", few_shot: 2 }}
        optimize:
          - {block}
        "#
    )
}

fn check(block: &str, expect: Expect) {
    let data = rows();
    expect.assert_eq(&Fixture::new(&spec(block), &[("data.jsonl", &data)]).outcome());
}

#[test]
fn dev_is_carved_from_train_and_candidates_draw_demos_from_train() {
    let data = rows();
    let block = "{ id: opt, from: [zs, fs], instructions: [Be brief.], demos: { max: 3, candidates: 4 }, dev: 25 }";
    let f = Fixture::new(&spec(block), &[("data.jsonl", &data)]);
    let plan = f.load().unwrap();
    let ids = |rows: &[experiment::Row]| -> BTreeSet<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    };
    let (eval, train, dev) = (
        ids(&plan.dataset.eval),
        ids(&plan.dataset.train),
        ids(&plan.dataset.dev),
    );
    assert_eq!((eval.len(), train.len(), dev.len()), (30, 45, 25));
    assert!(eval.is_disjoint(&train) && eval.is_disjoint(&dev) && train.is_disjoint(&dev));
    assert_eq!(
        plan,
        f.load().unwrap(),
        "the same seed carves the same dev split"
    );

    let block = &plan.optimize[0];
    assert_eq!(
        block.providers,
        vec!["api".to_owned()],
        "every provider by default"
    );
    let candidates = block.candidates(&plan, &[]);
    // Seeds zs and fs; then {Classify., Be brief.} × {no demos, 4 sets} less the cell equal to zs.
    assert_eq!(candidates.len(), 2 + 2 * 5 - 1);
    assert_eq!(candidates[0].prompt.system.as_deref(), Some("Classify."));
    assert_eq!(
        (candidates[1].seed.as_str(), candidates[1].prompt.few_shot),
        ("fs", 2)
    );
    assert!(candidates.iter().all(|c| c.prompt.id == "opt"));
    let sets: Vec<&Vec<String>> = candidates
        .iter()
        .filter_map(|c| c.prompt.demos.as_ref())
        .collect();
    for set in &sets {
        assert!(set.len() <= 3);
        assert!(set.iter().all(|d| train.contains(d)), "{set:?}");
    }
    // Demo sets cycle 1, 2, 3, 1 rows, and a set of three shows all three labels.
    let sizes: BTreeSet<usize> = sets.iter().map(|s| s.len()).collect();
    assert_eq!(sizes, BTreeSet::from([0, 1, 2, 3]));
    let three = sets.iter().find(|s| s.len() == 3).unwrap();
    let labels: BTreeSet<&str> = three
        .iter()
        .map(|id| {
            plan.dataset
                .train
                .iter()
                .find(|r| &r.id == id)
                .unwrap()
                .target
                .as_str()
        })
        .collect();
    assert_eq!(labels.len(), 3, "{three:?}");

    // The optimised arm comes after the prompt arms, and renders its fixed demos in order.
    let arms: Vec<String> = plan.arms().iter().map(|a| a.id().to_owned()).collect();
    assert_eq!(arms, vec!["zs@api", "fs@api", "opt@api"]);
    let with_demos = candidates.iter().find(|c| c.prompt.few_shot == 3).unwrap();
    let messages = plan.render(&with_demos.prompt, &plan.dataset.dev[0]);
    assert_eq!(messages.len(), 1 + 2 * 3 + 1, "{messages:?}");
}

#[test]
fn dev_comes_from_rows_the_split_leaves_unused_when_there_are_enough() {
    let data = rows();
    let block = "{ id: opt, from: [zs], instructions: [a, b], dev: 25 }";
    let plan = Fixture::new(&spec_split(block, 40), &[("data.jsonl", &data)])
        .load()
        .unwrap();
    let d = &plan.dataset;
    assert_eq!((d.eval.len(), d.train.len(), d.dev.len()), (30, 40, 25));
    let used: BTreeSet<&str> = d
        .eval
        .iter()
        .chain(&d.train)
        .map(|r| r.id.as_str())
        .collect();
    assert!(d.dev.iter().all(|r| !used.contains(r.id.as_str())));
    // Without `optimize:` the unused rows are no split at all.
    let text = spec_split(block, 40);
    let without = &text[..text.find("optimize:").unwrap()];
    let plan = Fixture::new(without, &[("data.jsonl", &data)])
        .load()
        .unwrap();
    assert!(plan.dataset.dev.is_empty() && plan.optimize.is_empty());
}

#[test]
fn a_budget_below_four_candidates_on_twenty_items_is_refused() {
    check(
        "{ id: opt, from: [zs, fs], instructions: [a, b], dev: 40, budget: { max_calls: 79 } }",
        expect![[r#"
            $DIR/spec.yaml:9:84: `max_calls: 79` cannot buy a search: 4 candidates on 20 dev items take 80 calls
        "#]],
    );
}

#[test]
fn a_small_or_oversized_dev_split_is_refused() {
    check(
        "{ id: opt, from: [zs], instructions: [a, b], dev: 19 }",
        expect![[r#"
            $DIR/spec.yaml:9:55: `dev: 19` is too few items to choose a prompt on: the search needs at least 20
        "#]],
    );
    check(
        "{ id: opt, from: [zs], instructions: [a, b], dev: 71 }",
        expect![[r#"
            $DIR/spec.yaml:9:55: `dev: 71` needs rows outside eval: the split leaves 0 unused and the train split has 70; lower `dev`, or leave rows out of `dataset.split`
        "#]],
    );
}

#[test]
fn references_and_too_few_candidates_are_refused() {
    check(
        "{ id: opt, from: [zz], providers: [apx], propose: { provider: nope } }",
        expect![[r#"
            $DIR/spec.yaml:9:23: unknown prompt `zz`: expected `zs` or `fs`
            $DIR/spec.yaml:9:40: unknown provider `apx`, did you mean `api`?
            $DIR/spec.yaml:9:67: unknown provider `nope`: expected `api`
        "#]],
    );
    check(
        "{ id: opt, from: [zs], demos: { max: 0, candidates: 0 } }",
        expect![[r#"
            $DIR/spec.yaml:9:5: `optimize` `opt` has only 1 candidate prompt(s) to compare; a search needs at least 4: add `instructions`, `demos` (from a train split) or more seed prompts in `from`
        "#]],
    );
    check(
        "{ id: zs, from: [zs] }",
        expect![[r#"
            $DIR/spec.yaml:9:11: duplicate prompt id `zs` (first at line 6) (prompts and `optimize` entries share ids: both name arms `id@provider`)
        "#]],
    );
}

#[test]
fn a_bootstrap_pool_is_read_and_bounded_by_demos_and_train() {
    let data = rows();
    let block =
        "{ id: opt, from: [zs, fs], demos: { max: 3, candidates: 4, bootstrap: 20 }, dev: 25 }";
    let plan = Fixture::new(&spec(block), &[("data.jsonl", &data)])
        .load()
        .unwrap();
    assert_eq!(plan.optimize[0].demos.bootstrap, 20);
    // The pool's rows are the demo sets' only source.
    let pool = &plan.dataset.train[..6];
    let ids: BTreeSet<&str> = pool.iter().map(|r| r.id.as_str()).collect();
    for c in plan.optimize[0].candidates_with_demos(&plan, &[], pool) {
        if c.id == "c00" || c.id == "c01" {
            continue; // the seeds as written
        }
        for id in c.prompt.demos.iter().flatten() {
            assert!(ids.contains(id.as_str()), "{id} is not in the pool");
        }
    }
    check(
        "{ id: opt, from: [zs, fs], demos: { max: 3, bootstrap: 2 }, dev: 25 }",
        expect![[r#"
            $DIR/spec.yaml:9:60: `bootstrap: 2` must be between `demos.max` (3) and the train split's 45 rows
        "#]],
    );
}
