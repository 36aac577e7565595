//! `scorers:` entries: the scorer types `domain::ScorerKind` knows, the keys each type takes,
//! default ids, and a syntax check of regex patterns. Duplicate ids and the decision metric are
//! checked in `validate`.

use domain::{ScorerKind, ScorerSpec};

use super::{RawScorer, id};
use crate::decode::{Ctx, Spanned, fields, one_of, suggest};
use crate::yaml::Node;

const SCORER: &[&str] = &[
    "type",
    "id",
    "value",
    "pattern",
    "field",
    "threshold",
    "model",
];
const SCORER_TYPES: &[&str] = &[
    "equals",
    "contains",
    "regex",
    "is-json",
    "json-field",
    "f1",
    "rouge-l",
    "similar",
];
/// Scorer types the spec format reserves that this version cannot run yet.
const SCORER_TYPES_LATER: &[&str] = &["llm-rubric"];
/// The embedding model of a `similar` scorer without `model:`.
pub(crate) const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

pub(super) fn scorer(cx: &mut Ctx<'_>, node: &Node) -> RawScorer {
    let Some(f) = fields(cx, node, "a scorer", SCORER, &[]) else {
        return RawScorer {
            id: None,
            kind: None,
            model: None,
        };
    };
    let explicit_id = id(cx, &f, false);
    let ty = f.req_string(cx, "type");
    let value = f.string(cx, "value");
    let pattern = f.string(cx, "pattern");
    let field = f.string(cx, "field");
    let threshold = f.number(cx, "threshold", |x| (-1.0..=1.0).contains(&x), "in [-1, 1]");
    let model = f.string(cx, "model");
    let Some(ty) = ty else {
        return RawScorer {
            id: explicit_id,
            kind: None,
            model: None,
        };
    };
    let uses: &[&str] = match ty.value.as_str() {
        "contains" => &["value"],
        "regex" => &["pattern"],
        "json-field" => &["field", "value"],
        "similar" => &["value", "threshold", "model"],
        _ => &[],
    };
    let given = [
        ("value", value.as_ref().map(|v| v.pos)),
        ("pattern", pattern.as_ref().map(|v| v.pos)),
        ("field", field.as_ref().map(|v| v.pos)),
        ("threshold", threshold.as_ref().map(|v| v.pos)),
        ("model", model.as_ref().map(|v| v.pos)),
    ];
    for (key, pos) in given {
        if let Some(pos) = pos
            && SCORER_TYPES.contains(&ty.value.as_str())
            && !uses.contains(&key)
        {
            cx.error(
                pos,
                format!("`{key}` does not apply to `{}` scorers", ty.value),
            );
        }
    }
    let model = (ty.value == "similar").then(|| {
        model.unwrap_or_else(|| Spanned {
            value: DEFAULT_EMBEDDING_MODEL.to_string(),
            pos: ty.pos,
        })
    });
    let kind = match ty.value.as_str() {
        "equals" => Some(ScorerKind::Equals),
        "contains" => Some(ScorerKind::Contains {
            value: value.map(|v| v.value),
        }),
        "regex" => {
            let pattern = f.required(cx, "pattern").and(pattern);
            pattern.and_then(|p| {
                // The scorer substitutes the target for `{{target}}`; any literal checks syntax.
                let probe = p
                    .value
                    .replace("{{target}}", "target")
                    .replace("{{ target }}", "target");
                match regex::Regex::new(&probe) {
                    Ok(_) => Some(ScorerKind::Regex { pattern: p.value }),
                    Err(e) => {
                        let text = e.to_string();
                        let last = text.lines().last().unwrap_or(&text);
                        let why = last.strip_prefix("error: ").unwrap_or(last);
                        cx.error(p.pos, format!("invalid `pattern`: {why}"));
                        None
                    }
                }
            })
        }
        "is-json" => Some(ScorerKind::IsJson),
        "json-field" => f
            .required(cx, "field")
            .and(field)
            .map(|fl| ScorerKind::JsonField {
                field: fl.value,
                value: value.map(|v| v.value),
            }),
        "f1" => Some(ScorerKind::F1),
        "rouge-l" => Some(ScorerKind::RougeL),
        // `validate` puts the located model in place of the name as written.
        "similar" => model.as_ref().map(|m| ScorerKind::Similar {
            value: value.map(|v| v.value),
            threshold: threshold.map(|t| t.value),
            model: domain::ModelSource::Named(m.value.clone()),
        }),
        other if SCORER_TYPES_LATER.contains(&other) => {
            cx.error(
                ty.pos,
                format!(
                    "scorer type `{other}` is not supported yet: use {}",
                    one_of(SCORER_TYPES)
                ),
            );
            None
        }
        other => {
            let hint = match suggest(other, SCORER_TYPES.iter().copied()) {
                Some(s) => format!(", did you mean `{s}`?"),
                None => format!(": expected {}", one_of(SCORER_TYPES)),
            };
            cx.error(ty.pos, format!("unknown scorer type `{other}`{hint}"));
            None
        }
    };
    let id = explicit_id.or_else(|| {
        let value = match &kind {
            Some(ScorerKind::JsonField { field, .. }) => format!("json-field:{field}"),
            _ => ty.value.clone(),
        };
        Some(Spanned { value, pos: ty.pos })
    });
    RawScorer { id, kind, model }
}

/// The `ScorerSpec` a raw scorer stands for, when it is complete.
pub(crate) fn scorer_spec(s: &RawScorer) -> Option<ScorerSpec> {
    Some(ScorerSpec {
        id: s.id.as_ref()?.value.clone(),
        kind: s.kind.clone()?,
    })
}
