//! The spec's shape: YAML v1 (the README's "A tour of the YAML") read section by section into raw
//! structs that keep each value's position. Here every key is checked against its section, every
//! value against its type and range, and defaults are filled in from the `domain` types.
//!
//! What this module does not check is anything that needs two places at once (a fine-tune's
//! `prompt` naming a prompt, the decision metric naming a scorer, unique ids) or the dataset
//! (files, fields, templates): `validate` does that with these structs. Nothing here leaves the
//! crate.

mod batch;
mod choices;
mod finetune;
mod optimize;
mod provider;
mod review;
mod scorer;
mod sweep;

use std::collections::BTreeSet;

use domain::{ComputeSpec, CostAssumptions, Device, GenerationParams, LoraHyper, ScorerKind};

use crate::decode::{Ctx, Fields, Spanned, fields};
use crate::plan::ProviderSpec;
use crate::yaml::{Node, Pos};

pub(crate) use choices::{RawChoiceSet, RawChoices, check_labels};
pub(crate) use optimize::RawOptimize;
pub use provider::DEFAULT_OPENAI_BASE_URL;
pub(crate) use scorer::scorer_spec;
pub(crate) use sweep::{RawSweep, Size};
use {finetune::finetune, provider::provider, scorer::scorer};

const TOP: &[&str] = &[
    "name",
    "description",
    "dataset",
    "providers",
    "prompts",
    "finetunes",
    "generation",
    "scorers",
    "budget",
    "costs",
    "decision",
    "optimize",
    "review",
    "batch",
];
const DATASET: &[&str] = &["path", "train", "eval", "input", "target", "id", "split"];
const SPLIT: &[&str] = &["eval", "train", "seed"];
const PROMPT: &[&str] = &[
    "id",
    "system",
    "template",
    "few_shot",
    "few_shot_sizes",
    "label_noise",
    "choices",
    "normalize_choices",
];
const GENERATION: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "choices",
    "normalize_choices",
];
const BUDGET: &[&str] = &["max_cost_usd"];
const COSTS: &[&str] = &["traffic", "staff", "serving", "batch_api", "review"];
const TRAFFIC: &[&str] = &["daily_requests", "horizon_days"];
const STAFF: &[&str] = &[
    "hourly_rate_usd",
    "prompt_iteration_hours",
    "data_prep_hours",
    "mlops_hours_per_month",
    "labelling_minutes_per_example",
];
const SERVING: &[&str] = &[
    "finetune_hourly_usd",
    "mode",
    "batch_window_hours",
    "utilisation",
    "latency_slo_ms",
];
const DECISION: &[&str] = &["metric", "quality_target"];

/// Settings from outside the spec that fill its defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    pub openai_base_url: Option<String>,
}

pub(crate) struct RawSpec {
    pub root: Pos,
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    pub dataset: Option<RawDataset>,
    /// Position of the `providers` key, when written.
    pub providers_key: Option<Pos>,
    pub providers: Vec<RawProvider>,
    pub prompts: Vec<RawPrompt>,
    pub finetunes: Vec<RawFinetune>,
    pub generation: GenerationParams,
    /// `generation.choices`, for every prompt that declares none of its own.
    pub generation_choices: Option<RawChoices>,
    /// Position of the `scorers` key, when written.
    pub scorers_key: Option<Pos>,
    pub scorers: Vec<RawScorer>,
    pub budget_max_cost_usd: Option<f64>,
    pub costs: CostAssumptions,
    /// Names of the `CostAssumptions` fields the spec wrote (see [`crate::Plan::declared_costs`]).
    pub declared_costs: BTreeSet<String>,
    pub decision_metric: Option<Spanned<String>>,
    pub quality_target: f64,
    pub optimize: Vec<RawOptimize>,
    /// `review:`, when written (and readable).
    pub review: Option<Spanned<domain::ReviewSpec>>,
    /// `batch:`, or its defaults.
    pub batch: domain::BatchSpec,
}

pub(crate) struct RawDataset {
    pub pos: Pos,
    pub path: Option<Spanned<String>>,
    pub train: Option<Spanned<String>>,
    pub eval: Option<Spanned<String>>,
    pub input: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub split: Option<RawSplit>,
}

pub(crate) struct RawSplit {
    pub pos: Pos,
    pub eval: Option<Spanned<usize>>,
    pub train: Option<Spanned<usize>>,
    pub seed: Option<u64>,
}

