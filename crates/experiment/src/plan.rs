//! The validated plan of an experiment: what `load` returns and the runner executes. Every value
//! in it has been checked (ids unique, references resolved, files read, templates closed over the
//! dataset's fields), so code downstream never re-validates.
//!
//! Nothing here parses YAML or reads files; `raw`, `validate` and `dataset` do that. Rendering a
//! prompt for an item lives here because it needs the plan's train split for few-shot demos.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use domain::{
    ArmInfo, ArmKind, ArmPricing, ComputeSpec, CostAssumptions, Decision, Device, GenerationParams,
    LoraHyper, Message, ModelSource, Pricing, RunSettings, ScorerSpec, SweepPoint, resolve_pricing,
};
use serde::{Deserialize, Serialize};

use crate::optimize::OptimizeSpec;
use crate::rng::SplitMix64;
use crate::template;

/// A validated experiment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Plan {
    /// The experiment id (`name:`), as stored in the database.
    pub name: String,
    pub description: Option<String>,
    /// The spec file as it was given to [`crate::load`].
    pub spec_path: PathBuf,
    /// SHA-256 (hex) of the spec file's bytes followed by the dataset fingerprint: a run can be
    /// resumed only by the same spec over the same data.
    pub spec_hash: String,
    pub dataset: Dataset,
    pub providers: Vec<ProviderSpec>,
    pub prompts: Vec<PromptSpec>,
    pub finetunes: Vec<FinetuneSpec>,
    pub generation: GenerationParams,
    /// At least one; `equals` when the spec lists none.
    pub scorers: Vec<ScorerSpec>,
    pub budget_max_cost_usd: Option<f64>,
    pub costs: CostAssumptions,
    /// Names of the [`CostAssumptions`] fields the spec's `costs:` section wrote (e.g.
    /// `daily_requests`, `batch_api`), even where the value written equals the default; the
    /// rest of `costs` are defaults. Plans stored before this field existed read back with an
    /// empty set.
    #[serde(default)]
    pub declared_costs: BTreeSet<String>,
    /// `decision.metric` names one of `scorers`.
    pub decision: Decision,
    /// The `optimize:` blocks: a searched prompt arm per block and provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optimize: Vec<OptimizeSpec>,
    /// `review:`: route low-confidence answers to people; `None` when the spec has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<domain::ReviewSpec>,
    /// `batch:`: how `run --batch` uses the Batch API (defaults when the spec has none).
    #[serde(default)]
    pub batch: domain::BatchSpec,
}

/// The eval and train rows, already split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Items every arm answers, in file order.
    pub eval: Vec<Row>,
    /// Rows for few-shot demonstrations and fine-tuning, in file order; never shares an id with
    /// `eval`.
    pub train: Vec<Row>,
    /// Rows an `optimize:` search scores its candidates on, in a seeded order (each rung of the
    /// search uses a prefix): rows the split left unused when there are enough, else rows held
    /// out of the train split; never an eval item, a training example or a demonstration.
    /// Empty without `optimize:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dev: Vec<Row>,
    /// SHA-256 (hex) over the ids and fields of both splits and the split parameters.
    pub fingerprint: String,
    /// The field that is each row's `input`.
    pub input_field: String,
    /// The field that is each row's `target` (the reference answer).
    pub target_field: String,
    /// `split.seed` (default 7): seeds the split and the few-shot draws.
    pub seed: u64,
    /// For `label_noise`: each train row's place in the seeded order rows are flipped in, and
    /// the label it is flipped to (see [`crate::sweep`]); keyed by row id. Empty when no prompt
    /// or fine-tune declares `label_noise`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_flips: BTreeMap<String, crate::sweep::LabelFlip>,
}

/// One dataset row. All values are strings (JSON numbers and booleans as written in JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The row's `id` field (or the field named by `dataset.id`) when it has one, else the line
    /// number in its file (prefixed `train:` for rows of a separate train file).
    pub id: String,
    pub fields: BTreeMap<String, String>,
    pub input: String,
    pub target: String,
}

