//! One test per kind of spec problem, asserting the exact `FILE:LINE:COL: message` lines that
//! `orchestrator validate` prints. `$DIR` stands for the test's temporary folder.

use expect_test::{Expect, expect};

use crate::{Fixture, MOVIES};

fn check(spec: &str, expect: Expect) {
    check_with(spec, &[("data.jsonl", MOVIES)], expect);
}

fn check_with(spec: &str, files: &[(&str, &str)], expect: Expect) {
    expect.assert_eq(&Fixture::new(spec, files).outcome());
}

#[test]
fn a_valid_spec_has_no_diagnostics() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: gpt-4o-mini }]
        prompts: [{ id: zs, template: "Review: {{text}}" }]
        "#,
        expect![[r#"ok"#]],
    );
}

#[test]
fn yaml_syntax_error() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text
        providers: []
        "#,
        expect![[r#"
            $DIR/spec.yaml:3:10: invalid YAML: while parsing a flow mapping, did not find expected ',' or '}'
        "#]],
    );
}

#[test]
fn unknown_key_suggests_the_closest() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        prompts: [{ id: zs, template: "{{text}}" }]
        finetunes:
          - id: ft
            base_model: smollm2-135m-instruct
            prompt: zs
            lora_rnak: 8
            learning_rat: 0.001
        "#,
        expect![[r#"
            $DIR/spec.yaml:8:5: unknown field `lora_rnak`, did you mean `lora_r`?
            $DIR/spec.yaml:9:5: unknown field `learning_rat`, did you mean `learning_rate`?
        "#]],
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_ones() {
    check(
        r#"
        name: t
        colour: blue
        dataset: { path: data.jsonl, input: text, target: label, wibble: 1 }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:2:1: unknown field `colour`, expected `name`, `description`, `dataset`, `providers`, `prompts`, `finetunes`, `generation`, `scorers`, `budget`, `costs`, `decision`, `optimize`, `review` or `batch`
            $DIR/spec.yaml:3:58: unknown field `wibble`, expected `path`, `train`, `eval`, `input`, `target`, `id` or `split`
        "#]],
    );
}

#[test]
fn aliases_are_accepted_but_not_twice() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        prompts: [{ id: zs, template: "{{text}}" }]
        finetunes:
          - id: ft
            base_model: smollm2-135m-instruct
            prompt: zs
            lora_rank: 4
            num_train_epochs: 1
            lora_r: 8
        "#,
        expect![[r#"
            $DIR/spec.yaml:10:5: `lora_r` is set twice: as `lora_rank` at line 8 and as `lora_r` here
        "#]],
    );
}

#[test]
fn wrong_types() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers:
          - type: openai
            model: gpt-4o-mini
            max_concurrency: many
            timeout_s: -1
            batch_api: "yes"
            pricing: 0.15
        prompts:
          - id: zs
            template: [not, a, string]
            few_shot: 1.5
        generation: { max_tokens: 0, temperature: hot, stop: { a: 1 } }
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:22: `max_concurrency` must be a positive whole number, found the string `many`
            $DIR/spec.yaml:7:16: `timeout_s` must be more than 0 and at most 3600, found -1
            $DIR/spec.yaml:8:16: `batch_api` must be `true` or `false`, found the string `yes`
            $DIR/spec.yaml:9:14: `pricing` must be a mapping, found the number `0.15`
            $DIR/spec.yaml:12:15: `template` must be a string, found a list
            $DIR/spec.yaml:13:15: `few_shot` must be a whole number, found the number `1.5`
            $DIR/spec.yaml:14:27: `max_tokens` must be at least 1, found 0
            $DIR/spec.yaml:14:43: `temperature` must be a number, found the string `hot`
            $DIR/spec.yaml:14:54: `stop` must be a list of strings, found a mapping
        "#]],
    );
}