/// A provider entry; `spec` is None when the entry is too broken to use, but its id still
/// counts for duplicate checks.
pub(crate) struct RawProvider {
    pub id: Option<Spanned<String>>,
    /// `model:` as written, for pointing at it when the model cannot be found.
    pub model: Option<Spanned<String>>,
    pub spec: Option<ProviderSpec>,
}

pub(crate) struct RawPrompt {
    pub id: Option<Spanned<String>>,
    pub system: Option<Spanned<String>>,
    pub template: Option<Spanned<String>>,
    pub few_shot: Spanned<usize>,
    pub choices: Option<RawChoices>,
    /// `few_shot_sizes` and `label_noise`.
    pub sweep: RawSweep,
}

pub(crate) struct RawFinetune {
    pub id: Option<Spanned<String>>,
    pub base_model: Option<Spanned<String>>,
    pub prompt: Option<Spanned<String>>,
    pub train_with_demos: bool,
    pub hyper: LoraHyper,
    pub compute: ComputeSpec,
    /// `train_sizes` and `label_noise`.
    pub sweep: RawSweep,
}

pub(crate) struct RawScorer {
    /// The scorer's id (or its default) and where to point at it.
    pub id: Option<Spanned<String>>,
    pub kind: Option<ScorerKind>,
    /// A `similar` scorer's embedding `model:` as written (or its default, pointing at
    /// `type`), which `validate` locates like a local provider's model.
    pub model: Option<Spanned<String>>,
}

/// Reads the whole spec; every problem goes to `cx`.
pub(crate) fn spec(cx: &mut Ctx<'_>, root: &Node, defaults: &Defaults) -> Option<RawSpec> {
    if root.is_null() {
        cx.error(
            root.pos,
            "the spec is empty: it needs at least `name`, `dataset` and arms to compare",
        );
        return None;
    }
    let f = fields(cx, root, "the spec", TOP, &[])?;
    let name = f.req_string(cx, "name");
    if let Some(n) = &name {
        check_name(cx, n);
    }
    let description = f.string(cx, "description").map(|s| s.value);
    let dataset = match f.required(cx, "dataset") {
        Some(n) => dataset(cx, n),
        None => None,
    };
    let providers = f
        .list(cx, "providers")
        .into_iter()
        .map(|n| provider(cx, n, defaults))
        .collect();
    let prompts = f
        .list(cx, "prompts")
        .into_iter()
        .map(|n| prompt(cx, n))
        .collect();
    let finetunes = f
        .list(cx, "finetunes")
        .into_iter()
        .map(|n| finetune(cx, n))
        .collect();
    let (generation, generation_choices) = f
        .get("generation")
        .and_then(|n| generation(cx, n))
        .unwrap_or_default();
    let optimize = f
        .list(cx, "optimize")
        .into_iter()
        .filter_map(|n| optimize::optimize(cx, n))
        .collect();
    let scorers = f
        .list(cx, "scorers")
        .into_iter()
        .map(|n| scorer(cx, n))
        .collect();
    let budget_max_cost_usd = f
        .get("budget")
        .and_then(|n| fields(cx, n, "`budget`", BUDGET, &[]))
        .and_then(|b| {
            b.number(cx, "max_cost_usd", |x| x >= 0.0, "zero or more")
                .map(|s| s.value)
        });
    let (costs, declared_costs) = f
        .get("costs")
        .and_then(|n| costs(cx, n))
        .unwrap_or_default();
    let (decision_metric, quality_target) = match f
        .get("decision")
        .and_then(|n| fields(cx, n, "`decision`", DECISION, &[]))
    {
        Some(d) => (
            d.string(cx, "metric"),
            d.number(
                cx,
                "quality_target",
                |x| (0.0..=1.0).contains(&x),
                "between 0 and 1",
            )
            .map_or(0.9, |s| s.value),
        ),
        None => (None, 0.9),
    };
    Some(RawSpec {
        root: root.pos,
        name,
        description,
        dataset,
        providers_key: f.key("providers").map(|k| k.pos),
        providers,
        prompts,
        finetunes,
        generation,
        generation_choices,
        scorers_key: f.key("scorers").map(|k| k.pos),
        scorers,
        budget_max_cost_usd,
        costs,
        declared_costs,
        decision_metric,
        quality_target,
        optimize,
        review: f.get("review").and_then(|n| {
            let pos = n.pos;
            review::review(cx, n).map(|value| Spanned { value, pos })
        }),
        batch: f
            .get("batch")
            .and_then(|n| batch::batch(cx, n))
            .unwrap_or_default(),
    })
}

