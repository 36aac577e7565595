//! `train_sizes`, `few_shot_sizes` and `label_noise`: the arms they add, the nested subsets
//! and flips each point sees (the same for the same seed), and what is refused.

use std::collections::BTreeSet;

use expect_test::{Expect, expect};
use experiment::Plan;

use crate::Fixture;

/// `n` rows of three labels in the ratio 3 : 2 : 1 (`a a a b b c` repeating; the split's
/// train rows keep it roughly).
fn rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            let label = ["a", "a", "a", "b", "b", "c"][i % 6];
            format!("{{\"id\": \"r{i}\", \"text\": \"Row {i}.\", \"label\": \"{label}\"}}\n")
        })
        .collect()
}

fn spec(prompt: &str, finetune: &str) -> String {
    format!(
        r#"
        name: t
        dataset: {{ path: data.jsonl, input: text, target: label, split: {{ eval: 20, train: 120 }} }}
        providers: [{{ id: p, type: openai, model: gpt-4o-mini }}]
        prompts:
          - {{ id: fs, template: "Row: {{{{text}}}}", few_shot: 4{prompt} }}
        finetunes:
          - {{ id: lora, base_model: smollm2-135m-instruct, prompt: fs{finetune} }}
        costs: {{ staff: {{ labelling_minutes_per_example: 1.5 }} }}
        "#
    )
}

fn load(prompt: &str, finetune: &str) -> Plan {
    Fixture::new(&spec(prompt, finetune), &[("data.jsonl", &rows(150))])
        .load()
        .unwrap()
}

fn check(prompt: &str, finetune: &str, expect: Expect) {
    let f = Fixture::new(&spec(prompt, finetune), &[("data.jsonl", &rows(150))]);
    expect.assert_eq(&f.outcome());
}

fn ids(rows: &[experiment::Row]) -> BTreeSet<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}