/// Where prompt arms get their answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProviderSpec {
    #[serde(rename = "openai")]
    OpenAi(OpenAiProviderSpec),
    Local(LocalProviderSpec),
}

impl ProviderSpec {
    pub fn id(&self) -> &str {
        match self {
            ProviderSpec::OpenAi(p) => &p.id,
            ProviderSpec::Local(p) => &p.id,
        }
    }
    pub fn model(&self) -> &str {
        match self {
            ProviderSpec::OpenAi(p) => &p.model,
            ProviderSpec::Local(p) => &p.model,
        }
    }
}

/// An OpenAI-compatible chat-completions endpoint (`type: openai`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OpenAiProviderSpec {
    /// Defaults to `model`.
    pub id: String,
    pub model: String,
    /// Default `https://api.openai.com/v1`, or `$OPENAI_BASE_URL` when that is set.
    pub base_url: String,
    /// The environment variable holding the API key (default `OPENAI_API_KEY`). The key itself
    /// is never part of a plan.
    pub api_key_env: String,
    /// Default 8.
    pub max_concurrency: usize,
    pub requests_per_minute: Option<u32>,
    /// None: use the built-in price of the model, if known.
    pub pricing: Option<Pricing>,
    /// Per request (`timeout_s`). Default 60.
    pub timeout_secs: f64,
    /// Default 5.
    pub max_retries: u32,
    /// Price calls at batch-API rates. Default false.
    pub batch_api: bool,
    /// Send a JSON-schema enum for `choices`: unset = try, and fall back to free text when the
    /// endpoint refuses; `false` = never; `true` = always (a refusal fails the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_outputs: Option<bool>,
    /// Ask for token log-probabilities: unset = with `choices` only; `true` = on every call
    /// (free-text answers get a confidence too); `false` = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
}

/// A model run in-process by Candle (`type: local`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LocalProviderSpec {
    /// Defaults to `model`.
    pub id: String,
    /// A known model name (`smollm2-135m-instruct`), an `hf:` id or a path to a
    /// `.gguf`/`.safetensors` model, as the spec wrote it.
    pub model: String,
    /// Where `model` was found (a relative path joined to the spec's folder).
    pub weights: ModelSource,
    /// Default `cpu`.
    pub device: Device,
    /// Default 0.05 US dollars per hour.
    pub cost_per_hour: f64,
    /// Prompts generated together. Default 8.
    pub batch_size: usize,
}

/// A prompt: system message, user template and number of few-shot demonstrations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PromptSpec {
    pub id: String,
    /// May use `{{var}}` like the template.
    pub system: Option<String>,
    /// `{{field}}` for any dataset field, and `{{input}}` for the input field.
    pub template: String,
    /// Demonstrations drawn from the train split for each item. Default 0.
    pub few_shot: usize,
    /// Labels the answer is constrained to: the prompt's `choices`, else `generation.choices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<domain::Choices>,
    /// Fixed demonstrations (train row ids, in order) instead of `few_shot` random ones: what
    /// an `optimize:` search chose. None for prompts as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demos: Option<Vec<String>>,
    /// The share of demonstration labels flipped (`label_noise`); 0 for prompts as written.
    #[serde(default, skip_serializing_if = "crate::sweep::is_zero")]
    pub label_noise: f64,
    /// The declared prompt this one is a sweep point of (`few_shot_sizes`, `label_noise`): its
    /// own id for a declared prompt with sweeps; `None` for a prompt without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

impl PromptSpec {
    /// The prompt as a seed of something else (an `optimize:` search): the same text and
    /// demonstrations, belonging to no sweep family and with clean labels.
    pub fn outside_sweeps(&self) -> PromptSpec {
        PromptSpec {
            label_noise: 0.0,
            family: None,
            ..self.clone()
        }
    }
}