/// The experiment name is its id in the database and in file names of reports.
fn check_name(cx: &mut Ctx<'_>, name: &Spanned<String>) {
    if !is_safe_id(&name.value, &[]) {
        let shown = name.value.escape_default();
        cx.error(name.pos, format!("invalid name `{shown}`: {SAFE_ID}"));
    }
}

/// Ids name arms (`prompt@provider`), are typed in `--arms a,b`, are printed on terminals and
/// name folders under `.orchestrator/` (fine-tunes), so they keep to a safe set: `@`, `,`,
/// spaces, `/`, `..`, control and bidi characters would make them ambiguous or dangerous.
fn id(cx: &mut Ctx<'_>, f: &Fields<'_>, required: bool) -> Option<Spanned<String>> {
    let id = if required {
        f.req_string(cx, "id")
    } else {
        f.string(cx, "id")
    }?;
    if !is_safe_id(&id.value, &[]) {
        // Shown escaped: the id may hold the control or bidi characters it is refused for.
        let shown = id.value.escape_default();
        cx.error(id.pos, format!("invalid id `{shown}`: {SAFE_ID}"));
    }
    Some(id)
}

/// What [`is_safe_id`] accepts, as an error message says it.
pub(crate) const SAFE_ID: &str =
    "use letters, digits, `-`, `_` and `.` (at most 100), starting with a letter or digit";

/// ASCII letters, digits, `-`, `_`, `.` and the `extra` characters, 1 to 100 of them, the
/// first a letter or digit (so never `.`, `..` or a hidden folder).
pub(crate) fn is_safe_id(id: &str, extra: &[char]) -> bool {
    id.len() <= 100
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c)
        })
}

fn dataset(cx: &mut Ctx<'_>, node: &Node) -> Option<RawDataset> {
    let f = fields(cx, node, "`dataset`", DATASET, &[])?;
    let split = f.get("split").and_then(|n| {
        let s = fields(cx, n, "`split`", SPLIT, &[])?;
        Some(RawSplit {
            pos: s.pos,
            eval: s.usize(cx, "eval", 1),
            train: s.usize(cx, "train", 0),
            seed: s.uint(cx, "seed", 0).map(|s| s.value),
        })
    });
    Some(RawDataset {
        pos: f.pos,
        path: f.string(cx, "path"),
        train: f.string(cx, "train"),
        eval: f.string(cx, "eval"),
        input: f.req_string(cx, "input"),
        target: f.req_string(cx, "target"),
        id: f.string(cx, "id"),
        split,
    })
}

