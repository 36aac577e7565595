//! The output formats of `leaderboard` and `compare` (`--format table|json|csv|markdown`), and
//! the small layout helpers they share: aligned text tables, Markdown pipe tables, CSV with
//! proper quoting, pretty JSON, and cell formatting (qualities with intervals, latencies,
//! truncation).
//!
//! It lays out cells it is handed; it computes no figures. The decision report has its own
//! formats (`render::ReportFormat`) and money formatting (`figures`), which this reuses.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::escape::{Sink, escape};

/// How `leaderboard` and `compare` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned columns for a terminal; long text is truncated.
    #[default]
    Table,
    /// Pretty-printed JSON, numbers unrounded.
    Json,
    /// A header and one record per row, RFC 4180 quoting, numbers unrounded.
    Csv,
    /// A GitHub-flavoured pipe table.
    Markdown,
}

impl Format {
    /// Every format, in the order help text lists them.
    pub const ALL: [Format; 4] = [Format::Table, Format::Json, Format::Csv, Format::Markdown];

    /// The name `--format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Markdown => "markdown",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--format` value that names no [`Format`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {input:?}, expected one of table, json, csv, markdown")]
pub struct ParseFormatError {
    pub input: String,
}

impl FromStr for Format {
    type Err = ParseFormatError;

    /// Accepts the names of [`Format::as_str`] in any case, and `md` for Markdown.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "markdown" | "md" => Ok(Format::Markdown),
            _ => Err(ParseFormatError {
                input: s.to_string(),
            }),
        }
    }
}

/// Which side of its column a cell sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table of string cells: the header, each column's alignment, the rows.
pub(crate) struct Table<'a> {
    pub header: Vec<String>,
    pub align: Vec<Align>,
    pub rows: &'a [Vec<String>],
}

impl Table<'_> {
    /// Columns padded to their widest cell (counted in chars), two spaces apart, no trailing
    /// whitespace; every line ends with a newline. Line breaks and tabs inside a cell print as
    /// spaces, so a row stays on one line; other control characters are shown escaped.
    pub(crate) fn text(&self) -> String {
        let one_line = |row: &Vec<String>| -> Vec<String> {
            row.iter()
                .map(|cell| escape(&cell.replace(['\r', '\n', '\t'], " "), Sink::Line).into_owned())
                .collect()
        };
        let header = one_line(&self.header);
        let rows: Vec<Vec<String>> = self.rows.iter().map(one_line).collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                std::iter::once(&header)
                    .chain(&rows)
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c].saturating_sub(cell.chars().count());
                match self.align.get(c).copied().unwrap_or(Align::Left) {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// A pipe table; cells are escaped with [`markdown_cell`], right-aligned columns marked
    /// `---:`.
    pub(crate) fn markdown(&self) -> String {
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let mut out = line(self.header.iter().map(|h| markdown_cell(h)).collect());
        out.push_str(&line(
            (0..self.header.len())
                .map(|c| match self.align.get(c) {
                    Some(Align::Right) => "---:".to_string(),
                    _ => "---".to_string(),
                })
                .collect(),
        ));
        for row in self.rows {
            out.push_str(&line(row.iter().map(|c| markdown_cell(c)).collect()));
        }
        out
    }

    /// CSV: the header, then the rows, quoted where a cell needs it, each cell escaped for
    /// spreadsheets ([`Sink::Csv`]).
    pub(crate) fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let written = std::iter::once(&self.header)
            .chain(self.rows)
            .try_for_each(|row| {
                writer.write_record(row.iter().map(|cell| escape(cell, Sink::Csv).into_owned()))
            });
        let bytes = written
            .map_err(|e| e.to_string())
            .and_then(|()| writer.into_inner().map_err(|e| e.to_string()));
        match bytes {
            // Every cell is a `String`, so the output is UTF-8.
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            // Writing to a Vec cannot fail; say so in the output rather than panic.
            Err(e) => format!("error writing CSV: {e}\n"),
        }
    }
}

/// A Markdown table cell or sentence, escaped by [`Sink::Markdown`].
pub(crate) fn markdown_cell(s: &str) -> String {
    escape(s, Sink::Markdown).into_owned()
}

/// Pretty JSON with a trailing newline.
pub(crate) fn json_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(s) => s + "\n",
        // Our records have string keys only, so serialisation cannot fail; report rather
        // than panic if that ever changes.
        Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
    }
}

/// One line of at most `max` chars: runs of whitespace (newlines included) become one space,
/// and a longer text ends in `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A metric with its interval: `0.873 [0.84, 0.90]`.
pub(crate) fn quality_ci(q: f64, lo: f64, hi: f64) -> String {
    format!("{q:.3} [{lo:.2}, {hi:.2}]")
}

/// A metric value: three decimals.
pub(crate) fn quality(x: f64) -> String {
    format!("{x:.3}")
}

/// Milliseconds as a whole number, `-` when unknown.
pub(crate) fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.0}"))
}

/// Dollars, as the decision report writes them.
pub(crate) fn usd(x: f64) -> String {
    crate::figures::usd(x)
}

/// A p-value for a sentence: `p = 0.004`, or `p < 0.001`.
pub(crate) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

/// A number for CSV: the shortest text that reads back as the same f64.
pub(crate) fn csv_number(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn format_parses() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!("MD".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!(" Json ".parse::<Format>(), Ok(Format::Json));
        let err = "yaml".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown format "yaml", expected one of table, json, csv, markdown"#
        );
    }

    fn sample() -> Vec<Vec<String>> {
        vec![
            vec![
                "alpha".into(),
                "1".into(),
                "say \"hi\", | then\nleave".into(),
            ],
            vec!["β".into(), "12345".into(), String::new()],
        ]
    }

    fn table(rows: &[Vec<String>]) -> Table<'_> {
        Table {
            header: vec!["name".into(), "n".into(), "note".into()],
            align: vec![Align::Left, Align::Right, Align::Left],
            rows,
        }
    }

    #[test]
    fn text_table_aligns_by_chars() {
        expect![[r#"
            name       n  note
            alpha      1  say "hi", | then leave
            β      12345
        "#]]
        .assert_eq(&table(&sample()).text());
    }

    #[test]
    fn markdown_table_escapes() {
        expect![[r#"
            | name | n | note |
            | --- | ---: | --- |
            | alpha | 1 | say "hi", \| then<br>leave |
            | β | 12345 |  |
        "#]]
        .assert_eq(&table(&sample()).markdown());
    }

    #[test]
    fn csv_quotes() {
        expect![[r#"
            name,n,note
            alpha,1,"say ""hi"", | then
            leave"
            β,12345,
        "#]]
        .assert_eq(&table(&sample()).csv());
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a  b\n\tc", 10), "a b c");
        assert_eq!(truncate("abcdefghijk", 5), "abcd…");
        assert_eq!(truncate("ééééé", 5), "ééééé");
    }

    #[test]
    fn cells() {
        assert_eq!(quality_ci(0.8733, 0.8412, 0.9), "0.873 [0.84, 0.90]");
        assert_eq!(millis(Some(412.4)), "412");
        assert_eq!(millis(None), "-");
        assert_eq!(p_value(0.0042), "p = 0.004");
        assert_eq!(p_value(0.0002), "p < 0.001");
        assert_eq!(csv_number(0.1), "0.1");
    }
}