/// A LoRA fine-tune of a local model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FinetuneSpec {
    pub id: String,
    /// A known model name, `hf:` id or path, as for local providers, as the spec wrote it.
    pub base_model: String,
    /// Where `base_model` was found (a relative path joined to the spec's folder).
    pub base_weights: ModelSource,
    /// The prompt (an id in [`Plan::prompts`]) that formats each training example and eval item:
    /// see [`Plan::render_finetune`].
    pub prompt: String,
    /// Train (and answer) with the prompt's few-shot demonstrations (`train_with_demos: true`).
    /// Default false: the adapter learns what the demonstrations would show, so a fine-tune's
    /// examples and eval items are the prompt without them.
    pub train_with_demos: bool,
    pub hyper: LoraHyper,
    pub compute: ComputeSpec,
    /// Train rows it learns from: all of the train split for a declared fine-tune, a nested
    /// subset for a `train_sizes` point (see [`Plan::finetune_train`]).
    #[serde(default)]
    pub train_size: usize,
    /// The share of its train labels flipped (`label_noise`); 0 for clean data.
    #[serde(default, skip_serializing_if = "crate::sweep::is_zero")]
    pub label_noise: f64,
    /// The declared fine-tune this one is a sweep point of: its own id for a declared
    /// fine-tune with sweeps; `None` for one without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

/// One arm, resolved: a way of answering every eval item, carrying everything the runner and
/// the store need about it (its provider, prompt, fine-tune spec and pricing), so no consumer
/// looks an id up again.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Arm {
    /// A prompt on an OpenAI-compatible endpoint.
    Hosted {
        /// `prompt@provider`.
        id: String,
        provider: OpenAiProviderSpec,
        prompt: PromptSpec,
        /// The provider's price: the spec's, else the built-in table's
        /// ([`domain::resolve_pricing`]); `None` when neither knows the model.
        pricing: Option<Pricing>,
    },
    /// A prompt on a model run in-process.
    Local {
        /// `prompt@provider`.
        id: String,
        provider: LocalProviderSpec,
        prompt: PromptSpec,
    },
    /// A LoRA fine-tune, trained and answering with `prompt`.
    Finetune {
        spec: FinetuneSpec,
        prompt: PromptSpec,
    },
}

impl Arm {
    /// `prompt@provider` for prompt arms, the fine-tune id for fine-tunes.
    pub fn id(&self) -> &str {
        match self {
            Arm::Hosted { id, .. } | Arm::Local { id, .. } => id,
            Arm::Finetune { spec, .. } => &spec.id,
        }
    }

    pub fn kind(&self) -> ArmKind {
        match self {
            Arm::Hosted { .. } | Arm::Local { .. } => ArmKind::Prompt,
            Arm::Finetune { .. } => ArmKind::Finetune,
        }
    }

    /// The provider's id; None for fine-tunes.
    pub fn provider_id(&self) -> Option<&str> {
        match self {
            Arm::Hosted { provider, .. } => Some(&provider.id),
            Arm::Local { provider, .. } => Some(&provider.id),
            Arm::Finetune { .. } => None,
        }
    }

    /// The prompt that renders the arm's items.
    pub fn prompt(&self) -> &PromptSpec {
        match self {
            Arm::Hosted { prompt, .. }
            | Arm::Local { prompt, .. }
            | Arm::Finetune { prompt, .. } => prompt,
        }
    }

    /// The provider's model, or the fine-tune's base model.
    pub fn model(&self) -> &str {
        match self {
            Arm::Hosted { provider, .. } => &provider.model,
            Arm::Local { provider, .. } => &provider.model,
            Arm::Finetune { spec, .. } => &spec.base_model,
        }
    }

    /// How the arm is paid for: per token for hosted arms, per device hour otherwise.
    pub fn pricing(&self) -> ArmPricing {
        match self {
            Arm::Hosted {
                provider, pricing, ..
            } => ArmPricing::Hosted {
                pricing: *pricing,
                batch_api: provider.batch_api,
            },
            Arm::Local { provider, .. } => ArmPricing::Compute {
                cost_per_hour: provider.cost_per_hour,
            },
            Arm::Finetune { spec, .. } => ArmPricing::Compute {
                cost_per_hour: spec.compute.cost_per_hour,
            },
        }
    }