fn device(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<Device> {
    let s = f.string(cx, "device")?;
    let d = Device::parse(&s.value);
    if d.is_none() {
        cx.error(
            s.pos,
            format!(
                "invalid device `{}`: expected `cpu`, `cuda`, `cuda:N` or `auto`",
                s.value
            ),
        );
    }
    d
}

fn positive(x: f64) -> bool {
    x > 0.0
}

fn non_negative(x: f64) -> bool {
    x >= 0.0
}

fn prompt(cx: &mut Ctx<'_>, node: &Node) -> RawPrompt {
    let Some(f) = fields(cx, node, "a prompt", PROMPT, &[]) else {
        return RawPrompt {
            id: None,
            system: None,
            template: None,
            few_shot: Spanned {
                value: 0,
                pos: node.pos,
            },
            choices: None,
            sweep: RawSweep::default(),
        };
    };
    RawPrompt {
        id: id(cx, &f, true),
        system: f.string(cx, "system"),
        template: f.req_string(cx, "template"),
        few_shot: f.usize(cx, "few_shot", 0).unwrap_or(Spanned {
            value: 0,
            pos: f.pos,
        }),
        choices: choices::choices(cx, &f),
        sweep: sweep::sweep(cx, &f, "few_shot_sizes", false),
    }
}

/// The sampling parameters, and the `choices` every prompt without its own gets.
fn generation(cx: &mut Ctx<'_>, node: &Node) -> Option<(GenerationParams, Option<RawChoices>)> {
    let f = fields(cx, node, "`generation`", GENERATION, &[])?;
    let d = GenerationParams::default();
    let params = GenerationParams {
        max_tokens: f
            .usize_in(cx, "max_tokens", 1, 131_072)
            .map_or(d.max_tokens, |s| s.value as u32),
        temperature: f
            .number(
                cx,
                "temperature",
                |x| (0.0..=2.0).contains(&x),
                "between 0 and 2",
            )
            .map_or(d.temperature, |s| s.value as f32),
        top_p: f
            .number(
                cx,
                "top_p",
                |x| x > 0.0 && x <= 1.0,
                "more than 0 and at most 1",
            )
            .map(|s| s.value as f32)
            .or(d.top_p),
        stop: f
            .strings(cx, "stop", true)
            .map(|l| l.value.into_iter().map(|s| s.value).collect())
            .unwrap_or(d.stop),
        seed: f.uint(cx, "seed", 0).map(|s| s.value).or(d.seed),
        // Resolved by `validate`, which knows the train split `from_targets` needs.
        choices: None,
    };
    Some((params, choices::choices(cx, &f)))
}

/// The cost assumptions, defaults filled in, and the names of the fields the spec wrote. A field
/// is declared when written, even with its default value: the report says where each figure came
/// from, and "you said 10,000 requests a day" is not "nobody said".
fn costs(cx: &mut Ctx<'_>, node: &Node) -> Option<(CostAssumptions, BTreeSet<String>)> {
    let f = fields(cx, node, "`costs`", COSTS, &[])?;
    let mut c = CostAssumptions::default();
    let mut declared = BTreeSet::new();
    let mut set = |name: &str, field: &mut f64, value: Option<Spanned<f64>>| {
        if let Some(x) = value {
            *field = x.value;
            declared.insert(name.to_owned());
        }
    };
    let ge0 = "zero or more";
    if let Some(t) = f
        .get("traffic")
        .and_then(|n| fields(cx, n, "`traffic`", TRAFFIC, &[]))
    {
        let x = t.number(cx, "daily_requests", non_negative, ge0);
        set("daily_requests", &mut c.daily_requests, x);
        let x = t.number(cx, "horizon_days", positive, "more than zero");
        set("horizon_days", &mut c.horizon_days, x);
    }
    if let Some(s) = f
        .get("staff")
        .and_then(|n| fields(cx, n, "`staff`", STAFF, &[]))
    {
        let x = s.number(cx, "hourly_rate_usd", non_negative, ge0);
        set("hourly_rate_usd", &mut c.hourly_rate_usd, x);
        let x = s.number(cx, "prompt_iteration_hours", non_negative, ge0);
        set("prompt_iteration_hours", &mut c.prompt_iteration_hours, x);
        let x = s.number(cx, "data_prep_hours", non_negative, ge0);
        set("data_prep_hours", &mut c.data_prep_hours, x);
        let x = s.number(cx, "mlops_hours_per_month", non_negative, ge0);
        set("mlops_hours_per_month", &mut c.mlops_hours_per_month, x);
        // Optional: unset means "use `data_prep_hours`", so it has no default to overwrite.
        let x = s.number(
            cx,
            "labelling_minutes_per_example",
            positive,
            "more than zero",
        );
        let mut minutes = f64::NAN;
        set("labelling_minutes_per_example", &mut minutes, x);
        c.labelling_minutes_per_example = Some(minutes).filter(|m| !m.is_nan());
    }
    if let Some(s) = f
        .get("serving")
        .and_then(|n| fields(cx, n, "`serving`", SERVING, &[]))
    {
        let x = s.number(cx, "finetune_hourly_usd", non_negative, ge0);
        set("finetune_hourly_usd", &mut c.finetune_hourly_usd, x);
        let x = s.number(cx, "batch_window_hours", positive, "more than zero");
        set("batch_window_hours", &mut c.serving.batch_window_hours, x);
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        let x = s.number(cx, "utilisation", unit, "more than 0 and at most 1");
        set("utilisation", &mut c.serving.utilisation, x);
        if let Some(x) = s.number(cx, "latency_slo_ms", positive, "more than zero") {
            c.serving.latency_slo_ms = Some(x.value);
            declared.insert("latency_slo_ms".to_owned());
        }
        if let Some(mode) = review::serving_mode(cx, &s) {
            c.serving.mode = mode;
            declared.insert("serving_mode".to_owned());
        }
    }
    if let Some((r, written)) = f.get("review").and_then(|n| review::review_costs(cx, n)) {
        c.review = r;
        declared.extend(written.into_iter().map(str::to_owned));
    }
    if let Some(b) = f.bool(cx, "batch_api") {
        c.batch_api = b.value;
        declared.insert("batch_api".to_owned());
    }
    Some((c, declared))
}
