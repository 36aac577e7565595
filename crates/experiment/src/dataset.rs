//! Dataset files (JSONL, CSV, TSV) into rows; the deterministic eval/train split; the fingerprint
//! that ties a run to the exact data it saw.
//!
//! Every malformed row is reported with the data file's own line number and the rest are still
//! read, so one `validate` lists every bad row (up to a cap per file). This module reads only the
//! files it is handed and knows nothing of the spec's YAML: `validate` decides which files, which
//! fields and which split, and reports problems that belong to the spec.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostics, MAX_PER_DATA_FILE};
use crate::plan::Row;
use crate::rng::SplitMix64;

/// The formats a dataset file may have, told apart by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Comma-separated with a header row (`.csv`).
    Csv,
    /// Tab-separated with a header row and no quoting (`.tsv`).
    Tsv,
}

impl Format {
    pub(crate) fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            _ => None,
        }
    }
}

/// One row as read, before the spec's fields give it an id, input and target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawRow {
    /// 1-based line of the file where the row starts.
    pub line: usize,
    pub fields: BTreeMap<String, String>,
}

/// Problems of one data file, reported up to [`MAX_PER_DATA_FILE`], then counted.
pub(crate) struct FileProblems<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
    reported: usize,
    unreported: usize,
    /// Line of the first problem past the cap, where the summary goes.
    first_unreported: usize,
}

impl<'a> FileProblems<'a> {
    pub(crate) fn new(file: &'a Path, diags: &'a mut Diagnostics) -> Self {
        Self {
            file,
            diags,
            reported: 0,
            unreported: 0,
            first_unreported: 1,
        }
    }

    pub(crate) fn push(&mut self, line: usize, col: usize, message: impl Into<String>) {
        if self.reported < MAX_PER_DATA_FILE {
            self.reported += 1;
            self.diags.push(self.file, line, col, message);
        } else {
            if self.unreported == 0 {
                self.first_unreported = line;
            }
            self.unreported += 1;
        }
    }

    /// Whether any problem was found.
    pub(crate) fn any(&self) -> bool {
        self.reported > 0
    }
}

impl Drop for FileProblems<'_> {
    fn drop(&mut self) {
        if self.unreported > 0 {
            let message = format!(
                "{} more problems in this file from here on (only the first {MAX_PER_DATA_FILE} \
                 are shown)",
                self.unreported
            );
            self.diags
                .push(self.file, self.first_unreported, 1, message);
        }
    }
}

/// The largest data file read: a dataset is held in memory whole, with every row of it.
pub(crate) const MAX_DATASET_BYTES: u64 = 1 << 30;

/// The bytes of `path`, which must be a regular file (a FIFO would block, a device never end)
/// of at most `limit` bytes; the errors say which rule the file breaks.
pub(crate) fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::other(format!("it is {what}")));
    }
    let too_big = || {
        std::io::Error::other(format!(
            "it is larger than the limit of {} MiB",
            limit >> 20
        ))
    };
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Reads every row of a data file; malformed rows are reported to `problems` and skipped.
/// Errs only when the file cannot be read at all (or is no regular file, or too large).
pub(crate) fn read(
    path: &Path,
    format: Format,
    problems: &mut FileProblems<'_>,
) -> std::io::Result<Vec<RawRow>> {
    let bytes = read_regular_file(path, MAX_DATASET_BYTES)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    Ok(match format {
        Format::Jsonl => read_jsonl(bytes, problems),
        Format::Csv => read_delimited(bytes, b',', true, problems),
        Format::Tsv => read_delimited(bytes, b'\t', false, problems),
    })
}

/// A JSON value as a row field: strings as they are, other scalars as JSON writes them,
/// arrays and objects as compact JSON. Null is no value at all.
fn stringify(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn read_jsonl(bytes: &[u8], problems: &mut FileProblems<'_>) -> Vec<RawRow> {
    let mut rows = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(text) = std::str::from_utf8(line) else {
            problems.push(line_no, 1, "line is not valid UTF-8");
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => {
                let fields = map
                    .into_iter()
                    .filter_map(|(k, v)| stringify(v).map(|v| (k, v)))
                    .collect();
                rows.push(RawRow {
                    line: line_no,
                    fields,
                });
            }
            Ok(other) => {
                let kind = match other {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                };
                problems.push(
                    line_no,
                    1,
                    format!("expected a JSON object per line, found {kind}"),
                );
            }
            Err(e) => {
                let full = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                let message = full.strip_suffix(&suffix).unwrap_or(&full);
                problems.push(
                    line_no,
                    e.column().max(1),
                    format!("invalid JSON: {message}"),
                );
            }
        }
    }
    rows
}