#[test]
fn missing_required_fields() {
    check(
        r#"
        dataset:
          path: data.jsonl
          input: text
        providers:
          - type: openai
        prompts:
          - id: zs
            system: Be brief.
        "#,
        expect![[r#"
            $DIR/spec.yaml:1:1: missing field `name`
            $DIR/spec.yaml:2:3: missing field `target`
            $DIR/spec.yaml:5:5: missing field `model`
            $DIR/spec.yaml:7:5: missing field `template`
        "#]],
    );
}

#[test]
fn empty_spec() {
    check(
        "",
        expect![[r#"
            $DIR/spec.yaml:1:1: the spec is empty: it needs at least `name`, `dataset` and arms to compare
        "#]],
    );
}

#[test]
fn missing_dataset_file() {
    check(
        r#"
        name: t
        dataset: { path: nowhere/data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:2:18: dataset file `$DIR/nowhere/data.jsonl` not found
        "#]],
    );
}

#[test]
fn unsupported_dataset_format() {
    check_with(
        r#"
        name: t
        dataset: { path: data.txt, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        &[("data.txt", "hello\n")],
        expect![[r#"
            $DIR/spec.yaml:2:18: unsupported dataset file `$DIR/data.txt`: use `.jsonl`, `.csv` or `.tsv`
        "#]],
    );
}

#[test]
fn input_or_target_not_a_field() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: txt, target: sentiment }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:2:37: `input: txt` is not a field of `$DIR/data.jsonl`, did you mean `text`?
            $DIR/spec.yaml:2:50: `target: sentiment` is not a field of `$DIR/data.jsonl`; its fields are `id`, `label` and `text`
        "#]],
    );
}

#[test]
fn template_variable_not_a_field() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts:
          - id: zs
            system: "You rate {{ genre }} films."
            template: |
              Review: {{txt}}
              Rating: {{stars}} ({{input}})
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:23: `{{ genre }}` is not a dataset field; the fields are `id`, `label` and `text` (and `input`)
            $DIR/spec.yaml:8:15: `{{txt}}` is not a dataset field, did you mean `text`?
            $DIR/spec.yaml:9:15: `{{stars}}` is not a dataset field; the fields are `id`, `label` and `text` (and `input`)
        "#]],
    );
}

#[test]
fn template_that_shows_the_target() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts:
          - id: cheat
            template: "{{text}} is {{label}}"
          - id: cheat2
            template: "{{ target }}"
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:28: `{{label}}` shows the target (`label`) in the prompt, giving the answer away; demonstrations come from `few_shot`
            $DIR/spec.yaml:8:16: `{{ target }}` shows the target (`label`) in the prompt, giving the answer away; demonstrations come from `few_shot`
        "#]],
    );
}

#[test]
fn broken_placeholders() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts:
          - id: a
            template: "{{ }} and {{text"
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:16: `{{ }}` is not a placeholder: write `{{field}}` with a dataset field name
            $DIR/spec.yaml:6:26: `{{` is never closed with `}}`
        "#]],
    );
}

#[test]
fn duplicate_ids() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers:
          - { id: p, type: openai, model: m }
          - { id: p, type: local, model: smollm2-135m-instruct }
        prompts:
          - { id: zs, template: "{{text}}" }
          - { id: zs, template: "{{text}}!" }
        finetunes:
          - { id: ft, base_model: smollm2-135m-instruct, prompt: zs }
          - { id: ft, base_model: smollm2-135m-instruct, prompt: zs }
        scorers:
          - type: contains
          - type: contains
            value: pos
        "#,
        expect![[r#"
            $DIR/spec.yaml:5:11: duplicate provider id `p` (first at line 4)
            $DIR/spec.yaml:8:11: duplicate prompt id `zs` (first at line 7)
            $DIR/spec.yaml:11:11: duplicate fine-tune id `ft` (first at line 10)
            $DIR/spec.yaml:14:11: duplicate scorer id `contains` (first at line 13): give each scorer of one type its own `id`
        "#]],
    );
}

#[test]
fn invalid_ids() {
    check(
        r#"
        name: my experiment
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ id: "a@b", type: openai, model: m }, { type: local, model: "my model.gguf" }]
        prompts: [{ id: "zero shot", template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:1:7: invalid name `my experiment`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
            $DIR/spec.yaml:3:19: invalid id `a@b`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
            $DIR/spec.yaml:3:74: model `my model.gguf` cannot name arms: give this provider an `id`
            $DIR/spec.yaml:3:74: model path $DIR/my model.gguf does not exist
            $DIR/spec.yaml:4:17: invalid id `zero shot`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
        "#]],
    );
}