#[test]
fn each_point_is_an_arm_after_its_declared_one() {
    let plan = load(
        ", few_shot_sizes: [0, 4, 8], label_noise: [0.0, 0.25]",
        ", train_sizes: [10, 0.25, 1.0], label_noise: [0.1]",
    );
    let arms: Vec<String> = plan
        .arms()
        .iter()
        .map(|a| {
            let s = a.sweep();
            let s = s.map(|s| format!("{} {} {}", s.family, s.examples, s.label_noise));
            format!("{} {}", a.id(), s.unwrap_or_default())
        })
        .collect();
    expect![[r#"
        [
            "fs@p fs@p 4 0",
            "fs~k0@p fs@p 0 0",
            "fs~k8@p fs@p 8 0",
            "fs~noise0.25@p fs@p 4 0.25",
            "lora lora 120 0",
            "lora~n10 lora 10 0",
            "lora~n30 lora 30 0",
            "lora~noise0.1 lora 120 0.1",
        ]
    "#]]
    .assert_debug_eq(&arms);
    assert_eq!(plan.costs.labelling_minutes_per_example, Some(1.5));
    assert!(
        plan.declared_cost_assumptions()
            .contains("labelling_minutes_per_example")
    );
}

#[test]
fn arms_without_sweeps_keep_their_ids_and_prompt_arms_no_sweep_point() {
    let plan = load("", "");
    let arms: Vec<(String, bool)> = plan
        .arms()
        .iter()
        .map(|a| (a.id().to_owned(), a.sweep().is_some()))
        .collect();
    let expected = [("fs@p".to_owned(), false), ("lora".to_owned(), true)];
    assert_eq!(
        arms, expected,
        "a fine-tune always says how many rows it used"
    );
}

/// Subsets are nested, exactly as large as asked, keep the labels' shares and are the same on
/// every load.
#[test]
fn train_sizes_take_nested_stratified_subsets() {
    let plan = load("", ", train_sizes: [6, 12, 30, 60]");
    let subset = |id: &str| {
        let ft = plan.finetunes.iter().find(|f| f.id == id).unwrap();
        plan.finetune_train(ft)
    };
    let mut smaller = BTreeSet::new();
    for n in [6, 12, 30, 60] {
        let rows = subset(&format!("lora~n{n}"));
        assert_eq!(rows.len(), n);
        let these = ids(&rows);
        assert!(
            smaller.is_subset(&these),
            "size {n} holds every smaller subset"
        );
        for label in ["a", "b", "c"] {
            let count =
                |rows: &[experiment::Row]| rows.iter().filter(|r| r.target == label).count();
            let expected = n as f64 * count(&plan.dataset.train) as f64 / 120.0;
            let got = count(&rows) as f64;
            assert!(
                (got - expected).abs() <= 1.0,
                "size {n} keeps the share of `{label}`: {got} rows, {expected:.1} expected"
            );
        }
        smaller = these;
    }
    assert_eq!(
        subset("lora").len(),
        120,
        "the declared fine-tune uses every row"
    );
    let again = load("", ", train_sizes: [6, 12, 30, 60]");
    let ft = &again.finetunes[2];
    assert_eq!(ids(&again.finetune_train(ft)), ids(&subset(&ft.id)));
}

/// A level flips exactly its share of rows to another label, every row a lower level flips
/// (to the same label), and the same rows for a prompt's demonstrations.
#[test]
fn label_noise_flips_nested_shares_to_other_labels() {
    let plan = load(", label_noise: [0.2]", ", label_noise: [0.1, 0.2, 0.4]");
    let clean = &plan.dataset.train;
    let flipped = |id: &str| -> Vec<(String, String)> {
        let ft = plan.finetunes.iter().find(|f| f.id == id).unwrap();
        let rows = plan.finetune_train(ft);
        assert_eq!(ids(&rows), ids(clean), "noise keeps every row");
        rows.iter()
            .zip(clean)
            .filter(|(noisy, row)| noisy.target != row.target)
            .map(|(noisy, _)| (noisy.id.clone(), noisy.target.clone()))
            .collect()
    };
    let mut lower: BTreeSet<(String, String)> = BTreeSet::new();
    for (level, count) in [("0.1", 12), ("0.2", 24), ("0.4", 48)] {
        let these: BTreeSet<_> = flipped(&format!("lora~noise{level}")).into_iter().collect();
        assert_eq!(these.len(), count, "level {level}");
        assert!(
            lower.is_subset(&these),
            "level {level} flips what lower levels flip"
        );
        lower = these;
    }
    assert!(flipped("lora").is_empty());

    let at_02: BTreeSet<_> = flipped("lora~noise0.2").into_iter().collect();
    let noisy_prompt = plan.prompt("fs~noise0.2").unwrap();
    let item = &plan.dataset.eval[0];
    let demos = plan.demos(noisy_prompt, item);
    let shown = plan.render(noisy_prompt, item);
    for (d, answer) in demos.iter().zip(shown.iter().skip(1).step_by(2)) {
        let expected = at_02
            .iter()
            .find(|(id, _)| id == &d.id)
            .map_or(&d.target, |(_, label)| label);
        assert_eq!(&answer.content, expected, "demo {}", d.id);
    }
}

#[test]
fn few_shot_sizes_change_only_the_number_of_demonstrations() {
    let plan = load(", few_shot_sizes: [0, 2]", "");
    let item = &plan.dataset.eval[0];
    for (id, k) in [("fs", 4), ("fs~k0", 0), ("fs~k2", 2)] {
        let p = plan.prompt(id).unwrap();
        assert_eq!(plan.render(p, item).len(), 1 + 2 * k, "{id}");
    }
}

#[test]
fn sizes_beyond_the_split_and_repeats_are_refused() {
    check(
        ", few_shot_sizes: [2, 200]",
        ", train_sizes: [40, 0.5, 60, 121]",
        expect![[r#"
            $DIR/spec.yaml:5:75: `few_shot_sizes` asks for 200, more than the 120 rows of the train split to draw demonstrations from
            $DIR/spec.yaml:7:87: `train_sizes` lists the size 60 twice
            $DIR/spec.yaml:7:91: `train_sizes` asks for 121, more than the 120 rows of the train split
        "#]],
    );
}

#[test]
fn malformed_sweep_values_are_refused_where_written() {
    check(
        ", few_shot_sizes: [0.5], label_noise: [1.0]",
        ", train_sizes: [0, 1.5, x], label_noise: 0.2",
        expect![[r#"
            $DIR/spec.yaml:5:72: `few_shot_sizes` must list whole numbers of demonstrations, zero or more, found 0.5
            $DIR/spec.yaml:5:92: `label_noise` must list shares at least 0 and less than 1, found 1.0
            $DIR/spec.yaml:7:78: `train_sizes` must list whole numbers of rows (at least 1), or shares of the train split (more than 0.0 and at most 1.0), found 0
            $DIR/spec.yaml:7:81: `train_sizes` must list whole numbers of rows (at least 1), or shares of the train split (more than 0.0 and at most 1.0), found 1.5
            $DIR/spec.yaml:7:86: `train_sizes` must list numbers, found the string `x`
            $DIR/spec.yaml:7:103: `label_noise` must be a list of numbers, found the number `0.2`
        "#]],
    );
}

#[test]
fn noise_needs_demonstrations_and_two_labels() {
    let text =
        spec(", label_noise: [0.2]", ", label_noise: [0.2]").replace("few_shot: 4", "few_shot: 0");
    let one_label: String = (0..150)
        .map(|i| format!("{{\"id\": \"r{i}\", \"text\": \"Row {i}.\", \"label\": \"a\"}}\n"))
        .collect();
    let f = Fixture::new(&text, &[("data.jsonl", &one_label)]);
    expect![[r#"
        $DIR/spec.yaml:5:69: `label_noise` flips labels to another label, but the train split has only one label
        $DIR/spec.yaml:7:78: `label_noise` flips labels to another label, but the train split has only one label
    "#]]
    .assert_eq(&f.outcome());
    let f = Fixture::new(&text, &[("data.jsonl", &rows(150))]);
    expect![[r#"
        $DIR/spec.yaml:5:52: `label_noise` flips the labels of demonstrations, but prompt `fs` shows none: set `few_shot`
    "#]]
    .assert_eq(&f.outcome());
}

/// A searched arm seeded by a prompt with sweeps is no point of that prompt's curve.
#[test]
fn an_optimised_arm_seeded_by_a_swept_prompt_is_outside_the_sweep() {
    let text = spec(", few_shot_sizes: [0]", "").replace(
        "finetunes:",
        "optimize: [ { id: opt, from: [fs], dev: 20 } ]\n        finetunes:",
    );
    let text = text.replace(
        "split: { eval: 20, train: 120 }",
        "split: { eval: 20, train: 100 }",
    );
    let plan = Fixture::new(&text, &[("data.jsonl", &rows(150))])
        .load()
        .unwrap();
    let arms = plan.arms();
    let opt = arms.iter().find(|a| a.id() == "opt@p").unwrap();
    assert_eq!(opt.sweep(), None);
    for c in plan.optimize[0].candidates(&plan, &[]) {
        assert_eq!(
            (c.prompt.family.as_deref(), c.prompt.label_noise),
            (None, 0.0)
        );
    }
}
