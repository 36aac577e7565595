//! Reading typed values out of the spanned YAML tree while collecting every problem: unknown or
//! misspelt keys (with a "did you mean" from `strsim`), duplicate keys, wrong types, missing
//! required fields and out-of-range numbers, each at its `LINE:COL`.
//!
//! Why not `#[derive(Deserialize)]` with `deny_unknown_fields`: serde stops at the first error
//! and its YAML errors carry no position for semantic checks made afterwards. These helpers play
//! the same role (the raw layer of "parse, validate, then use") and report everything at once.
//! What a field *means* is decided in `raw` and `validate`, not here.

use std::path::Path;

use crate::diagnostic::Diagnostics;
use crate::yaml::{Node, Pos, Scalar, Value};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

/// The spec file being decoded and the diagnostics gathered so far.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub diags: &'a mut Diagnostics,
}

impl Ctx<'_> {
    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(self.file, pos.line, pos.col, message);
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase());
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// "`a`, `b` or `c`".
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// "`a`, `b` and `c`".
pub(crate) fn all_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => "none".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The keys of one YAML mapping, checked against the names it may hold.
pub(crate) struct Fields<'n> {
    /// Where the mapping starts; "missing field" errors point here.
    pub pos: Pos,
    /// (canonical name, key node, value node), in source order.
    entries: Vec<(&'static str, &'n Node, &'n Node)>,
}

/// Reads `node` as a mapping whose keys are among `allowed`; `aliases` maps other accepted names
/// to their canonical one. Reports a non-mapping, unknown keys and keys given twice, and returns
/// None only when the node is not a mapping at all.
pub(crate) fn fields<'n>(
    cx: &mut Ctx<'_>,
    node: &'n Node,
    what: &str,
    allowed: &[&'static str],
    aliases: &[(&'static str, &'static str)],
) -> Option<Fields<'n>> {
    let Value::Map(pairs) = &node.value else {
        cx.error(
            node.pos,
            format!("{what} must be a mapping, found {}", node.describe()),
        );
        return None;
    };
    let mut entries: Vec<(&'static str, &'n Node, &'n Node)> = Vec::new();
    for (k, v) in pairs {
        let name = match k.scalar() {
            Some(Scalar::Str(s)) => s.to_owned(),
            _ => {
                cx.error(k.pos, format!("keys must be names, found {}", k.describe()));
                continue;
            }
        };
        let canonical = allowed
            .iter()
            .copied()
            .find(|a| *a == name)
            .or_else(|| aliases.iter().find(|(a, _)| *a == name).map(|(_, c)| *c));
        let Some(canonical) = canonical else {
            let candidates = allowed
                .iter()
                .copied()
                .chain(aliases.iter().map(|(a, _)| *a));
            let message = match suggest(&name, candidates) {
                Some(s) => {
                    let s = aliases.iter().find(|(a, _)| *a == s).map_or(s, |(_, c)| *c);
                    format!("unknown field `{name}`, did you mean `{s}`?")
                }
                None => format!("unknown field `{name}`, expected {}", one_of(allowed)),
            };
            cx.error(k.pos, message);
            continue;
        };
        if let Some((_, first, _)) = entries.iter().find(|(c, _, _)| *c == canonical) {
            let message = match first.scalar() {
                Some(Scalar::Str(f)) if f != name => format!(
                    "`{canonical}` is set twice: as `{f}` at line {} and as `{name}` here",
                    first.pos.line
                ),
                _ => format!(
                    "duplicate field `{name}` (first set at line {})",
                    first.pos.line
                ),
            };
            cx.error(k.pos, message);
            continue;
        }
        entries.push((canonical, k, v));
    }
    Some(Fields {
        pos: node.pos,
        entries,
    })
}

