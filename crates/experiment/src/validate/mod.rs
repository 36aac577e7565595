//! From raw spec to plan: the checks that need more than one place at once. Ids are unique,
//! references resolve (a fine-tune's prompt, the decision metric), the dataset files exist and
//! parse, the split fits, every template placeholder is a dataset field and none shows the
//! target, and few-shot prompts and fine-tunes have train rows to draw on.
//!
//! Like `raw`, this reports every problem it can find rather than the first; unlike `raw`, it
//! reads files (the datasets the spec names, and the headers of its local models).

mod choices;
mod data;
mod optimize;
mod review;
mod sweep;
mod weights;

use std::collections::BTreeSet;
use std::path::Path;

use domain::{CostAssumptions, Decision, GenerationParams, ScorerKind, ScorerSpec};

use crate::decode::{Ctx, Spanned, all_of, one_of, suggest};
use crate::diagnostic::LineIndex;
use crate::plan::{Dataset, FinetuneSpec, LocalProviderSpec, PromptSpec, ProviderSpec};
use crate::raw::{RawDataset, RawSpec, scorer_spec};
use crate::template;
use crate::yaml::Pos;

/// The spec's text, for pointing inside scalars (a placeholder within a template).
pub(crate) struct Source<'a> {
    pub text: &'a str,
    pub lines: LineIndex,
}

impl Source<'_> {
    /// Where the `nth` (from 0) occurrence of `needle` at or after `from` is written.
    fn find(&self, from: Pos, needle: &str, nth: usize) -> Option<Pos> {
        let start = self
            .text
            .char_indices()
            .nth(from.index)
            .map_or(self.text.len(), |(b, _)| b);
        let rest = &self.text[start..];
        let byte = rest.match_indices(needle).nth(nth)?.0 + start;
        let index = self.text[..byte].chars().count();
        let (line, col) = self.lines.line_col(index);
        Some(Pos { line, col, index })
    }
}

/// Everything the plan is made of, once validation found no problem.
pub(crate) struct Validated {
    pub name: String,
    pub description: Option<String>,
    pub dataset: Dataset,
    pub providers: Vec<ProviderSpec>,
    pub prompts: Vec<PromptSpec>,
    pub finetunes: Vec<FinetuneSpec>,
    pub generation: GenerationParams,
    pub scorers: Vec<ScorerSpec>,
    pub budget_max_cost_usd: Option<f64>,
    pub costs: CostAssumptions,
    pub declared_costs: BTreeSet<String>,
    pub decision: Decision,
    pub optimize: Vec<crate::optimize::OptimizeSpec>,
    pub review: Option<domain::ReviewSpec>,
    pub batch: domain::BatchSpec,
}

