//! The spec's `dataset:` made real: which files (`path` to split, or `eval`/`train` files), read
//! relative to the spec's folder; fields that must exist; rows checked; the split applied; the
//! fingerprint taken. Problems that belong to the spec (a missing file, a field no row has, a
//! split larger than the data) point at the spec, problems of a row at the data file's line.
//!
//! File formats, row rules, the shuffle and the hash themselves live in `crate::dataset`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::dataset::{self, FileProblems, Format, RawRow, RowRules};
use crate::decode::{Ctx, Spanned, all_of, suggest};
use crate::plan::{Dataset, Row};
use crate::raw::RawDataset;

/// `path` joined to the spec's folder and `..` folded lexically, for messages:
/// `experiments/../datasets/a.jsonl` shows as `datasets/a.jsonl`.
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

pub(super) struct DataOutcome {
    /// Fields that occur in the data files: what a template may name. None when unknown.
    pub fields: Option<BTreeSet<String>>,
    /// The split dataset, when everything about it is fine.
    pub dataset: Option<Dataset>,
}

/// One dataset file as read, with its paths and where the spec names it.
struct DataFile {
    shown: PathBuf,
    rows: Vec<RawRow>,
    /// Some rows could not be read (and have been reported).
    bad: bool,
}

fn read_file(cx: &mut Ctx<'_>, spec_dir: &Path, p: &Spanned<String>) -> Option<DataFile> {
    let joined = spec_dir.join(&p.value);
    let shown = tidy(&joined);
    let Some(format) = Format::of(&joined) else {
        cx.error(
            p.pos,
            format!(
                "unsupported dataset file `{}`: use `.jsonl`, `.csv` or `.tsv`",
                shown.display()
            ),
        );
        return None;
    };
    let (read, bad_rows) = {
        let mut problems = FileProblems::new(&shown, cx.diags);
        let read = dataset::read(&joined, format, &mut problems);
        (read, problems.any())
    };
    match read {
        Ok(rows) if rows.is_empty() => {
            if !bad_rows {
                let message = format!("dataset file `{}` has no rows", shown.display());
                cx.error(p.pos, message);
            }
            None
        }
        Ok(rows) => Some(DataFile {
            shown,
            rows,
            bad: bad_rows,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            cx.error(
                p.pos,
                format!("dataset file `{}` not found", shown.display()),
            );
            None
        }
        Err(e) => {
            cx.error(
                p.pos,
                format!("cannot read dataset file `{}`: {e}", shown.display()),
            );
            None
        }
    }
}

/// Checks that `field` (the dataset's `role`) occurs in the files; one message, at the spec,
/// rather than one per row.
fn check_field(cx: &mut Ctx<'_>, files: &[&DataFile], field: &Spanned<String>, role: &str) -> bool {
    for f in files {
        let names = dataset::field_names(&f.rows);
        if !names.contains(field.value.as_str()) {
            let known: Vec<&str> = names.into_iter().collect();
            let message = match suggest(&field.value, known.iter().copied()) {
                Some(s) => format!(
                    "`{role}: {}` is not a field of `{}`, did you mean `{s}`?",
                    field.value,
                    f.shown.display()
                ),
                None => format!(
                    "`{role}: {}` is not a field of `{}`; its fields are {}",
                    field.value,
                    f.shown.display(),
                    all_of(&known)
                ),
            };
            cx.error(field.pos, message);
            return false;
        }
    }
    true
}

pub(super) fn dataset(
    cx: &mut Ctx<'_>,
    d: &RawDataset,
    spec_dir: &Path,
    used: &[(String, String)],
) -> DataOutcome {
    let none = DataOutcome {
        fields: None,
        dataset: None,
    };
    let seed = d.split.as_ref().and_then(|s| s.seed).unwrap_or(7);
    let split_sizes = d
        .split
        .as_ref()
        .filter(|s| s.eval.is_some() || s.train.is_some());

    // Which files: `path` to split, or `eval` (and `train`) already split.
    let files: Vec<(&Spanned<String>, &str)> = match (&d.path, &d.eval, &d.train) {
        (Some(p), None, None) => vec![(p, "")],
        (Some(p), _, _) => {
            cx.error(
                p.pos,
                "give either `path` (split by `split`) or `eval` and `train` files, not both",
            );
            return none;
        }
        (None, Some(e), t) => {
            if let Some(s) = split_sizes {
                cx.error(
                    s.pos,
                    "`split` divides `path`; with separate `eval` and `train` files keep only \
                     `split.seed`",
                );
            }
            let mut v = vec![(e, "")];
            if let Some(t) = t {
                v.push((t, "train:"));
            }
            v
        }
        (None, None, _) => {
            cx.error(d.pos, "missing field `path` (or `eval` and `train` files)");
            return none;
        }
    };
    let read: Vec<Option<DataFile>> = files
        .iter()
        .map(|(p, _)| read_file(cx, spec_dir, p))
        .collect();
    let (Some(input), Some(target)) = (&d.input, &d.target) else {
        return none;
    };
    if read.iter().any(Option::is_none) {
        return none;
    }
    let read: Vec<DataFile> = read.into_iter().flatten().collect();
    let refs: Vec<&DataFile> = read.iter().collect();

    let mut ok = check_field(cx, &refs, input, "input");
    ok &= check_field(cx, &refs, target, "target");
    if let Some(id) = &d.id {
        ok &= check_field(cx, &refs, id, "id");
    }
    let all: BTreeSet<String> = read
        .iter()
        .flat_map(|f| dataset::field_names(&f.rows))
        .map(str::to_owned)
        .collect();
    // A template name that is no field at all is one message at the template; one that some
    // rows lack is a message at each such row.
    let also: Vec<(String, String)> = used
        .iter()
        .filter(|(name, _)| all.contains(name))
        .cloned()
        .collect();
    let common = Some(all);
    if !ok {
        return DataOutcome {
            fields: common,
            dataset: None,
        };
    }

    let mut splits: Vec<Vec<(usize, Row)>> = Vec::new();
    let mut rows_ok = true;
    for (file, (_, prefix)) in read.into_iter().zip(&files) {
        let file_bad = file.bad;
        let rules = RowRules {
            input: &input.value,
            target: &target.value,
            id_field: d.id.as_ref().map(|i| i.value.as_str()),
            line_id_prefix: prefix,
            also: &also,
        };
        let mut problems = FileProblems::new(&file.shown, cx.diags);
        let rows = dataset::to_rows(file.rows, &rules, &mut problems);
        if splits.len() == 1 {
            // A separate train file: no item may also be an eval item.
            let eval_lines: HashMap<&str, usize> = splits[0]
                .iter()
                .map(|(line, r)| (r.id.as_str(), *line))
                .collect();
            for (line, r) in &rows {
                if let Some(eval_line) = eval_lines.get(r.id.as_str()) {
                    problems.push(
                        *line,
                        1,
                        format!(
                            "id `{}` is also in the eval file (line {eval_line}): train and eval \
                             must not share items",
                            r.id
                        ),
                    );
                }
            }
        }
        rows_ok &= !problems.any() && !file_bad;
        drop(problems);
        splits.push(rows);
    }
    if !rows_ok {
        return DataOutcome {
            fields: common,
            dataset: None,
        };
    }

    let mut splits = splits
        .into_iter()
        .map(|rows| rows.into_iter().map(|(_, r)| r).collect::<Vec<Row>>());
    let first = splits.next().unwrap_or_default();
    let mut spare = Vec::new();
    let (eval, train, description) = if d.path.is_some() {
        let n = first.len();
        let (e, t) = match split_sizes.map(|s| (s.eval.as_ref(), s.train.as_ref())) {
            None | Some((None, None)) => (n, 0),
            Some((Some(e), Some(t))) => (e.value, t.value),
            Some((Some(e), None)) => (e.value, n.saturating_sub(e.value)),
            Some((None, Some(t))) => (n.saturating_sub(t.value), t.value),
        };
        let pos = split_sizes.map_or(d.pos, |s| s.pos);
        if e + t > n || e == 0 {
            cx.error(
                pos,
                format!("`split` asks for {e} eval + {t} train rows, but the dataset has {n} rows"),
            );
            return DataOutcome {
                fields: common,
                dataset: None,
            };
        }
        let (eval, train, rest) = dataset::split_with_rest(first, e, t, seed);
        spare = rest;
        (eval, train, format!("split eval={e} train={t} seed={seed}"))
    } else {
        let train = splits.next().unwrap_or_default();
        (first, train, format!("files seed={seed}"))
    };
    let fingerprint =
        dataset::fingerprint(&eval, &train, &input.value, &target.value, &description);
    DataOutcome {
        fields: common,
        dataset: Some(Dataset {
            eval,
            train,
            // The rows the split left out, until `optimize::carve_dev` decides the dev split.
            dev: spare,
            fingerprint,
            input_field: input.value.clone(),
            target_field: target.value.clone(),
            seed,
            label_flips: Default::default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_folds_parent_dirs() {
        assert_eq!(
            tidy(Path::new("experiments/../datasets/a.jsonl")),
            Path::new("datasets/a.jsonl")
        );
        assert_eq!(tidy(Path::new("../a.csv")), Path::new("../a.csv"));
        assert_eq!(tidy(Path::new("./x/./y")), Path::new("x/y"));
        assert_eq!(tidy(Path::new("/tmp/e/../d.tsv")), Path::new("/tmp/d.tsv"));
    }
}
