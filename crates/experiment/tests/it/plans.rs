//! What a valid spec becomes: defaults, aliases, arms, few-shot rendering, hashes.

use expect_test::expect;
use experiment::{LoadOptions, Plan, ProviderSpec};

use crate::{Fixture, MOVIES};

const FULL: &str = r#"
    name: movies
    description: Prompt or fine-tune?
    dataset:
      path: data.jsonl
      input: text
      target: label
      split: { eval: 2, train: 4, seed: 3 }
    providers:
      - id: mini
        type: openai
        model: gpt-4o-mini
      - id: small
        type: local
        model: smollm2-135m-instruct
    prompts:
      - id: zero-shot
        system: You label movie reviews.
        template: |
          Review: {{text}}
          Answer positive or negative.
      - id: few-shot
        template: "Review: {{ input }}"
        few_shot: 2
    finetunes:
      - id: lora
        base_model: smollm2-135m-instruct
        prompt: zero-shot
        lora_rank: 4
        num_train_epochs: 3
        lora_target_modules: [q_proj, k_proj, v_proj]
        save_steps: 25
        compute: { device: "cuda:1", cost_per_hour: 1.5 }
    generation: { max_tokens: 4, stop: "\n" }
    scorers:
      - type: contains
      - type: json-field
        field: answer.label
    "#;

fn full() -> Plan {
    Fixture::new(FULL, &[("data.jsonl", MOVIES)])
        .load()
        .unwrap()
}