pub(crate) fn validate(
    cx: &mut Ctx<'_>,
    raw: &RawSpec,
    spec_dir: &Path,
    src: &Source<'_>,
) -> Option<Validated> {
    let no_hint = "";
    unique(
        cx,
        "provider",
        no_hint,
        raw.providers.iter().map(|p| p.id.as_ref()),
    );
    let hint = if raw.optimize.is_empty() {
        ""
    } else {
        " (prompts and `optimize` entries share ids: both name arms `id@provider`)"
    };
    unique(cx, "prompt", hint, optimize::ids(raw));
    unique(
        cx,
        "fine-tune",
        no_hint,
        raw.finetunes.iter().map(|f| f.id.as_ref()),
    );
    let hint = ": give each scorer of one type its own `id`";
    unique(
        cx,
        "scorer",
        hint,
        raw.scorers.iter().map(|s| s.id.as_ref()),
    );

    if raw.providers_key.is_none() && raw.finetunes.is_empty() {
        cx.error(
            raw.root,
            "the experiment has no arms: add `providers` and `prompts`, or `finetunes`",
        );
    }
    if let Some(pos) = raw.providers_key
        && raw.providers.is_empty()
    {
        cx.error(pos, "`providers` must list at least one provider");
    }
    if let Some(pos) = raw.providers_key
        && raw.prompts.is_empty()
    {
        cx.error(pos, "providers need prompts to run: add `prompts`");
    }

    let prompt_ids: Vec<&str> = raw
        .prompts
        .iter()
        .filter_map(|p| p.id.as_ref().map(|i| i.value.as_str()))
        .collect();
    for ft in &raw.finetunes {
        if let Some(p) = &ft.prompt
            && !prompt_ids.contains(&p.value.as_str())
        {
            cx.error(p.pos, unknown("prompt", &p.value, &prompt_ids));
        }
    }

    let scorers = scorers(cx, raw, spec_dir);
    let decision = decision(cx, raw, &scorers);

    // Fields the templates use: every row must have them, like the input and target.
    let field_of = |f: fn(&RawDataset) -> &Option<Spanned<String>>| {
        raw.dataset
            .as_ref()
            .and_then(|d| f(d).as_ref())
            .map_or("", |t| t.value.as_str())
    };
    let target_field = field_of(|d| &d.target);
    let input_field = field_of(|d| &d.input);
    let mut used: Vec<(String, String)> = Vec::new();
    for p in &raw.prompts {
        let (Some(id), Some(t)) = (&p.id, &p.template) else {
            continue;
        };
        for text in [p.system.as_ref(), Some(t)].into_iter().flatten() {
            for hole in template::placeholders(&text.value).unwrap_or_default() {
                let name = hole.name;
                let special = ["input", "target", input_field, target_field].contains(&name);
                if !special && !used.iter().any(|(n, _)| n == name) {
                    used.push((name.to_owned(), format!("used by prompt `{}`", id.value)));
                }
            }
        }
    }

    let data = raw
        .dataset
        .as_ref()
        .map(|d| data::dataset(cx, d, spec_dir, &used));
    if let Some(fields) = data.as_ref().and_then(|d| d.fields.as_ref()) {
        for p in &raw.prompts {
            for text in [&p.system, &p.template].into_iter().flatten() {
                check_template(cx, src, text, fields, target_field);
            }
        }
    }
    let mut dataset = data.and_then(|d| d.dataset);
    if let Some(ds) = dataset.as_mut() {
        optimize::carve_dev(cx, raw, ds);
    }
    if let Some(ds) = &dataset {
        for p in &raw.prompts {
            let k = p.few_shot.value;
            if k > 0 && ds.train.is_empty() {
                cx.error(
                    p.few_shot.pos,
                    format!(
                        "`few_shot: {k}` draws demonstrations from the train split, which is \
                         empty: set `dataset.split.train` (or a `dataset.train` file)"
                    ),
                );
            } else if k > ds.train.len() {
                cx.error(
                    p.few_shot.pos,
                    format!(
                        "`few_shot: {k}` asks for more demonstrations than the train split has \
                         rows ({})",
                        ds.train.len()
                    ),
                );
            }
        }
        for ft in &raw.finetunes {
            if ds.train.is_empty()
                && let Some(id) = &ft.id
            {
                cx.error(
                    id.pos,
                    format!(
                        "fine-tune `{}` needs training rows, but the train split is empty: set \
                         `dataset.split.train` (or a `dataset.train` file)",
                        id.value
                    ),
                );
            }
        }
    }

    // Every model is looked for, so one run of `validate` reports each missing one.
    let provider_weights: Vec<_> = raw
        .providers
        .iter()
        .map(|p| match (&p.spec, &p.model) {
            (Some(ProviderSpec::Local(_)), Some(m)) => {
                weights::source(cx, m, spec_dir, models::ModelKind::Chat)
            }
            _ => None,
        })
        .collect();
    let base_weights: Vec<_> = raw
        .finetunes
        .iter()
        .map(|f| {
            weights::source(
                cx,
                f.base_model.as_ref()?,
                spec_dir,
                models::ModelKind::Chat,
            )
        })
        .collect();

    // Assemble only what is complete; any gap has been reported above.
    let name = raw.name.as_ref()?.value.clone();
    let providers = raw
        .providers
        .iter()
        .zip(provider_weights)
        .map(|(p, found)| match p.spec.clone()? {
            ProviderSpec::Local(local) => Some(ProviderSpec::Local(LocalProviderSpec {
                weights: found?,
                ..local
            })),
            hosted => Some(hosted),
        })
        .collect::<Option<Vec<_>>>()?;
    let train = dataset.as_ref().map(|d| d.train.as_slice());
    let default_choices = raw
        .generation_choices
        .as_ref()
        .map(|c| choices::resolve(cx, c, train));
    let prompt_choices: Vec<_> = raw
        .prompts
        .iter()
        .map(|p| match &p.choices {
            Some(c) => choices::resolve(cx, c, train),
            None => default_choices.clone().flatten(),
        })
        .collect();
    let mut generation = raw.generation.clone();
    generation.choices = default_choices.flatten();
    let prompts = raw
        .prompts
        .iter()
        .zip(prompt_choices)
        .map(|(p, choices)| {
            Some(PromptSpec {
                id: p.id.as_ref()?.value.clone(),
                system: p.system.as_ref().map(|s| s.value.clone()),
                template: p.template.as_ref()?.value.clone(),
                few_shot: p.few_shot.value,
                choices,
                demos: None,
                label_noise: 0.0,
                family: None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let finetunes = raw
        .finetunes
        .iter()
        .zip(base_weights)
        .map(|(f, base_weights)| {
            Some(FinetuneSpec {
                id: f.id.as_ref()?.value.clone(),
                base_model: f.base_model.as_ref()?.value.clone(),
                base_weights: base_weights?,
                prompt: f.prompt.as_ref()?.value.clone(),
                train_with_demos: f.train_with_demos,
                hyper: f.hyper.clone(),
                compute: f.compute.clone(),
                train_size: 0,
                label_noise: 0.0,
                family: None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let optimize = optimize::blocks(cx, raw, &prompts, &providers, dataset.as_ref()?)?;
    let mut dataset = dataset?;
    sweep::flips(&raw.prompts, &raw.finetunes, &mut dataset);
    let prompts = sweep::prompts(cx, &raw.prompts, prompts, &dataset);
    let finetunes = sweep::finetunes(cx, &raw.finetunes, finetunes, &dataset);
    if let Some(r) = &raw.review {
        review::check(cx, r, dataset.eval.len());
    }
    Some(Validated {
        name,
        description: raw.description.clone(),
        dataset,
        providers,
        prompts,
        finetunes,
        generation,
        scorers: scorers?,
        budget_max_cost_usd: raw.budget_max_cost_usd,
        costs: raw.costs.clone(),
        declared_costs: raw.declared_costs.clone(),
        decision: decision?,
        optimize,
        review: raw.review.as_ref().map(|r| r.value),
        batch: raw.batch,
    })
}

/// "unknown prompt `x`, did you mean `y`?" or "unknown prompt `x`: prompts are `a` or `b`".
fn unknown(what: &str, name: &str, known: &[&str]) -> String {
    match suggest(name, known.iter().copied()) {
        Some(s) => format!("unknown {what} `{name}`, did you mean `{s}`?"),
        None if known.is_empty() => format!("unknown {what} `{name}`: there are no {what}s"),
        None => format!("unknown {what} `{name}`: expected {}", one_of(known)),
    }
}

fn unique<'a>(
    cx: &mut Ctx<'_>,
    what: &str,
    hint: &str,
    ids: impl Iterator<Item = Option<&'a Spanned<String>>>,
) {
    let mut seen: Vec<&Spanned<String>> = Vec::new();
    for id in ids.flatten() {
        match seen.iter().find(|s| s.value == id.value) {
            Some(first) => cx.error(
                id.pos,
                format!(
                    "duplicate {what} id `{}` (first at line {}){hint}",
                    id.value, first.pos.line
                ),
            ),
            None => seen.push(id),
        }
    }
}

/// The scorers, or `equals` alone when the spec has no `scorers` key, each `similar` scorer's
/// embedding model located like a local provider's. None if any is broken.
fn scorers(cx: &mut Ctx<'_>, raw: &RawSpec, spec_dir: &Path) -> Option<Vec<ScorerSpec>> {
    match raw.scorers_key {
        None => Some(vec![ScorerSpec {
            id: "equals".into(),
            kind: ScorerKind::Equals,
        }]),
        Some(pos) if raw.scorers.is_empty() => {
            cx.error(pos, "`scorers` must list at least one scorer");
            None
        }
        Some(_) => {
            // Every scorer is looked at, so one run of `validate` reports each missing model.
            let specs: Vec<Option<ScorerSpec>> = raw
                .scorers
                .iter()
                .map(|s| {
                    let mut spec = scorer_spec(s)?;
                    if let (ScorerKind::Similar { model, .. }, Some(written)) =
                        (&mut spec.kind, &s.model)
                    {
                        *model =
                            weights::source(cx, written, spec_dir, models::ModelKind::Embedding)?;
                    }
                    Some(spec)
                })
                .collect();
            raw_ids_taken(cx, raw, &specs);
            specs.into_iter().collect()
        }
    }
}

/// A `similar` scorer stores its raw cosine as `ID.raw`: no other scorer may have that id.
fn raw_ids_taken(cx: &mut Ctx<'_>, raw: &RawSpec, specs: &[Option<ScorerSpec>]) {
    let raw_ids: Vec<String> = specs.iter().flatten().filter_map(|s| s.raw_id()).collect();
    for id in raw.scorers.iter().filter_map(|s| s.id.as_ref()) {
        if raw_ids.contains(&id.value) {
            cx.error(
                id.pos,
                format!(
                    "scorer id `{}` is taken by the raw cosine of the `similar` scorer `{}`",
                    id.value,
                    id.value.trim_end_matches(".raw")
                ),
            );
        }
    }
}

fn decision(
    cx: &mut Ctx<'_>,
    raw: &RawSpec,
    scorers: &Option<Vec<ScorerSpec>>,
) -> Option<Decision> {
    // Scorer ids as written, even of scorers too broken to use, so one mistake is one message.
    let mut ids: Vec<&str> = raw
        .scorers
        .iter()
        .filter_map(|s| s.id.as_ref().map(|i| i.value.as_str()))
        .collect();
    if raw.scorers_key.is_none() {
        ids.push("equals");
    }
    let metric = match &raw.decision_metric {
        Some(m) if ids.contains(&m.value.as_str()) => m.value.clone(),
        Some(m) => {
            cx.error(m.pos, unknown("scorer", &m.value, &ids));
            return None;
        }
        None => scorers.as_ref()?.first()?.id.clone(),
    };
    Some(Decision {
        metric,
        quality_target: raw.quality_target,
    })
}

/// Every placeholder of a template names a field of the data (or `input`), and none shows the
/// target to the model. (Rows that lack a field a template uses are reported by `dataset`.)
fn check_template(
    cx: &mut Ctx<'_>,
    src: &Source<'_>,
    text: &Spanned<String>,
    fields: &BTreeSet<String>,
    target_field: &str,
) {
    let holes = match template::placeholders(&text.value) {
        Ok(h) => h,
        Err(errors) => {
            for e in errors {
                let nth = text
                    .value
                    .chars()
                    .take(e.char_offset)
                    .collect::<String>()
                    .matches("{{")
                    .count();
                let pos = src.find(text.pos, "{{", nth).unwrap_or(text.pos);
                cx.error(pos, e.message);
            }
            return;
        }
    };
    let known: Vec<&str> = fields.iter().map(String::as_str).collect();
    for (i, hole) in holes.iter().enumerate() {
        let nth = holes[..i].iter().filter(|h| h.raw == hole.raw).count();
        let pos = src.find(text.pos, hole.raw, nth).unwrap_or(text.pos);
        let name = hole.name;
        let leaks = name == target_field || (name == "target" && !fields.contains("target"));
        if leaks {
            cx.error(
                pos,
                format!(
                    "`{}` shows the target (`{target_field}`) in the prompt, giving the answer \
                     away; demonstrations come from `few_shot`",
                    hole.raw
                ),
            );
        } else if !fields.contains(name) && name != "input" {
            let message = match suggest(name, known.iter().copied()) {
                Some(s) => format!("`{}` is not a dataset field, did you mean `{s}`?", hole.raw),
                None => format!(
                    "`{}` is not a dataset field; the fields are {} (and `input`)",
                    hole.raw,
                    all_of(&known)
                ),
            };
            cx.error(pos, message);
        }
    }
}
