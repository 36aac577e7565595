//! The repository's invariants, checked by `cargo test` so they hold themselves: every `.rs` file
//! opens with a `//!` paragraph; only `store` speaks SQL; only the model crates use Candle, and
//! they have no tokio; library crates never print; and no comment or doc cites a file that is not
//! in the repository. Each problem is reported as `path:line: what is wrong`.
//!
//! The checks read text line by line: they are deliberately simple, and each has a test below on
//! a small input showing that it catches what it is for. Words that would trip the checks on this
//! very file (SQL keywords, crate paths) are split in the test inputs.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// The crates that run models: the only ones that may use Candle, and the ones that must not
/// use tokio (long work runs on the caller's thread). Splitting or adding a model crate means
/// adding it here, in ARCHITECTURE.md's invariants in the same commit.
const MODEL_CRATES: &[&str] = &[
    "crates/llm",
    "crates/embed",
    "crates/finetune",
    "workers/finetune-worker",
];

/// The only crate that contains SQL.
const SQL_CRATE: &str = "crates/store";

/// Folders never read: build output, and dot-folders (git, editor state, run artifacts).
fn skipped_dir(name: &str) -> bool {
    name == "target" || name.starts_with('.')
}

/// Every file of the repository, as `/`-separated paths relative to its root.
fn repo_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !skipped_dir(&name) {
                    walk(root, &path, out);
                }
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn repo_root() -> PathBuf {
    // This test target belongs to crates/orchestrator.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn in_model_crate(path: &str) -> bool {
    MODEL_CRATES.iter().any(|c| under(path, c))
}

/// The package folder holding `path` (the nearest folder above it with a `Cargo.toml`).
fn package_of<'a>(path: &str, files: &'a [String]) -> Option<&'a str> {
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if let Some(manifest) = files.iter().find(|f| **f == format!("{parent}/Cargo.toml")) {
            return manifest.strip_suffix("/Cargo.toml");
        }
        dir = parent;
    }
    None
}

/// Whether `path` is library code: under `src/` of a package that has a `src/lib.rs`, and not
/// its `main.rs`, a `src/bin/` binary, or a build script.
fn is_library(path: &str, files: &[String]) -> bool {
    let Some(package) = package_of(path, files) else {
        return false;
    };
    let Some(inside) = path
        .strip_prefix(package)
        .and_then(|p| p.strip_prefix("/src/"))
    else {
        return false;
    };
    let has_lib = files.iter().any(|f| *f == format!("{package}/src/lib.rs"));
    has_lib && inside != "main.rs" && !inside.starts_with("bin/")
}

/// A line split into its code and its comment (`//` outside a string literal).
fn split_comment(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            // A char literal (`'"'`, `'\''`) is not the start of a string.
            b'\'' if !in_string && bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if !in_string && bytes.get(i + 1) == Some(&b'\\') => i += 3,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                return (&line[..i], &line[i..]);
            }
            _ => {}
        }
        i += 1;
    }
    (line, "")
}

/// The code part of each line, numbered from 1, up to a `#[cfg(test)]` module (unit tests sit
/// at the end of a file, and test code may print).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .enumerate()
        .map(|(i, l)| (i + 1, split_comment(l).0))
}

/// `(line, name)` of every dependency a `Cargo.toml` declares for a package (not the
/// workspace's version table, which declares what members may use).
fn dependencies(toml: &str) -> Vec<(usize, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, line) in toml.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let is_deps = section.ends_with("dependencies") && section != "workspace.dependencies";
        if !is_deps || line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .collect();
        if !name.is_empty() {
            out.push((i + 1, name));
        }
    }
    out
}

/// The first line must start the module's `//!` paragraph.
fn check_module_doc(path: &str, text: &str) -> Vec<String> {
    if text.starts_with("//!") {
        return Vec::new();
    }
    vec![format!(
        "{path}:1: the file must open with a `//!` paragraph saying what it is for"
    )]
}

static SQL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b(SELECT\s|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b",
        r"|CREATE\s+(TABLE|INDEX|VIEW|TRIGGER)\b|DROP\s+(TABLE|INDEX)\b|ALTER\s+TABLE\b",
        r"|PRAGMA\s+\w+|sqlx\s*::)",
    ))
    .unwrap()
});