fn read_delimited(
    bytes: &[u8],
    delimiter: u8,
    quoting: bool,
    problems: &mut FileProblems<'_>,
) -> Vec<RawRow> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(quoting)
        .has_headers(true)
        .from_reader(bytes);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_owned()).collect(),
        Err(e) => {
            problems.push(csv_line(&e), 1, format!("cannot read the header row: {e}"));
            return Vec::new();
        }
    };
    if header.iter().all(String::is_empty) {
        problems.push(
            1,
            1,
            "the first line must be a header row naming the fields",
        );
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            problems.push(1, 1, format!("header column {} has no name", i + 1));
        } else if !seen.insert(name.as_str()) {
            problems.push(1, 1, format!("header names `{name}` twice"));
        }
    }
    if problems.any() {
        return Vec::new();
    }

    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let fields = header
                    .iter()
                    .cloned()
                    .zip(record.iter().map(str::to_owned))
                    .collect();
                rows.push(RawRow { line, fields });
            }
            Err(e) => {
                let line = csv_line(&e);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!(
                        "row has {len} field{}, but the header has {expected_len}",
                        if *len == 1 { "" } else { "s" }
                    ),
                    csv::ErrorKind::Utf8 { .. } => "row is not valid UTF-8".to_owned(),
                    _ => format!("cannot read row: {e}"),
                };
                problems.push(line, 1, message);
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    // Anything else (an IO error) does not let the reader go on.
                    break;
                }
            }
        }
    }
    rows
}

fn csv_line(e: &csv::Error) -> usize {
    e.position().map_or(1, |p| p.line() as usize).max(1)
}

/// Every field name that occurs in any row, in sorted order.
pub(crate) fn field_names(rows: &[RawRow]) -> BTreeSet<&str> {
    rows.iter()
        .flat_map(|r| r.fields.keys().map(String::as_str))
        .collect()
}

/// How rows get their id, input and target.
pub(crate) struct RowRules<'a> {
    pub input: &'a str,
    pub target: &'a str,
    /// `dataset.id`: a field every row must have. None: the `id` field where a row has one,
    /// else the line number.
    pub id_field: Option<&'a str>,
    /// Put before line-number ids (`train:`), so two files cannot both have a row "3".
    pub line_id_prefix: &'a str,
    /// Other fields every row must have, each with why (`used by prompt `zs``).
    pub also: &'a [(String, String)],
}

/// Turns raw rows into rows, reporting rows that lack a required field and ids given twice.
/// Returns (line, row) pairs of the rows that are fine.
pub(crate) fn to_rows(
    raw: Vec<RawRow>,
    rules: &RowRules<'_>,
    problems: &mut FileProblems<'_>,
) -> Vec<(usize, Row)> {
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(raw.len());
    for r in raw {
        let mut ok = true;
        let roles = [
            (rules.input, "the dataset's `input`"),
            (rules.target, "the dataset's `target`"),
        ];
        let also = rules.also.iter().map(|(f, why)| (f.as_str(), why.as_str()));
        for (field, why) in roles.into_iter().chain(also) {
            if !r.fields.contains_key(field) {
                problems.push(r.line, 1, format!("row has no field `{field}` ({why})"));
                ok = false;
            }
        }
        let id = match rules.id_field {
            Some(f) => match r.fields.get(f) {
                Some(v) => Some(v.clone()),
                None => {
                    problems.push(
                        r.line,
                        1,
                        format!("row has no field `{f}` (the dataset's `id`)"),
                    );
                    None
                }
            },
            None => Some(match r.fields.get("id") {
                Some(v) => v.clone(),
                None => format!("{}{}", rules.line_id_prefix, r.line),
            }),
        };
        let Some(id) = id else { continue };
        if id.trim().is_empty() {
            problems.push(r.line, 1, "row has an empty id");
            continue;
        }
        if let Some(first) = first_line_of.get(&id) {
            problems.push(
                r.line,
                1,
                format!("duplicate id `{id}` (first at line {first})"),
            );
            continue;
        }
        first_line_of.insert(id.clone(), r.line);
        if !ok {
            continue;
        }
        let input = r.fields.get(rules.input).cloned().unwrap_or_default();
        let target = r.fields.get(rules.target).cloned().unwrap_or_default();
        rows.push((
            r.line,
            Row {
                id,
                fields: r.fields,
                input,
                target,
            },
        ));
    }
    rows
}

/// Splits `rows` into (eval, train) of the given sizes (`eval + train <= rows.len()`): a
/// SplitMix64 shuffle seeded by `seed` orders the rows, eval takes the first `eval`, train the
/// next `train`, and each keeps file order. The eval set depends only on the seed and its size,
/// so growing `train` never changes which items are evaluated.
#[cfg(test)]
pub(crate) fn split(rows: Vec<Row>, eval: usize, train: usize, seed: u64) -> (Vec<Row>, Vec<Row>) {
    let (e, t, _) = split_with_rest(rows, eval, train, seed);
    (e, t)
}

