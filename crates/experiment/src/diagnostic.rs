//! Problems found in a spec or its datasets, each pinned to `FILE:LINE:COL`, and the collector
//! that gathers them so that one `validate` shows every problem rather than the first.
//!
//! This module only records and orders problems; deciding what is a problem belongs to the
//! decoding, validation and dataset modules.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem, at a place in a file. Lines and columns count from 1; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: message`, the form editors and terminals turn into links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Everything wrong with a spec, in file order. Never empty when returned by [`crate::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for SpecError {
    /// One diagnostic per line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Most problems reported for one dataset file; past this a single line says how many more.
pub(crate) const MAX_PER_DATA_FILE: usize = 20;

/// Gathers diagnostics while a spec is loaded.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    items: Vec<Diagnostic>,
    /// Files in the order their problems are shown: the spec first, then data files as they
    /// were first mentioned.
    files: Vec<PathBuf>,
}

impl Diagnostics {
    /// A collector whose problems in `spec` come before those of any other file.
    pub(crate) fn for_spec(spec: &Path) -> Self {
        Self {
            items: Vec::new(),
            files: vec![spec.to_path_buf()],
        }
    }

    pub(crate) fn push(
        &mut self,
        file: &Path,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) {
        if !self.files.iter().any(|f| f == file) {
            self.files.push(file.to_path_buf());
        }
        self.items.push(Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The diagnostics ordered by file (the spec, then the others as first mentioned), then
    /// position. The sort is stable: two problems at one place keep the order they were found.
    pub(crate) fn into_error(self) -> SpecError {
        let files = self.files;
        let mut items = self.items;
        items.sort_by_key(|d| {
            let file = files.iter().position(|f| *f == d.file).unwrap_or(0);
            (file, d.line, d.col)
        });
        SpecError { diagnostics: items }
    }
}

/// Turns character offsets of a text into 1-based line and column numbers.
#[derive(Debug)]
pub(crate) struct LineIndex {
    /// Character offset at which each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        for (i, c) in text.chars().enumerate() {
            if c == '\n' {
                starts.push(i + 1);
            }
        }
        Self { starts }
    }

    /// (line, column) of a character offset, both from 1.
    pub(crate) fn line_col(&self, index: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= index).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        (line, index - start + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_from_one() {
        let idx = LineIndex::new("ab\ncd\n\nx");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(1), (1, 2));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(6), (3, 1));
        assert_eq!(idx.line_col(7), (4, 1));
    }

    #[test]
    fn spec_error_sorts_by_file_then_place() {
        let mut d = Diagnostics::for_spec(Path::new("b.yaml"));
        d.push(Path::new("data.csv"), 1, 1, "data");
        d.push(Path::new("b.yaml"), 3, 1, "third");
        d.push(Path::new("b.yaml"), 1, 5, "first");
        d.push(Path::new("b.yaml"), 1, 5, "second");
        let e = d.into_error();
        assert_eq!(
            e.to_string(),
            "b.yaml:1:5: first\nb.yaml:1:5: second\nb.yaml:3:1: third\ndata.csv:1:1: data"
        );
    }
}