/// The lines where a `Cargo.toml` depends on a crate whose name starts with `dep`, or where
/// code (not comments, not unit tests) matches `code`.
fn uses(path: &str, text: &str, dep: &str, code: &Regex) -> Vec<usize> {
    if path.ends_with("Cargo.toml") {
        return dependencies(text)
            .into_iter()
            .filter(|(_, name)| name.starts_with(dep))
            .map(|(line, _)| line)
            .collect();
    }
    code_lines(text)
        .filter(|(_, line)| code.is_match(line))
        .map(|(line, _)| line)
        .collect()
}

/// SQL statements (upper-case keywords, as we write them), `sqlx`, or `.sql` files outside
/// the store.
fn check_sql(path: &str, text: &str) -> Vec<String> {
    if under(path, SQL_CRATE) {
        return Vec::new();
    }
    if path.ends_with(".sql") {
        return vec![format!("{path}:1: SQL files belong in {SQL_CRATE}")];
    }
    uses(path, text, "sqlx", &SQL)
        .into_iter()
        .map(|line| format!("{path}:{line}: SQL or sqlx outside {SQL_CRATE}"))
        .collect()
}

static CANDLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bcandle(_core|_nn|_transformers)?::|\bcandle_(core|nn|transformers)\b").unwrap()
});

/// Candle outside the model crates (the workspace's version table is no use of it).
fn check_candle(path: &str, text: &str) -> Vec<String> {
    if in_model_crate(path) || path == "Cargo.toml" {
        return Vec::new();
    }
    uses(path, text, "candle", &CANDLE)
        .into_iter()
        .map(|line| format!("{path}:{line}: Candle outside the model crates {MODEL_CRATES:?}"))
        .collect()
}

static TOKIO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\btokio(_util)?\b").unwrap());

/// tokio inside a model crate.
fn check_tokio(path: &str, text: &str) -> Vec<String> {
    if !in_model_crate(path) {
        return Vec::new();
    }
    uses(path, text, "tokio", &TOKIO)
        .into_iter()
        .map(|line| format!("{path}:{line}: the model crates have no tokio"))
        .collect()
}

static PRINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(print|println|eprint|eprintln|dbg)!").unwrap());

/// Printing in library code (`is_library`): libraries log with `tracing`; the binary prints.
fn check_printing(path: &str, text: &str, is_library: bool) -> Vec<String> {
    if !is_library {
        return Vec::new();
    }
    code_lines(text)
        .filter(|(_, code)| PRINT.is_match(code))
        .map(|(line, _)| {
            format!("{path}:{line}: a library never prints (use `tracing`, or return the text)")
        })
        .collect()
}

static CITED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*\.(rs|md|toml|sh|sql)\b").unwrap());

/// Files of ours cited in comments (of `.rs` files) or in Markdown that `exists` does not know.
/// A path preceded by `/` or `:` (a URL, an absolute path) is not a citation of a repo file.
fn check_citations(path: &str, text: &str, exists: &dyn Fn(&str, &str) -> bool) -> Vec<String> {
    let markdown = path.ends_with(".md");
    if !markdown && !path.ends_with(".rs") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let prose = if markdown {
            line
        } else {
            split_comment(line).1
        };
        for m in CITED.find_iter(prose) {
            let before = prose[..m.start()].chars().next_back();
            if matches!(before, Some('/' | ':')) {
                continue;
            }
            if !exists(path, m.as_str()) {
                out.push(format!(
                    "{path}:{}: cites `{}`, which is not in the repository",
                    i + 1,
                    m.as_str()
                ));
            }
        }
    }
    out
}

/// `a/b/../c` → `a/c`; None when it climbs out of the repository.
fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Whether `cited` (in `from`) names a file of `files`: from the root, from the citing file's
/// folder, or as the tail of a path (`writer.rs`, `tests/it/secrets.rs`).
fn resolves(files: &[String], from: &str, cited: &str) -> bool {
    let dir = from.rsplit_once('/').map_or("", |(d, _)| d);
    let candidates = [normalise(cited), normalise(&format!("{dir}/{cited}"))];
    let tail = format!("/{}", cited.trim_start_matches("./"));
    files
        .iter()
        .any(|f| candidates.iter().flatten().any(|c| c == f) || f.ends_with(&tail))
}