#[test]
fn defaults_fill_what_the_spec_leaves_out() {
    let plan = full();
    let ProviderSpec::OpenAi(mini) = &plan.providers[0] else {
        panic!("not openai")
    };
    expect![[r#"
        OpenAiProviderSpec {
            id: "mini",
            model: "gpt-4o-mini",
            base_url: "https://api.openai.com/v1",
            api_key_env: "OPENAI_API_KEY",
            max_concurrency: 8,
            requests_per_minute: None,
            pricing: None,
            timeout_secs: 60.0,
            max_retries: 5,
            batch_api: false,
            structured_outputs: None,
            logprobs: None,
        }
    "#]]
    .assert_debug_eq(mini);
    let ProviderSpec::Local(small) = &plan.providers[1] else {
        panic!("not local")
    };
    expect![[r#"
        LocalProviderSpec {
            id: "small",
            model: "smollm2-135m-instruct",
            weights: Named(
                "smollm2-135m-instruct",
            ),
            device: Cpu,
            cost_per_hour: 0.05,
            batch_size: 8,
        }
    "#]]
    .assert_debug_eq(small);
    let ft = &plan.finetunes[0];
    assert_eq!(ft.hyper.lora_r, 4, "lora_rank is lora_r");
    assert_eq!(ft.hyper.num_epochs, 3, "num_train_epochs is num_epochs");
    assert_eq!(ft.hyper.lora_alpha, 16.0);
    assert_eq!(ft.hyper.save_steps, Some(25));
    assert_eq!(ft.compute.device, domain::Device::Cuda(1));
    assert_eq!(ft.compute.cost_per_hour, 1.5);
    assert_eq!(plan.generation.max_tokens, 4);
    assert_eq!(plan.generation.stop, ["\n"]);
    assert_eq!(plan.generation.temperature, 0.0);
    let ids: Vec<&str> = plan.scorers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["contains", "json-field:answer.label"]);
    assert_eq!(
        plan.primary_metric(),
        "contains",
        "the first scorer decides by default"
    );
    assert_eq!(plan.decision.quality_target, 0.9);
    assert_eq!(plan.costs, domain::CostAssumptions::default());
    assert!(plan.declared_costs.is_empty());
    assert_eq!(plan.budget_max_cost_usd, None);
    assert_eq!(plan.description.as_deref(), Some("Prompt or fine-tune?"));
}

#[test]
fn a_spec_without_scorers_scores_equals() {
    let plan = Fixture::new(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        "#,
        &[("data.jsonl", MOVIES)],
    )
    .load()
    .unwrap();
    assert_eq!(plan.scorers.len(), 1);
    assert_eq!(plan.scorers[0].kind, domain::ScorerKind::Equals);
    assert_eq!(plan.primary_metric(), "equals");
    assert_eq!(
        plan.dataset.eval.len(),
        6,
        "no split: every row is evaluated"
    );
    assert!(plan.dataset.train.is_empty());
}

#[test]
fn base_url_comes_from_the_spec_then_the_environment_then_openai() {
    let spec = r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers:
          - { id: a, type: openai, model: m }
          - { id: b, type: openai, model: m, base_url: "http://127.0.0.1:9/v1/" }
        prompts: [{ id: zs, template: "{{text}}" }]
        "#;
    let f = Fixture::new(spec, &[("data.jsonl", MOVIES)]);
    let urls = |plan: Plan| -> Vec<String> {
        plan.providers
            .iter()
            .map(|p| match p {
                ProviderSpec::OpenAi(o) => o.base_url.clone(),
                ProviderSpec::Local(_) => String::new(),
            })
            .collect()
    };
    let env = LoadOptions {
        openai_base_url: Some("http://localhost:8080/v1".into()),
    };
    assert_eq!(
        urls(f.load().unwrap()),
        ["https://api.openai.com/v1", "http://127.0.0.1:9/v1"]
    );
    assert_eq!(
        urls(experiment::load_with(&f.spec_path(), &env).unwrap()),
        ["http://localhost:8080/v1", "http://127.0.0.1:9/v1"]
    );
}

#[test]
fn arms_are_provider_major_then_finetunes() {
    let arms: Vec<String> = full()
        .arms()
        .iter()
        .map(|a| {
            format!(
                "{} {} provider={:?} prompt={:?} model={} pricing={:?}",
                a.id(),
                a.kind(),
                a.provider_id(),
                Some(&a.prompt().id),
                a.model(),
                a.pricing()
            )
        })
        .collect();
    expect![[r#"
        zero-shot@mini prompt provider=Some("mini") prompt=Some("zero-shot") model=gpt-4o-mini pricing=Hosted { pricing: Some(Pricing { input_per_mtok: 0.15, output_per_mtok: 0.6 }), batch_api: false }
        few-shot@mini prompt provider=Some("mini") prompt=Some("few-shot") model=gpt-4o-mini pricing=Hosted { pricing: Some(Pricing { input_per_mtok: 0.15, output_per_mtok: 0.6 }), batch_api: false }
        zero-shot@small prompt provider=Some("small") prompt=Some("zero-shot") model=smollm2-135m-instruct pricing=Compute { cost_per_hour: 0.05 }
        few-shot@small prompt provider=Some("small") prompt=Some("few-shot") model=smollm2-135m-instruct pricing=Compute { cost_per_hour: 0.05 }
        lora finetune provider=None prompt=Some("zero-shot") model=smollm2-135m-instruct pricing=Compute { cost_per_hour: 1.5 }"#]]
    .assert_eq(&arms.join("\n"));
}

#[test]
fn render_puts_system_then_demos_from_train_then_the_item() {
    let plan = full();
    let item = &plan.dataset.eval[0];
    let show = |p: &str| -> String {
        plan.render(plan.prompt(p).unwrap(), item)
            .iter()
            .map(|m| format!("[{}] {}\n", m.role.as_str(), m.content))
            .collect()
    };
    expect![[r#"
        [system] You label movie reviews.
        [user] Review: A triumph of a film.
        Answer positive or negative.
    "#]]
    .assert_eq(&show("zero-shot"));
    expect![[r#"
        [user] Review: I loved every minute.
        [assistant] positive
        [user] Review: Warm, funny and wise.
        [assistant] positive
        [user] Review: A triumph of a film.
    "#]]
    .assert_eq(&show("few-shot"));
}

#[test]
fn demos_are_deterministic_distinct_and_from_train_only() {
    let plan = full();
    let again = full();
    let p = plan.prompt("few-shot").unwrap();
    let train: Vec<&str> = plan.dataset.train.iter().map(|r| r.id.as_str()).collect();
    for item in &plan.dataset.eval {
        let demos: Vec<&str> = plan.demos(p, item).iter().map(|r| r.id.as_str()).collect();
        assert_eq!(demos.len(), 2);
        assert_ne!(demos[0], demos[1]);
        assert!(
            demos.iter().all(|d| train.contains(d)),
            "{demos:?} not in {train:?}"
        );
        assert_eq!(plan.render(p, item), again.render(p, item));
    }
    // A train row rendered (as a fine-tune formats its examples) never shows itself.
    for row in &plan.dataset.train {
        assert!(plan.demos(p, row).iter().all(|d| d.id != row.id));
    }
}

/// A fine-tune trains and answers on its prompt without the demonstrations (the adapter learns
/// what they show), unless the spec says `train_with_demos: true`; eval items render alike.
#[test]
fn finetunes_render_without_demos_unless_told() {
    let spec = FULL.replace(
        "        prompt: zero-shot\n        lora_rank: 4",
        "        prompt: few-shot\n        lora_rank: 4",
    );
    let spec = spec.replace(
        "    generation:",
        "      - { id: lora-demos, base_model: smollm2-135m-instruct, prompt: few-shot,\n          train_with_demos: true }\n    generation:",
    );
    let plan = Fixture::new(&spec, &[("data.jsonl", MOVIES)])
        .load()
        .unwrap();
    let few_shot = plan.prompt("few-shot").unwrap();
    let (plain, with_demos) = (&plan.finetunes[0], &plan.finetunes[1]);
    assert!(!plain.train_with_demos && with_demos.train_with_demos);
    for row in plan.dataset.train.iter().chain(&plan.dataset.eval) {
        let messages = plan.render_finetune(plain, few_shot, row);
        assert_eq!(messages.len(), 1, "only the item itself: {messages:?}");
        assert_eq!(messages[0].content, format!("Review: {}", row.input));
        assert_eq!(
            plan.render_finetune(with_demos, few_shot, row),
            plan.render(few_shot, row),
            "with demos, exactly what the prompt arm sees"
        );
        assert_eq!(
            plan.render(few_shot, row).len(),
            5,
            "two demos and the item"
        );
    }
}

/// The `costs:` fields a spec writes are declared, whatever their value; the rest are not.
#[test]
fn declared_costs_are_the_fields_the_spec_writes() {
    let plan = Fixture::new(
        r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label }
        providers: [{ type: openai, model: m }]
        prompts: [{ id: zs, template: "{{text}}" }]
        costs:
          traffic: { daily_requests: 10000 }
          staff: { hourly_rate_usd: 120, data_prep_hours: 40 }
          batch_api: false
        "#,
        &[("data.jsonl", MOVIES)],
    )
    .load()
    .unwrap();
    let defaults = domain::CostAssumptions::default();
    assert_eq!(plan.costs.daily_requests, defaults.daily_requests);
    assert_eq!(plan.costs.data_prep_hours, defaults.data_prep_hours);
    assert_eq!(plan.costs.hourly_rate_usd, 120.0);
    let declared: Vec<&str> = plan.declared_costs.iter().map(String::as_str).collect();
    assert_eq!(
        declared,
        [
            "batch_api",
            "daily_requests",
            "data_prep_hours",
            "hourly_rate_usd"
        ]
    );
    assert_eq!(plan.declared_cost_assumptions(), plan.declared_costs);

    // A plan stored before `declared_costs` existed: the field is absent from its JSON.
    let mut json: serde_json::Value = serde_json::to_value(&plan).unwrap();
    json.as_object_mut().unwrap().remove("declared_costs");
    let old: Plan = serde_json::from_value(json).unwrap();
    assert!(old.declared_costs.is_empty());
    let visible: Vec<String> = old.declared_cost_assumptions().into_iter().collect();
    assert_eq!(
        visible,
        ["hourly_rate_usd"],
        "only what differs from its default"
    );
}

#[test]
fn plans_round_trip_through_json() {
    let plan = full();
    let json = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    assert!(json.contains(r#""type":"openai""#), "{json}");
}

#[test]
fn spec_hash_covers_the_spec_text_and_the_data() {
    let a = full();
    let b = Fixture::new(&format!("{FULL}# a comment\n"), &[("data.jsonl", MOVIES)])
        .load()
        .unwrap();
    assert_eq!(a.dataset.fingerprint, b.dataset.fingerprint);
    assert_ne!(a.spec_hash, b.spec_hash);
    assert_eq!(a.spec_hash.len(), 64);
}

#[test]
fn choices_come_from_the_prompt_else_generation_and_from_targets_reads_train() {
    let spec = r#"
        name: t
        dataset: { path: data.jsonl, input: text, target: label, split: { eval: 2, train: 4 } }
        providers: [{ type: openai, model: gpt-4o-mini }]
        prompts:
          - id: own
            template: "{{text}}"
            choices: [good, bad, meh]
            normalize_choices: true
          - id: inherits
            template: "{{text}}"
        generation: { choices: from_targets }
        "#;
    let plan = Fixture::new(spec, &[("data.jsonl", MOVIES)])
        .load()
        .unwrap();
    let own = plan.prompts[0].choices.as_ref().unwrap();
    assert_eq!(own.labels, ["good", "bad", "meh"]);
    assert!(own.normalize);
    let inherited = plan.prompts[1].choices.as_ref().unwrap();
    assert_eq!(inherited.labels, ["negative", "positive"]);
    assert!(!inherited.normalize);
    assert_eq!(plan.generation.choices.as_ref(), Some(inherited));
}

#[test]
fn without_choices_prompts_answer_free_text() {
    assert!(full().prompts.iter().all(|p| p.choices.is_none()));
    assert!(full().generation.choices.is_none());
}