/// Fine-tune ids name folders under `.orchestrator/` and every id reaches terminals: a path, a
/// hidden name or a bidi override is refused where it is written.
#[test]
fn ids_cannot_be_paths_or_hide_text() {
    check(
        r#"
        name: ".."
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers: [{ type: openai, model: "org/model:latest" }, { id: "p\u202egnp", type: openai, model: m }]
        prompts: [{ id: .hidden, template: "{{text}}" }, { id: ok, template: "{{text}}" }]
        finetunes:
          - { id: ../../../../x, base_model: smollm2-135m-instruct, prompt: ok }
          - { id: /abs/path, base_model: smollm2-135m-instruct, prompt: ok }
        "#,
        expect![[r#"
            $DIR/spec.yaml:1:7: invalid name `..`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
            $DIR/spec.yaml:3:64: invalid id `p\u{202e}gnp`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
            $DIR/spec.yaml:4:17: invalid id `.hidden`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
            $DIR/spec.yaml:6:11: invalid id `../../../../x`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
            $DIR/spec.yaml:7:11: invalid id `/abs/path`: use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit
        "#]],
    );
}

#[test]
fn bad_devices_and_provider_types() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers:
          - { type: local, model: smollm2-135m-instruct, device: gpu }
          - { type: opnai, model: m }
          - { type: openai, model: m2, device: cpu }
        prompts: [{ id: zs, template: "{{text}}" }]
        finetunes:
          - id: ft
            base_model: smollm2-135m-instruct
            prompt: zs
            adapter: qlora
            lora_target_modules: [q_proj, v_porj, mlp]
            lr_scheduler: constant
            compute: { device: "cuda:x", cost_per_hour: 1.2 }
        "#,
        expect![[r#"
            $DIR/spec.yaml:4:58: invalid device `gpu`: expected `cpu`, `cuda`, `cuda:N` or `auto`
            $DIR/spec.yaml:5:13: unknown provider type `opnai`, did you mean `openai`?
            $DIR/spec.yaml:6:32: `device` applies to `type: local` providers, not `type: openai`
            $DIR/spec.yaml:12:14: unsupported adapter `qlora`: only `lora` is supported
            $DIR/spec.yaml:13:35: unknown LoRA target module `v_porj`, did you mean `v_proj`?
            $DIR/spec.yaml:13:43: unknown LoRA target module `mlp`: expected `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj` or `down_proj`
            $DIR/spec.yaml:14:19: unknown `lr_scheduler` `constant`: expected `cosine` or `linear`
            $DIR/spec.yaml:15:24: invalid device `cuda:x`: expected `cpu`, `cuda`, `cuda:N` or `auto`
        "#]],
    );
}

#[test]
fn finetune_names_an_unknown_prompt() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        prompts: [{ id: zero-shot, template: "{{text}}" }]
        finetunes:
          - { id: ft, base_model: smollm2-135m-instruct, prompt: zero-shto }
          - { id: ft2, base_model: smollm2-135m-instruct, prompt: other }
        "#,
        expect![[r#"
            $DIR/spec.yaml:5:58: unknown prompt `zero-shto`, did you mean `zero-shot`?
            $DIR/spec.yaml:6:59: unknown prompt `other`: expected `zero-shot`
        "#]],
    );
}

#[test]
fn decision_metric_must_be_a_scorer() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        scorers: [{ type: equals }, { type: contains, id: has-label }]
        decision: { metric: has_label, quality_target: 1.5 }
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:21: unknown scorer `has_label`, did you mean `has-label`?
            $DIR/spec.yaml:6:48: `quality_target` must be between 0 and 1, found 1.5
        "#]],
    );
}