#[test]
fn the_repository_keeps_its_invariants() {
    let root = repo_root();
    let files = repo_files(&root);
    assert!(
        files.iter().any(|f| f == "crates/store/src/lib.rs"),
        "the walk found the repository at {}",
        root.display()
    );
    let exists = |from: &str, cited: &str| resolves(&files, from, cited);
    let mut problems = Vec::new();
    for path in &files {
        let read = path.ends_with(".rs") || path.ends_with(".md") || path.ends_with("Cargo.toml");
        if !read {
            problems.extend(check_sql(path, ""));
            continue;
        }
        let text = std::fs::read_to_string(root.join(path)).unwrap();
        if path.ends_with(".rs") {
            problems.extend(check_module_doc(path, &text));
            problems.extend(check_printing(path, &text, is_library(path, &files)));
        }
        if !path.ends_with(".md") {
            problems.extend(check_sql(path, &text));
            problems.extend(check_candle(path, &text));
            problems.extend(check_tokio(path, &text));
        }
        problems.extend(check_citations(path, &text, &exists));
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn model_crates_exist() {
    let files = repo_files(&repo_root());
    for krate in MODEL_CRATES {
        assert!(
            files.iter().any(|f| *f == format!("{krate}/Cargo.toml")),
            "MODEL_CRATES names {krate}, which is not a package"
        );
    }
}

#[test]
fn a_file_without_its_doc_paragraph_is_caught() {
    assert!(check_module_doc("crates/x/src/a.rs", "//! What a is for.\n").is_empty());
    assert_eq!(
        check_module_doc("crates/x/src/a.rs", "use std::io;\n"),
        ["crates/x/src/a.rs:1: the file must open with a `//!` paragraph saying what it is for"]
    );
    // A plain comment is not the module's doc.
    assert_eq!(check_module_doc("a.rs", "// note\n//! late\n").len(), 1);
}

#[test]
fn sql_outside_the_store_is_caught() {
    let select = ["SEL", "ECT"].concat();
    let code = format!(
        "//! Doc.\nfn f() {{\n    let q = \"{select} id FROM runs\";\n    // {select} in a comment is prose\n}}\n"
    );
    assert_eq!(
        check_sql("crates/runner/src/a.rs", &code),
        ["crates/runner/src/a.rs:3: SQL or sqlx outside crates/store"]
    );
    assert!(check_sql("crates/store/src/runs.rs", &code).is_empty());
    let insert = format!("let q = \"INS{}\";", "ERT OR IGNORE INTO calls");
    assert_eq!(check_sql("crates/report/src/a.rs", &insert).len(), 1);
    let path = format!("let r = sq{}::query(q);", "lx");
    assert_eq!(check_sql("crates/report/src/a.rs", &path).len(), 1);
    // English and tracing filters are not SQL.
    let prose = "let s = \"select the arms from the plan\"; let f = \"info,sqlx=warn\";";
    assert!(check_sql("crates/orchestrator/src/logging.rs", prose).is_empty());
    let toml = "[package]\nname = \"r\"\n\n[dependencies]\nsqlx.workspace = true\n";
    assert_eq!(
        check_sql("crates/runner/Cargo.toml", toml),
        ["crates/runner/Cargo.toml:5: SQL or sqlx outside crates/store"]
    );
    assert_eq!(check_sql("crates/runner/x.sql", "").len(), 1);
}

#[test]
fn candle_outside_the_model_crates_is_caught() {
    let code = format!(
        "//! Doc.\nuse {}::Tensor;\n// Candle runs elsewhere\n",
        ["candle", "_core"].concat()
    );
    assert_eq!(
        check_candle("crates/runner/src/local.rs", &code),
        [format!(
            "crates/runner/src/local.rs:2: Candle outside the model crates {MODEL_CRATES:?}"
        )]
    );
    assert!(check_candle("crates/finetune/src/model.rs", &code).is_empty());
    let toml = format!(
        "[dependencies]\n{}.workspace = true\n",
        ["candle", "-nn"].concat()
    );
    assert_eq!(check_candle("crates/report/Cargo.toml", &toml).len(), 1);
    assert!(check_candle("crates/finetune/Cargo.toml", &toml).is_empty());
}

#[test]
fn tokio_in_a_model_crate_is_caught() {
    let code = "//! Doc, which may say it has no tokio.\nfn f() { tokio::spawn(g()); }\n";
    assert_eq!(
        check_tokio("crates/finetune/src/a.rs", code),
        ["crates/finetune/src/a.rs:2: the model crates have no tokio"]
    );
    assert!(check_tokio("crates/runner/src/a.rs", code).is_empty());
    let toml = "[dev-dependencies]\ntokio = { workspace = true }\n";
    assert_eq!(
        check_tokio("workers/finetune-worker/Cargo.toml", toml).len(),
        1
    );
    // The workspace's version table is not a dependency of a model crate.
    assert!(check_tokio("Cargo.toml", toml).is_empty());
}

#[test]
fn printing_in_a_library_is_caught() {
    let code = "//! Doc.\nfn f() {\n    eprintln!(\"x\");\n    // println!(\"commented\");\n}\n\n#[cfg(test)]\nmod tests {\n    fn t() { println!(\"ok in tests\"); }\n}\n";
    assert_eq!(
        check_printing("crates/report/src/a.rs", code, true),
        ["crates/report/src/a.rs:3: a library never prints (use `tracing`, or return the text)"]
    );
    assert_eq!(check_printing("a.rs", "dbg!(x);", true).len(), 1);
    assert!(check_printing("crates/report/src/a.rs", "let s = format!(\"x\");", true).is_empty());
    let files: Vec<String> = [
        "crates/report/Cargo.toml",
        "crates/report/src/lib.rs",
        "crates/report/src/html.rs",
        "crates/report/tests/it/main.rs",
        "crates/report/build.rs",
        "crates/runner/Cargo.toml",
        "crates/runner/src/lib.rs",
        "crates/runner/src/bin/fake.rs",
        "crates/orchestrator/Cargo.toml",
        "crates/orchestrator/src/main.rs",
        "crates/orchestrator/src/progress.rs",
    ]
    .map(String::from)
    .to_vec();
    let libs: Vec<&str> = files
        .iter()
        .filter(|f| f.ends_with(".rs") && is_library(f, &files))
        .map(String::as_str)
        .collect();
    assert_eq!(
        libs,
        [
            "crates/report/src/lib.rs",
            "crates/report/src/html.rs",
            "crates/runner/src/lib.rs"
        ]
    );
}

#[test]
fn a_citation_of_a_missing_file_is_caught() {
    let files: Vec<String> = [
        "README.md",
        "crates/runner/src/writer.rs",
        "crates/runner/src/lib.rs",
        "tests/it/secrets.rs",
    ]
    .map(String::from)
    .to_vec();
    let exists = |from: &str, cited: &str| resolves(&files, from, cited);
    let code = "//! See `writer.rs` and the README.md, and DESIGN.md §4.\nlet s = \"NOTES.md\"; // per ../../../tests/it/secrets.rs\n// https://example.com/GONE.md is a link\n";
    assert_eq!(
        check_citations("crates/runner/src/lib.rs", code, &exists),
        ["crates/runner/src/lib.rs:1: cites `DESIGN.md`, which is not in the repository"]
    );
    let md = "Read `tests/it/secrets.rs` and `crates/runner/src/reader.rs`.\n";
    assert_eq!(
        check_citations("ARCHITECTURE.md", md, &exists),
        ["ARCHITECTURE.md:1: cites `crates/runner/src/reader.rs`, which is not in the repository"]
    );
    // Files a program writes at run time are not citations of ours.
    assert!(
        check_citations(
            "a.rs",
            "// writes job.json and adapter_config.json",
            &exists
        )
        .is_empty()
    );
}