    /// The arm as the store records it.
    pub fn info(&self) -> ArmInfo {
        ArmInfo {
            arm: self.id().to_owned(),
            kind: self.kind(),
            provider: self.provider_id().map(str::to_owned),
            prompt: Some(self.prompt().id.clone()),
            model: self.model().to_owned(),
            pricing: Some(self.pricing()),
            sweep: self.sweep(),
            choices: self.prompt().choices.as_ref().map(|c| c.labels.clone()),
        }
    }

    /// Where the arm sits on its family's sweep: every fine-tune (its training rows), and
    /// prompt arms of a prompt with sweeps (its demonstrations).
    pub fn sweep(&self) -> Option<SweepPoint> {
        match self {
            Arm::Finetune { spec, .. } => Some(SweepPoint {
                family: spec.family.clone().unwrap_or_else(|| spec.id.clone()),
                examples: spec.train_size,
                label_noise: spec.label_noise,
            }),
            Arm::Hosted {
                provider, prompt, ..
            } => prompt_sweep(prompt, &provider.id),
            Arm::Local {
                provider, prompt, ..
            } => prompt_sweep(prompt, &provider.id),
        }
    }
}

/// A prompt arm's sweep point: the family is the declared prompt on the same provider.
fn prompt_sweep(prompt: &PromptSpec, provider: &str) -> Option<SweepPoint> {
    let family = prompt.family.as_ref()?;
    Some(SweepPoint {
        family: format!("{family}@{provider}"),
        examples: prompt.demos.as_ref().map_or(prompt.few_shot, Vec::len),
        label_noise: prompt.label_noise,
    })
}

/// `prompt` on `provider`, as arm `prompt@provider`.
pub(crate) fn prompt_arm(provider: &ProviderSpec, prompt: PromptSpec) -> Arm {
    let id = format!("{}@{}", prompt.id, provider.id());
    match provider {
        ProviderSpec::OpenAi(p) => Arm::Hosted {
            id,
            pricing: resolve_pricing(p.pricing, &p.model),
            provider: p.clone(),
            prompt,
        },
        ProviderSpec::Local(p) => Arm::Local {
            id,
            provider: p.clone(),
            prompt,
        },
    }
}

impl Plan {
    /// Every arm, resolved: each prompt on each provider (provider-major: all prompts of the
    /// first provider, then the next provider), then the optimised arms (block-major), then the
    /// fine-tunes in spec order. An optimised arm carries its first seed prompt under the
    /// block's id until the runner's search puts the winner in its place.
    pub fn arms(&self) -> Vec<Arm> {
        let mut arms = Vec::new();
        for provider in &self.providers {
            for prompt in &self.prompts {
                arms.push(prompt_arm(provider, prompt.clone()));
            }
        }
        for block in &self.optimize {
            let Some(seed) = block.from.first().and_then(|p| self.prompt(p)) else {
                continue;
            };
            for provider in self
                .providers
                .iter()
                .filter(|p| block.providers.iter().any(|id| id == p.id()))
            {
                let prompt = PromptSpec {
                    id: block.id.clone(),
                    ..seed.outside_sweeps()
                };
                arms.push(prompt_arm(provider, prompt));
            }
        }
        // `validate` resolved every fine-tune's prompt; one that is missing cannot occur.
        for ft in &self.finetunes {
            if let Some(prompt) = self.prompt(&ft.prompt) {
                arms.push(Arm::Finetune {
                    spec: ft.clone(),
                    prompt: prompt.clone(),
                });
            }
        }
        arms
    }

    pub fn prompt(&self, id: &str) -> Option<&PromptSpec> {
        self.prompts.iter().find(|p| p.id == id)
    }