#[test]
fn scorer_problems() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        scorers:
          - type: equal
          - type: llm-rubric
          - type: regex
            pattern: "(unclosed"
          - type: json-field
          - type: equals
            value: x
          - { type: similar, threshold: 2, model: nowhere/ }
          - { type: similar, id: s, pattern: x }
          - { type: equals, id: s.raw }
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:11: unknown scorer type `equal`, did you mean `equals`?
            $DIR/spec.yaml:7:11: scorer type `llm-rubric` is not supported yet: use `equals`, `contains`, `regex`, `is-json`, `json-field`, `f1`, `rouge-l` or `similar`
            $DIR/spec.yaml:9:14: invalid `pattern`: unclosed group
            $DIR/spec.yaml:10:5: missing field `field`
            $DIR/spec.yaml:12:12: `value` does not apply to `equals` scorers
            $DIR/spec.yaml:13:33: `threshold` must be in [-1, 1], found 2
            $DIR/spec.yaml:13:43: model path $DIR/nowhere/ does not exist
            $DIR/spec.yaml:14:38: `pattern` does not apply to `similar` scorers
            $DIR/spec.yaml:15:25: scorer id `s.raw` is taken by the raw cosine of the `similar` scorer `s`
        "#]],
    );
}

#[test]
fn empty_scorer_list() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        scorers: []
        "#,
        expect![[r#"
            $DIR/spec.yaml:5:1: `scorers` must list at least one scorer
        "#]],
    );
}

#[test]
fn split_larger_than_the_dataset() {
    check(
        r#"
        name: t
        dataset:
          path: data.jsonl
          input: text
          target: label
          split: { eval: 4, train: 3, seed: 1 }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:6:10: `split` asks for 4 eval + 3 train rows, but the dataset has 6 rows
        "#]],
    );
}

#[test]
fn few_shot_and_finetunes_need_train_rows() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts:
          - id: fs
            template: "{{text}}"
            few_shot: 2
        finetunes:
          - { id: ft, base_model: smollm2-135m-instruct, prompt: fs }
        "#,
        expect![[r#"
            $DIR/spec.yaml:7:15: `few_shot: 2` draws demonstrations from the train split, which is empty: set `dataset.split.train` (or a `dataset.train` file)
            $DIR/spec.yaml:9:11: fine-tune `ft` needs training rows, but the train split is empty: set `dataset.split.train` (or a `dataset.train` file)
        "#]],
    );
}

#[test]
fn few_shot_larger_than_train() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { train: 2 } }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: fs, template: "{{text}}", few_shot: 3 }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:4:53: `few_shot: 3` asks for more demonstrations than the train split has rows (2)
        "#]],
    );
}

#[test]
fn no_arms() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:1:1: the experiment has no arms: add `providers` and `prompts`, or `finetunes`
        "#]],
    );
}

#[test]
fn providers_without_prompts() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:3:1: providers need prompts to run: add `prompts`
        "#]],
    );
}

#[test]
fn path_and_files_are_exclusive() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, eval: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:2:18: give either `path` (split by `split`) or `eval` and `train` files, not both
        "#]],
    );
}