impl<'n> Fields<'n> {
    /// The value of `key`; None when absent or null (`key:` with nothing after it).
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(c, _, _)| *c == key)
            .map(|(_, _, v)| *v)
            .filter(|v| !v.is_null())
    }

    /// The key node of `key` when it is written (even with a null value).
    pub(crate) fn key(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(c, _, _)| *c == key)
            .map(|(_, k, _)| *k)
    }

    /// Canonical names of the keys present, in source order.
    pub(crate) fn names(&self) -> impl Iterator<Item = (&'static str, &'n Node)> + '_ {
        self.entries.iter().map(|(c, k, _)| (*c, *k))
    }

    /// Reports a required field that is absent or empty; returns its node otherwise.
    pub(crate) fn required(&self, cx: &mut Ctx<'_>, key: &str) -> Option<&'n Node> {
        let node = self.get(key);
        if node.is_none() {
            match self.key(key) {
                Some(k) => cx.error(k.pos, format!("`{key}` needs a value")),
                None => cx.error(self.pos, format!("missing field `{key}`")),
            }
        }
        node
    }

    pub(crate) fn string(&self, cx: &mut Ctx<'_>, key: &str) -> Option<Spanned<String>> {
        self.get(key).and_then(|n| as_string(cx, n, key))
    }

    pub(crate) fn req_string(&self, cx: &mut Ctx<'_>, key: &str) -> Option<Spanned<String>> {
        self.required(cx, key).and_then(|n| as_string(cx, n, key))
    }

    /// A whole number in `min..`.
    pub(crate) fn uint(&self, cx: &mut Ctx<'_>, key: &str, min: u64) -> Option<Spanned<u64>> {
        let n = self.get(key)?;
        match n.scalar() {
            Some(Scalar::Int(i)) if i >= 0 && (i as u64) >= min => Some(Spanned {
                value: i as u64,
                pos: n.pos,
            }),
            Some(Scalar::Int(i)) => {
                cx.error(n.pos, format!("`{key}` must be at least {min}, found {i}"));
                None
            }
            _ => {
                let what = if min == 0 {
                    "a whole number"
                } else {
                    "a positive whole number"
                };
                cx.error(
                    n.pos,
                    format!("`{key}` must be {what}, found {}", n.describe()),
                );
                None
            }
        }
    }

    /// A whole number in `min..=max`: the documented bounds of a numeric key, so a value no
    /// machine can honour (a 10^30 s timeout, a rank of a million) is refused where it is written.
    pub(crate) fn usize_in(
        &self,
        cx: &mut Ctx<'_>,
        key: &str,
        min: u64,
        max: usize,
    ) -> Option<Spanned<usize>> {
        let s = self.usize(cx, key, min)?;
        if s.value > max {
            cx.error(
                s.pos,
                format!("`{key}` must be at most {max}, found {}", s.value),
            );
            return None;
        }
        Some(s)
    }

    pub(crate) fn usize(&self, cx: &mut Ctx<'_>, key: &str, min: u64) -> Option<Spanned<usize>> {
        let s = self.uint(cx, key, min)?;
        match usize::try_from(s.value) {
            Ok(value) => Some(Spanned { value, pos: s.pos }),
            Err(_) => {
                cx.error(s.pos, format!("`{key}` is too large"));
                None
            }
        }
    }

    pub(crate) fn u32(&self, cx: &mut Ctx<'_>, key: &str, min: u64) -> Option<Spanned<u32>> {
        let s = self.uint(cx, key, min)?;
        match u32::try_from(s.value) {
            Ok(value) => Some(Spanned { value, pos: s.pos }),
            Err(_) => {
                cx.error(s.pos, format!("`{key}` is too large"));
                None
            }
        }
    }

    /// A finite number (integers accepted) within `range`, described in errors as `range_text`.
    pub(crate) fn number(
        &self,
        cx: &mut Ctx<'_>,
        key: &str,
        ok: impl Fn(f64) -> bool,
        range_text: &str,
    ) -> Option<Spanned<f64>> {
        let n = self.get(key)?;
        let x = match n.scalar() {
            Some(Scalar::Int(i)) => i as f64,
            Some(Scalar::Float(x)) => x,
            _ => {
                cx.error(
                    n.pos,
                    format!("`{key}` must be a number, found {}", n.describe()),
                );
                return None;
            }
        };
        if !x.is_finite() || !ok(x) {
            cx.error(n.pos, format!("`{key}` must be {range_text}, found {x}"));
            return None;
        }
        Some(Spanned {
            value: x,
            pos: n.pos,
        })
    }

    pub(crate) fn bool(&self, cx: &mut Ctx<'_>, key: &str) -> Option<Spanned<bool>> {
        let n = self.get(key)?;
        match n.scalar() {
            Some(Scalar::Bool(b)) => Some(Spanned {
                value: b,
                pos: n.pos,
            }),
            _ => {
                cx.error(
                    n.pos,
                    format!("`{key}` must be `true` or `false`, found {}", n.describe()),
                );
                None
            }
        }
    }

    /// A list of strings; with `single_ok`, one string also counts as a list of one.
    pub(crate) fn strings(
        &self,
        cx: &mut Ctx<'_>,
        key: &str,
        single_ok: bool,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
        let n = self.get(key)?;
        match &n.value {
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(s) = as_string(cx, item, key) {
                        out.push(s);
                    }
                }
                Some(Spanned {
                    value: out,
                    pos: n.pos,
                })
            }
            Value::Scalar { .. } if single_ok => as_string(cx, n, key).map(|s| Spanned {
                value: vec![s],
                pos: n.pos,
            }),
            _ => {
                cx.error(
                    n.pos,
                    format!("`{key}` must be a list of strings, found {}", n.describe()),
                );
                None
            }
        }
    }

    /// The items of a list-valued field (an empty list when absent).
    pub(crate) fn list(&self, cx: &mut Ctx<'_>, key: &str) -> Vec<&'n Node> {
        let Some(n) = self.get(key) else {
            return Vec::new();
        };
        match &n.value {
            Value::Seq(items) => items.iter().collect(),
            _ => {
                cx.error(
                    n.pos,
                    format!("`{key}` must be a list, found {}", n.describe()),
                );
                Vec::new()
            }
        }
    }
}

/// Any scalar but null reads as a string (so `id: 7` is the id "7"); lists and mappings do not.
pub(crate) fn as_string(cx: &mut Ctx<'_>, n: &Node, key: &str) -> Option<Spanned<String>> {
    let value = match (&n.value, n.scalar()) {
        (Value::Scalar { text, .. }, Some(s)) if s != Scalar::Null => text.clone(),
        _ => {
            cx.error(
                n.pos,
                format!("`{key}` must be a string, found {}", n.describe()),
            );
            return None;
        }
    };
    Some(Spanned { value, pos: n.pos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["lora_r", "lora_alpha", "lora_dropout", "learning_rate"];
        assert_eq!(suggest("lora_rr", keys), Some("lora_r"));
        assert_eq!(suggest("lora_alhpa", keys), Some("lora_alpha"));
        assert_eq!(suggest("learnin_rate", keys), Some("learning_rate"));
        assert_eq!(suggest("banana", keys), None);
    }

    #[test]
    fn one_of_reads_as_prose() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
