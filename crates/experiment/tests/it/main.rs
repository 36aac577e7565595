//! Integration tests of the `experiment` crate through its public API: real spec and dataset
//! files in temporary folders, loaded with `load_with`, the outcome compared with inline
//! snapshots (`UPDATE_EXPECT=1 cargo test -p experiment` rewrites them).
//!
//! One test binary for the crate, so it links once; each module covers one feature.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod datasets;
mod errors;
mod examples;
mod optimize;
mod plans;
mod review;
mod sweeps;

use std::path::{Path, PathBuf};

use experiment::{LoadOptions, Plan, SpecError};

/// Strips the indentation common to all non-blank lines and the first newline, so specs can be
/// written indented inside a test and still have exact line and column numbers.
pub fn dedent(s: &str) -> String {
    let s = s.strip_prefix('\n').unwrap_or(s);
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in s.lines() {
        out.push_str(line.get(indent..).unwrap_or(line.trim_start()));
        out.push('\n');
    }
    out
}

/// A temporary folder holding `spec.yaml` and data files.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(spec: &str, files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        std::fs::write(dir.path().join("spec.yaml"), dedent(spec)).unwrap();
        Fixture { dir }
    }

    pub fn spec_path(&self) -> PathBuf {
        self.dir.path().join("spec.yaml")
    }

    pub fn load(&self) -> Result<Plan, SpecError> {
        experiment::load_with(&self.spec_path(), &LoadOptions::default())
    }

    /// The diagnostics with the temporary folder shown as `$DIR`, or `ok`.
    pub fn outcome(&self) -> String {
        match self.load() {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                assert!(!e.diagnostics.is_empty());
                let dir = self.dir.path().display().to_string();
                format!("{e}\n").replace(&dir, "$DIR")
            }
        }
    }
}

/// Six labelled movie snippets, ids `a`…`f`.
pub const MOVIES: &str = r#"{"id": "a", "text": "A triumph of a film.", "label": "positive"}
{"id": "b", "text": "Dull and far too long.", "label": "negative"}
{"id": "c", "text": "I loved every minute.", "label": "positive"}
{"id": "d", "text": "The plot makes no sense.", "label": "negative"}
{"id": "e", "text": "Warm, funny and wise.", "label": "positive"}
{"id": "f", "text": "A waste of a good cast.", "label": "negative"}
"#;

pub fn path_of(p: &Path) -> String {
    p.display().to_string()
}