    /// Messages for `item` with prompt `p`: system, then few-shot demos (user/assistant pairs
    /// drawn deterministically from the TRAIN split only, seeded by item id), then the rendered
    /// template.
    pub fn render(&self, p: &PromptSpec, item: &Row) -> Vec<Message> {
        let mut messages = Vec::with_capacity(2 + 2 * p.few_shot);
        if let Some(system) = &p.system {
            let s = template::render(system, item);
            if !s.is_empty() {
                messages.push(Message::system(s));
            }
        }
        for demo in self.demos(p, item) {
            messages.push(Message::user(template::render(&p.template, demo)));
            let target = self.noisy_target(demo, p.label_noise);
            messages.push(Message::assistant(target.to_owned()));
        }
        messages.push(Message::user(template::render(&p.template, item)));
        messages
    }

    /// Messages for `item` as fine-tune `ft` sees it, in training and on eval items alike: its
    /// prompt `p` without demonstrations (the weights learn what the demos would show), or with
    /// them when the spec says `train_with_demos: true`.
    pub fn render_finetune(&self, ft: &FinetuneSpec, p: &PromptSpec, item: &Row) -> Vec<Message> {
        if ft.train_with_demos || p.few_shot == 0 {
            return self.render(p, item);
        }
        let zero = PromptSpec {
            few_shot: 0,
            ..p.clone()
        };
        self.render(&zero, item)
    }

    /// The train rows `render` shows as demonstrations before `item`: `p.few_shot` distinct rows
    /// (fewer if the train split is smaller), never `item` itself, the same for the same seed
    /// and item id.
    /// A prompt with fixed [`PromptSpec::demos`] shows those rows, in order, for every item.
    pub fn demos(&self, p: &PromptSpec, item: &Row) -> Vec<&Row> {
        let train = &self.dataset.train;
        if let Some(ids) = &p.demos {
            return ids
                .iter()
                .filter_map(|id| train.iter().find(|r| &r.id == id))
                .collect();
        }
        if p.few_shot == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<usize> = (0..train.len())
            .filter(|&i| train[i].id != item.id)
            .collect();
        let k = p.few_shot.min(candidates.len());
        SplitMix64::from_label(self.dataset.seed, "few-shot", &item.id)
            .shuffle_prefix(&mut candidates, k);
        candidates[..k].iter().map(|&i| &train[i]).collect()
    }

    /// The cost assumptions to show as declared: [`Plan::declared_costs`], plus any whose value
    /// differs from its default. For a plan loaded by this version the two agree (a value can
    /// only differ if the spec wrote it); a plan stored before `declared_costs` existed reads
    /// back with an empty set, and this still marks what it visibly declared.
    pub fn declared_cost_assumptions(&self) -> BTreeSet<String> {
        let (c, d) = (&self.costs, CostAssumptions::default());
        let numbers = [
            ("daily_requests", c.daily_requests, d.daily_requests),
            ("horizon_days", c.horizon_days, d.horizon_days),
            ("hourly_rate_usd", c.hourly_rate_usd, d.hourly_rate_usd),
            (
                "prompt_iteration_hours",
                c.prompt_iteration_hours,
                d.prompt_iteration_hours,
            ),
            ("data_prep_hours", c.data_prep_hours, d.data_prep_hours),
            (
                "mlops_hours_per_month",
                c.mlops_hours_per_month,
                d.mlops_hours_per_month,
            ),
            (
                "finetune_hourly_usd",
                c.finetune_hourly_usd,
                d.finetune_hourly_usd,
            ),
        ];
        let mut declared = self.declared_costs.clone();
        for (name, value, default) in numbers {
            if value != default {
                declared.insert(name.to_owned());
            }
        }
        if c.batch_api != d.batch_api {
            declared.insert("batch_api".to_owned());
        }
        declared
    }

    /// What the report of a run of this plan assumes, as the run stores it.
    pub fn run_settings(&self) -> RunSettings {
        RunSettings {
            costs: self.costs.clone(),
            declared_costs: Some(self.declared_cost_assumptions()),
            decision: self.decision.clone(),
            review: self.review,
        }
    }

    /// The metric that decides: `decision.metric`.
    pub fn primary_metric(&self) -> &str {
        &self.decision.metric
    }
}