#[test]
fn split_with_separate_files() {
    check_with(
        r#"
        name: t
        dataset:
          eval: data.jsonl
          train: train.jsonl
          input: text
          target: label
          split: { eval: 2, seed: 3 }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        &[
            ("data.jsonl", crate::MOVIES),
            (
                "train.jsonl",
                "{\"id\": \"z\", \"text\": \"ok\", \"label\": \"positive\"}\n",
            ),
        ],
        expect![[r#"
            $DIR/spec.yaml:7:10: `split` divides `path`; with separate `eval` and `train` files keep only `split.seed`
        "#]],
    );
}

#[test]
fn train_file_sharing_an_eval_item() {
    check_with(
        r#"
        name: t
        dataset: { eval: data.jsonl, train: train.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        &[
            ("data.jsonl", crate::MOVIES),
            (
                "train.jsonl",
                "{\"id\": \"z\", \"text\": \"ok\", \"label\": \"positive\"}\n\
                 {\"id\": \"c\", \"text\": \"I loved every minute.\", \"label\": \"positive\"}\n",
            ),
        ],
        expect![[r#"
            $DIR/train.jsonl:2:1: id `c` is also in the eval file (line 3): train and eval must not share items
        "#]],
    );
}

#[test]
fn many_problems_are_reported_together_in_file_order() {
    check(
        r#"
        name: t
        description: [1]
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 0 } }
        providers:
          - { type: openai, model: m, base_url: "ftp://x", api_key_env: "sk-live-123" }
        prompts: [{ id: zs, template: "{{text}}" }]
        budget: { max_cost_usd: -5 }
        costs:
          traffic: { daily_requests: lots }
          staff: { hourly_rate: 90 }
        decision: { metric: f1 }
        "#,
        expect![[r#"
            $DIR/spec.yaml:2:14: `description` must be a string, found a list
            $DIR/spec.yaml:3:73: `eval` must be at least 1, found 0
            $DIR/spec.yaml:5:41: `base_url` must start with `http://` or `https://`, found `ftp://x`
            $DIR/spec.yaml:5:65: `api_key_env` takes the name of an environment variable (such as `OPENAI_API_KEY`), not the key itself
            $DIR/spec.yaml:7:25: `max_cost_usd` must be zero or more, found -5
            $DIR/spec.yaml:9:30: `daily_requests` must be a number, found the string `lots`
            $DIR/spec.yaml:10:12: unknown field `hourly_rate`, did you mean `hourly_rate_usd`?
            $DIR/spec.yaml:11:21: unknown scorer `f1`: expected `equals`
        "#]],
    );
}

#[test]
fn local_models_must_be_known_or_exist() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers:
          - { id: a, type: local, model: smollm2-135m-instrukt }
          - { id: b, type: local, model: llama }
          - { id: c, type: local, model: weights/none.gguf }
        prompts: [{ id: p, template: "{{text}}" }]
        finetunes:
          - { id: ft, base_model: SmolLM2-135M-Instruct, prompt: p }
        "#,
        expect![[r#"
            $DIR/spec.yaml:4:34: unknown model `smollm2-135m-instrukt` (did you mean `smollm2-135m-instruct`?)
            $DIR/spec.yaml:5:34: unknown model `llama`: expected a known model (smollm2-135m-instruct, all-minilm-l6-v2), `hf:owner/repo[:file]`, or a path to a .gguf/.safetensors model
            $DIR/spec.yaml:6:34: model path $DIR/weights/none.gguf does not exist
            $DIR/spec.yaml:9:27: unknown model `SmolLM2-135M-Instruct` (did you mean `smollm2-135m-instruct`?)
        "#]],
    );
}

#[test]
fn save_steps_is_a_bounded_positive_integer() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        prompts: [{ id: zs, template: "{{text}}" }]
        finetunes:
          - { id: a, base_model: smollm2-135m-instruct, prompt: zs, save_steps: 0 }
          - { id: b, base_model: smollm2-135m-instruct, prompt: zs, save_steps: 1000001 }
          - { id: c, base_model: smollm2-135m-instruct, prompt: zs, save_steps: often }
          - { id: d, base_model: smollm2-135m-instruct, prompt: zs, save_steps: 1000000 }
        "#,
        expect![[r#"
            $DIR/spec.yaml:5:73: `save_steps` must be at least 1, found 0
            $DIR/spec.yaml:6:73: `save_steps` must be at most 1000000, found 1000001
            $DIR/spec.yaml:7:73: `save_steps` must be a positive whole number, found the string `often`
        "#]],
    );
}

/// A key pasted where the variable's name goes, and credentials in `base_url`, are refused
/// without the secret appearing in the message (which CI logs show).
#[test]
fn secrets_in_the_spec_are_refused_without_echoing_them() {
    let spec = r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers:
          - { id: a, type: openai, model: m, api_key_env: gsk_8fJ2kQ9xLm3Vb7Tn1Rc4Wz6Yd0 }
          - { id: b, type: openai, model: m, api_key_env: Ab3dEf5gHi7jKl9mNo1pQr3s }
          - { id: c, type: openai, model: m, base_url: "https://me:hunter2@api.example.com/v1" }
          - { id: d, type: openai, model: m, api_key_env: MY_PROVIDER_KEY_2 }
        prompts: [{ id: p, template: "{{text}}" }]
        "#;
    check(
        spec,
        expect![[r#"
            $DIR/spec.yaml:4:51: `api_key_env` takes the name of an environment variable (such as `OPENAI_API_KEY`), not the key itself
            $DIR/spec.yaml:5:51: `api_key_env` takes the name of an environment variable (such as `OPENAI_API_KEY`), not the key itself
            $DIR/spec.yaml:6:48: `base_url` holds credentials (`user:password@`): they would be stored with the run; put the key in the environment variable `api_key_env` names
        "#]],
    );
}

/// Numeric keys have upper bounds: a value no machine can honour is refused where it is
/// written instead of becoming a default (`timeout_s: 1e30` was 60 s) or an abort (`lora_r`).
#[test]
fn numeric_keys_have_documented_upper_bounds() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers:
          - { id: a, type: openai, model: m, timeout_s: 1e30, max_concurrency: 100000, max_retries: 1000 }
          - { id: b, type: local, model: smollm2-135m-instruct, batch_size: 5000 }
        prompts: [{ id: p, template: "{{text}}" }]
        finetunes:
          - { id: ft, base_model: smollm2-135m-instruct, prompt: p, lora_r: 1000000, num_epochs: 5000 }
        generation: { max_tokens: 10000000 }
        "#,
        expect![[r#"
            $DIR/spec.yaml:4:49: `timeout_s` must be more than 0 and at most 3600, found 1000000000000000000000000000000
            $DIR/spec.yaml:4:72: `max_concurrency` must be at most 4096, found 100000
            $DIR/spec.yaml:4:93: `max_retries` must be at most 100, found 1000
            $DIR/spec.yaml:5:69: `batch_size` must be at most 1024, found 5000
            $DIR/spec.yaml:8:69: `lora_r` must be at most 1024, found 1000000
            $DIR/spec.yaml:8:90: `num_epochs` must be at most 1000, found 5000
            $DIR/spec.yaml:9:27: `max_tokens` must be at most 131072, found 10000000
        "#]],
    );
}

#[test]
fn bad_choices() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers: [{ type: openai, model: gpt-4o-mini }]
        prompts:
          - { id: a, template: "{{text}}", choices: [yes] }
          - { id: b, template: "{{text}}", choices: [Yes, yes] }
          - { id: c, template: "{{text}}", choices: positive }
          - { id: d, template: "{{text}}", normalize_choices: true }
          - { id: e, template: "{{text}}", choices: [yes, " "] }
        "#,
        expect![[r#"
            $DIR/spec.yaml:5:45: `choices` needs at least two labels, found 1
            $DIR/spec.yaml:6:45: `choices` lists `yes` twice (labels are compared ignoring case)
            $DIR/spec.yaml:7:45: `choices` takes a list of labels (`[positive, negative]`) or `from_targets`, found `positive`
            $DIR/spec.yaml:8:55: `normalize_choices` needs `choices` beside it (a list of labels or `from_targets`)
            $DIR/spec.yaml:9:45: `choices` has an empty label
        "#]],
    );
}

#[test]
fn choices_from_targets_needs_a_train_split_and_at_most_50_labels() {
    let many: String = (0..60)
        .map(|i| format!("{{\"text\": \"t{i}\", \"label\": \"l{i}\"}}\n"))
        .collect();
    check_with(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 1, train: 55 } }
        providers: [{ type: openai, model: gpt-4o-mini }]
        prompts: [{ id: a, template: "{{text}}" }]
        generation: { choices: from_targets }
        "#,
        &[("data.jsonl", &many)],
        expect![[r#"
            $DIR/spec.yaml:5:24: `choices` has 55 labels; at most 50 are supported
        "#]],
    );
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: gpt-4o-mini }]
        prompts: [{ id: a, template: "{{text}}", choices: from_targets }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:4:51: `choices: from_targets` takes the labels from the train split, which is empty: list the labels, or set `dataset.split.train`
        "#]],
    );
}

#[test]
fn a_known_model_in_the_wrong_place() {
    check(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers: [{ id: m, type: local, model: all-minilm-l6-v2 }]
        prompts: [{ id: zs, template: "{{text}}" }]
        scorers: [{ type: similar, model: smollm2-135m-instruct }]
        "#,
        expect![[r#"
            $DIR/spec.yaml:3:42: `all-minilm-l6-v2` is a sentence-embedding model (for the `similar` scorer); here the spec needs a chat model (for `type: local` providers and `base_model`)
            $DIR/spec.yaml:5:35: `smollm2-135m-instruct` is a chat model (for `type: local` providers and `base_model`); here the spec needs a sentence-embedding model (for the `similar` scorer)
        "#]],
    );
}
