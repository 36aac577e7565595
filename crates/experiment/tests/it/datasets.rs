//! Dataset files through `load`: each format, ids, malformed rows reported with the data file's
//! line numbers, and the split and fingerprint as the plan shows them.

use expect_test::{Expect, expect};

use crate::Fixture;

const SPEC: &str = r#"
    name: t
    dataset: { path: DATA, input: text, target: label }
    providers: [{ type: openai, model: m }]
    prompts: [{ id: zs, template: "{{text}}" }]
    "#;

fn fixture(file: &str, content: &str) -> Fixture {
    Fixture::new(&SPEC.replace("DATA", file), &[(file, content)])
}

/// The eval rows as `id: input -> target {fields}`, or the diagnostics.
fn check(file: &str, content: &str, expect: Expect) {
    let f = fixture(file, content);
    let shown = match f.load() {
        Ok(plan) => plan
            .dataset
            .eval
            .iter()
            .map(|r| format!("{}: {} -> {} {:?}\n", r.id, r.input, r.target, r.fields))
            .collect(),
        Err(_) => f.outcome(),
    };
    expect.assert_eq(&shown);
}

#[test]
fn jsonl_values_are_stringified() {
    check(
        "d.jsonl",
        "{\"text\": \"hi\", \"label\": \"pos\", \"stars\": 4.5, \"ok\": true, \"tags\": [1, \"a\"], \"none\": null}\n\
         \n\
         {\"text\": \"bye\", \"label\": 0}\r\n",
        expect![[r#"
            1: hi -> pos {"label": "pos", "ok": "true", "stars": "4.5", "tags": "[1,\"a\"]", "text": "hi"}
            3: bye -> 0 {"label": "0", "text": "bye"}
        "#]],
    );
}

#[test]
fn jsonl_ids_come_from_the_id_field() {
    check(
        "d.jsonl",
        "{\"id\": 17, \"text\": \"a\", \"label\": \"x\"}\n{\"id\": \"q-2\", \"text\": \"b\", \"label\": \"y\"}\n",
        expect![[r#"
            17: a -> x {"id": "17", "label": "x", "text": "a"}
            q-2: b -> y {"id": "q-2", "label": "y", "text": "b"}
        "#]],
    );
}

#[test]
fn csv_with_quotes_and_multiline_fields() {
    check(
        "d.csv",
        "text,label\n\"Hello, world\",greeting\n\"two\nlines\",poem\nplain,x\n",
        expect![[r#"
            2: Hello, world -> greeting {"label": "greeting", "text": "Hello, world"}
            3: two
            lines -> poem {"label": "poem", "text": "two\nlines"}
            5: plain -> x {"label": "x", "text": "plain"}
        "#]],
    );
}

#[test]
fn tsv_does_not_treat_quotes_specially() {
    check(
        "d.tsv",
        "id\ttext\tlabel\nr1\tsay \"hi\tpos\nr2\tno\tneg\n",
        expect![[r#"
            r1: say "hi -> pos {"id": "r1", "label": "pos", "text": "say \"hi"}
            r2: no -> neg {"id": "r2", "label": "neg", "text": "no"}
        "#]],
    );
}

#[test]
fn malformed_jsonl_rows() {
    check(
        "d.jsonl",
        "{\"text\": \"ok\", \"label\": \"x\"}\n\
         {\"text\": \"broken\", \"label\": }\n\
         [1, 2]\n\
         {\"text\": \"no label\"}\n\
         {\"label\": \"no text\"}\n\
         {\"text\": \"fine\", \"label\": \"y\", \"id\": \"1\"}\n",
        expect![[r#"
            $DIR/d.jsonl:2:29: invalid JSON: expected value
            $DIR/d.jsonl:3:1: expected a JSON object per line, found an array
            $DIR/d.jsonl:4:1: row has no field `label` (the dataset's `target`)
            $DIR/d.jsonl:5:1: row has no field `text` (the dataset's `input`)
            $DIR/d.jsonl:6:1: duplicate id `1` (first at line 1)
        "#]],
    );
}

#[test]
fn malformed_csv_rows() {
    check(
        "d.csv",
        "text,label\nok,x\ntoo,many,fields\nshort\nfine,y\n",
        expect![[r#"
            $DIR/d.csv:3:1: row has 3 fields, but the header has 2
            $DIR/d.csv:4:1: row has 1 field, but the header has 2
        "#]],
    );
}

#[test]
fn csv_header_problems() {
    check(
        "d.csv",
        "text,label,text\na,b,c\n",
        expect![[r#"
            $DIR/d.csv:1:1: header names `text` twice
        "#]],
    );
}

#[test]
fn duplicate_ids_in_a_file() {
    check(
        "d.jsonl",
        "{\"id\": \"a\", \"text\": \"1\", \"label\": \"x\"}\n{\"id\": \"a\", \"text\": \"2\", \"label\": \"x\"}\n",
        expect![[r#"
            $DIR/d.jsonl:2:1: duplicate id `a` (first at line 1)
        "#]],
    );
}

#[test]
fn empty_dataset() {
    check(
        "d.jsonl",
        "\n\n",
        expect![[r#"
        $DIR/spec.yaml:2:18: dataset file `$DIR/d.jsonl` has no rows
    "#]],
    );
}

#[test]
fn problems_past_the_cap_are_counted() {
    let mut content = String::new();
    for _ in 0..25 {
        content.push_str("not json\n");
    }
    let f = fixture("d.jsonl", &content);
    let out = f.outcome();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 21, "{out}");
    expect![
        "$DIR/d.jsonl:21:1: 5 more problems in this file from here on (only the first 20 are shown)"
    ]
    .assert_eq(lines[20]);
}

#[test]
fn split_and_fingerprint_are_stable() {
    let mut content = String::new();
    for i in 1..=30 {
        content.push_str(&format!(
            "{{\"text\": \"item {i}\", \"label\": \"{}\"}}\n",
            i % 2
        ));
    }
    let spec = r#"
        name: t
        dataset: { path: d.jsonl, input: text, target: label, split: { eval: 5, train: 10, seed: 42 } }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#;
    let a = Fixture::new(spec, &[("d.jsonl", &content)]).load().unwrap();
    let b = Fixture::new(spec, &[("d.jsonl", &content)]).load().unwrap();
    assert_eq!(a.dataset, b.dataset);
    assert_eq!(a.spec_hash, b.spec_hash);

    let eval: Vec<&str> = a.dataset.eval.iter().map(|r| r.id.as_str()).collect();
    let train: Vec<&str> = a.dataset.train.iter().map(|r| r.id.as_str()).collect();
    assert!(eval.iter().all(|id| !train.contains(id)));
    // Pinned: changing these changes every user's eval set and must be deliberate.
    expect![[r#"
        eval ["5", "8", "12", "22", "28"]
        train ["2", "3", "4", "10", "17", "20", "23", "24", "25", "26"]
        fingerprint 2b86a201ef0d998475bb06b5bcc1cc3c82f24fa6e74bd3134a730c0888b2d861
    "#]]
    .assert_eq(&format!(
        "eval {eval:?}\ntrain {train:?}\nfingerprint {}\n",
        a.dataset.fingerprint
    ));

    let reseeded = Fixture::new(
        &spec.replace("seed: 42", "seed: 43"),
        &[("d.jsonl", &content)],
    )
    .load()
    .unwrap();
    assert_ne!(reseeded.dataset.fingerprint, a.dataset.fingerprint);
    let edited = Fixture::new(
        spec,
        &[("d.jsonl", &content.replace("item 5\"", "item five\""))],
    )
    .load()
    .unwrap();
    assert_ne!(edited.dataset.fingerprint, a.dataset.fingerprint);
    assert_ne!(edited.spec_hash, a.spec_hash);
}

#[test]
fn rows_missing_a_template_field() {
    let f = Fixture::new(
        r#"
        name: t
        dataset: { path: d.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{title}}: {{text}}" }]
        "#,
        &[(
            "d.jsonl",
            "{\"title\": \"Up\", \"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n",
        )],
    );
    expect![[r#"
        $DIR/d.jsonl:2:1: row has no field `title` (used by prompt `zs`)
    "#]]
    .assert_eq(&f.outcome());
}

#[test]
fn separate_files_and_a_custom_id_field() {
    let f = Fixture::new(
        r#"
        name: t
        dataset:
          eval: eval.csv
          train: train.tsv
          input: text
          target: label
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}", few_shot: 1 }]
        "#,
        &[
            ("eval.csv", "text,label\nfirst,x\nsecond,y\n"),
            ("train.tsv", "text\tlabel\nthird\tz\n"),
        ],
    );
    let plan = f.load().unwrap();
    let ids = |rows: &[experiment::Row]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&plan.dataset.eval), ["2", "3"]);
    assert_eq!(ids(&plan.dataset.train), ["train:2"]);

    let f = Fixture::new(
        r#"
        name: t
        dataset: { path: d.jsonl, input: text, target: label, id: key }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        &[(
            "d.jsonl",
            "{\"key\": \"k1\", \"id\": \"ignored\", \"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n",
        )],
    );
    expect![[r#"
        $DIR/d.jsonl:2:1: row has no field `key` (the dataset's `id`)
    "#]]
    .assert_eq(&f.outcome());
}