/// [`split`], and the rows it leaves out (in a fixed order of its shuffle): where an
/// `optimize:` dev split is taken from first.
pub(crate) fn split_with_rest(
    rows: Vec<Row>,
    eval: usize,
    train: usize,
    seed: u64,
) -> (Vec<Row>, Vec<Row>, Vec<Row>) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    SplitMix64::from_label(seed, "split", "").shuffle_prefix(&mut order, eval + train);
    let mut eval_idx: Vec<usize> = order.iter().take(eval).copied().collect();
    let mut train_idx: Vec<usize> = order.iter().skip(eval).take(train).copied().collect();
    eval_idx.sort_unstable();
    train_idx.sort_unstable();
    let rest_idx: Vec<usize> = order.iter().skip(eval + train).copied().collect();
    let mut slots: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    let mut take = |idx: Vec<usize>| -> Vec<Row> {
        idx.into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect()
    };
    let eval_rows = take(eval_idx);
    let train_rows = take(train_idx);
    let rest = take(rest_idx);
    (eval_rows, train_rows, rest)
}

/// SHA-256 (hex) over the split description, the input and target field names, and the id
/// and every field of every row of both splits, each string length-prefixed so that no two
/// different datasets encode alike.
pub(crate) fn fingerprint(
    eval: &[Row],
    train: &[Row],
    input: &str,
    target: &str,
    split: &str,
) -> String {
    fn put(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    put(&mut h, "orchestrator-dataset-v1");
    put(&mut h, split);
    put(&mut h, input);
    put(&mut h, target);
    for (name, rows) in [("eval", eval), ("train", train)] {
        put(&mut h, name);
        h.update((rows.len() as u64).to_le_bytes());
        for r in rows {
            put(&mut h, &r.id);
            h.update((r.fields.len() as u64).to_le_bytes());
            for (k, v) in &r.fields {
                put(&mut h, k);
                put(&mut h, v);
            }
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Row> {
        (1..=n)
            .map(|i| Row {
                id: i.to_string(),
                fields: [("t".to_owned(), format!("text {i}"))]
                    .into_iter()
                    .collect(),
                input: format!("text {i}"),
                target: "x".into(),
            })
            .collect()
    }

    fn ids(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn split_is_deterministic_disjoint_and_in_file_order() {
        let (e1, t1) = split(rows(50), 10, 20, 7);
        let (e2, t2) = split(rows(50), 10, 20, 7);
        assert_eq!(e1, e2);
        assert_eq!(t1, t2);
        assert_eq!((e1.len(), t1.len()), (10, 20));
        let eval: BTreeSet<&str> = ids(&e1).into_iter().collect();
        assert!(ids(&t1).iter().all(|id| !eval.contains(id)));
        let pos =
            |rows: &[Row]| -> Vec<usize> { rows.iter().map(|r| r.id.parse().unwrap()).collect() };
        assert!(pos(&e1).windows(2).all(|w| w[0] < w[1]));
        assert!(pos(&t1).windows(2).all(|w| w[0] < w[1]));

        let (e3, _) = split(rows(50), 10, 20, 8);
        assert_ne!(e1, e3, "another seed, another split");
        let (e4, t4) = split(rows(50), 10, 35, 7);
        assert_eq!(e1, e4, "a bigger train split leaves eval alone");
        assert_eq!(t4.len(), 35);
    }

    #[test]
    fn split_is_stable_across_versions() {
        // Pinned: a change here changes every user's eval set, and must be deliberate.
        let (eval, train) = split(rows(12), 3, 4, 7);
        expect_test::expect![[r#"eval ["3", "9", "10"] train ["4", "6", "11", "12"]"#]]
            .assert_eq(&format!("eval {:?} train {:?}", ids(&eval), ids(&train)));
    }

    #[test]
    fn fingerprint_changes_with_content_ids_and_split() {
        let (e, t) = split(rows(20), 5, 5, 7);
        let base = fingerprint(&e, &t, "t", "x", "split eval=5 train=5 seed=7");
        assert_eq!(
            base,
            fingerprint(&e, &t, "t", "x", "split eval=5 train=5 seed=7")
        );
        assert_ne!(
            base,
            fingerprint(&e, &t, "t", "x", "split eval=5 train=5 seed=8")
        );
        assert_ne!(
            base,
            fingerprint(&t, &e, "t", "x", "split eval=5 train=5 seed=7")
        );
        let mut e2 = e.clone();
        e2[0].fields.insert("t".into(), "changed".into());
        assert_ne!(
            base,
            fingerprint(&e2, &t, "t", "x", "split eval=5 train=5 seed=7")
        );
        let mut e3 = e.clone();
        e3[0].id = "other".into();
        assert_ne!(
            base,
            fingerprint(&e3, &t, "t", "x", "split eval=5 train=5 seed=7")
        );
        assert_eq!(base.len(), 64);
    }
}
