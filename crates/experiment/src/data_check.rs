//! `orchestrator data check`'s checks that need no model: each split's size and label
//! distribution, rows whose input repeats (exactly, or once normalised: case, punctuation and
//! spacing ignored), inputs repeated with different labels, eval items whose input also appears
//! in train or dev (leakage), and empty or overlong inputs. Label issues, which need a model's
//! probabilities, are `scoring::label_issues` over what the runner computes.
//!
//! Pure functions over a loaded [`Dataset`]; no IO.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{Dataset, Row};

/// A row, by split and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowRef {
    pub split: &'static str,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitSummary {
    pub split: &'static str,
    pub rows: usize,
    /// Label → rows.
    pub labels: BTreeMap<String, usize>,
}

/// Rows whose inputs are the same (exactly, or once normalised).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicates {
    /// The normalised input they share.
    pub text: String,
    /// All inputs identical as written.
    pub exact: bool,
    pub rows: Vec<RowRef>,
    /// Their distinct labels: more than one means they contradict each other.
    pub labels: Vec<String>,
}

/// An eval item whose input (normalised) appears in train or dev.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leak {
    pub eval_id: String,
    pub seen_in: Vec<RowRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlong {
    pub row: RowRef,
    /// Estimated tokens (characters / 4).
    pub tokens: usize,
}

/// Everything the model-free checks found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataChecks {
    pub splits: Vec<SplitSummary>,
    pub duplicates: Vec<Duplicates>,
    pub leaks: Vec<Leak>,
    pub empty: Vec<RowRef>,
    pub overlong: Vec<Overlong>,
    pub max_input_tokens: usize,
}

/// Lower case, letters and digits kept, everything else one space, trimmed: the key under
/// which two inputs count as the same.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

fn splits(d: &Dataset) -> [(&'static str, &[Row]); 3] {
    [("eval", &d.eval), ("train", &d.train), ("dev", &d.dev)]
}

/// Runs every model-free check; an input over `max_input_tokens` (estimated) is overlong.
pub fn check(d: &Dataset, max_input_tokens: usize) -> DataChecks {
    let mut summaries = Vec::new();
    let mut by_key: BTreeMap<String, Vec<(RowRef, &Row)>> = BTreeMap::new();
    let (mut empty, mut overlong) = (Vec::new(), Vec::new());
    for (split, rows) in splits(d) {
        if rows.is_empty() && split == "dev" {
            continue;
        }
        let mut labels = BTreeMap::new();
        for row in rows {
            *labels.entry(row.target.clone()).or_insert(0) += 1;
            let at = RowRef {
                split,
                id: row.id.clone(),
            };
            let key = normalise(&row.input);
            if key.is_empty() {
                empty.push(at.clone());
            }
            let tokens = row.input.chars().count().div_ceil(4);
            if tokens > max_input_tokens {
                overlong.push(Overlong {
                    row: at.clone(),
                    tokens,
                });
            }
            if !key.is_empty() {
                by_key.entry(key).or_default().push((at, row));
            }
        }
        summaries.push(SplitSummary {
            split,
            rows: rows.len(),
            labels,
        });
    }
    let duplicates = by_key
        .iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(key, rows)| duplicates(key, rows))
        .collect();
    DataChecks {
        splits: summaries,
        duplicates,
        leaks: leaks(&by_key, &d.eval),
        empty,
        overlong,
        max_input_tokens,
    }
}

fn duplicates(key: &str, rows: &[(RowRef, &Row)]) -> Duplicates {
    let first = rows
        .first()
        .map(|(_, r)| r.input.as_str())
        .unwrap_or_default();
    let mut labels: Vec<String> = rows.iter().map(|(_, r)| r.target.clone()).collect();
    labels.sort();
    labels.dedup();
    Duplicates {
        text: key.to_owned(),
        exact: rows.iter().all(|(_, r)| r.input == first),
        rows: rows.iter().map(|(at, _)| at.clone()).collect(),
        labels,
    }
}

/// Eval items sharing a normalised input with a train or dev row.
fn leaks(by_key: &BTreeMap<String, Vec<(RowRef, &Row)>>, eval: &[Row]) -> Vec<Leak> {
    let mut out = Vec::new();
    for row in eval {
        let key = normalise(&row.input);
        let seen_in: Vec<RowRef> = by_key
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(at, _)| at.split != "eval")
            .map(|(at, _)| at.clone())
            .collect();
        if !key.is_empty() && !seen_in.is_empty() {
            out.push(Leak {
                eval_id: row.id.clone(),
                seen_in,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, input: &str, target: &str) -> Row {
        Row {
            id: id.into(),
            fields: BTreeMap::new(),
            input: input.into(),
            target: target.into(),
        }
    }

    #[test]
    fn duplicates_leaks_empty_and_overlong_rows_are_found() {
        let d = Dataset {
            eval: vec![
                row("e1", "Great film!", "pos"),
                row("e2", "  ", "neg"),
                row("e3", "fine", "pos"),
            ],
            train: vec![
                row("t1", "great   FILM", "neg"),
                row("t2", "dull", "neg"),
                row("t3", "dull", "neg"),
                row("t4", &"word ".repeat(50), "pos"),
            ],
            dev: Vec::new(),
            fingerprint: String::new(),
            input_field: "text".into(),
            target_field: "label".into(),
            seed: 0,
            label_flips: Default::default(),
        };
        let c = check(&d, 40);
        assert_eq!(c.splits.len(), 2, "an empty dev split is not listed");
        assert_eq!(
            c.splits[1].labels,
            BTreeMap::from([("neg".into(), 3), ("pos".into(), 1)])
        );
        let dups: Vec<(&str, bool, usize, usize)> = c
            .duplicates
            .iter()
            .map(|g| (g.text.as_str(), g.exact, g.rows.len(), g.labels.len()))
            .collect();
        assert_eq!(dups, [("dull", true, 2, 1), ("great film", false, 2, 2)]);
        assert_eq!(c.leaks.len(), 1);
        assert_eq!(
            (
                c.leaks[0].eval_id.as_str(),
                c.leaks[0].seen_in[0].id.as_str()
            ),
            ("e1", "t1")
        );
        assert_eq!(
            c.empty,
            [RowRef {
                split: "eval",
                id: "e2".into()
            }]
        );
        assert_eq!(c.overlong.len(), 1);
        assert_eq!(
            (c.overlong[0].row.id.as_str(), c.overlong[0].tokens),
            ("t4", 63)
        );
        assert_eq!(normalise("Ça  va? OUI."), "ça va oui");
    }
}
