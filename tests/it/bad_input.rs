//! Bad input exits 1 and points at the place: each kind of spec mistake as
//! `FILE:LINE:COL: message`, malformed dataset rows with their line number, and bad flags.
//! Nothing is run, so these need no server.

use crate::support::{Env, SpecOptions, spec};

/// The standard spec with `from` replaced by `to` (which must occur).
fn spec_with(from: &str, to: &str) -> String {
    let s = spec("http://127.0.0.1:9/v1", &SpecOptions::default());
    assert!(s.contains(from), "{from:?} not in the spec");
    s.replacen(from, to, 1)
}

/// `validate` and `run` both exit 1, and stderr has a line starting `at` (e.g. `spec.yaml:13:5:`)
/// that contains `message`.
async fn check(spec_text: &str, at: &str, message: &str) {
    let env = Env::without_server();
    env.write_dataset(8);
    env.write("spec.yaml", spec_text);
    for cmd in ["validate", "run"] {
        let out = env.run(&[cmd, "spec.yaml"]).await;
        out.expect_code(1);
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(at) && l.contains(message)),
            "{cmd}: expected a line with {at:?} and {message:?} in:\n{}",
            out.stderr
        );
    }
    assert!(!env.db().exists(), "bad input writes no database");
}

#[tokio::test]
async fn a_valid_spec_validates() {
    let env = Env::without_server();
    env.write_dataset(8);
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("ok"), "{}", out.stdout);
    assert!(out.stdout.contains("plain@fake"), "{}", out.stdout);
}

#[tokio::test]
async fn misspelt_key() {
    let s = spec_with("max_concurrency:", "max_concurency:");
    check(&s, "spec.yaml:13:5:", "did you mean `max_concurrency`").await;
}

#[tokio::test]
async fn wrong_type() {
    let s = spec_with("max_concurrency: 4", "max_concurrency: four");
    check(&s, "spec.yaml:13:22:", "`max_concurrency` must be").await;
}

#[tokio::test]
async fn missing_field() {
    let s = spec_with("  target: label\n", "");
    check(&s, "spec.yaml:", "missing field `target`").await;
}

#[tokio::test]
async fn missing_dataset_file() {
    let s = spec_with("path: data.jsonl", "path: nope.jsonl");
    check(&s, "spec.yaml:4:9:", "nope.jsonl").await;
}

#[tokio::test]
async fn template_variable_that_is_not_a_dataset_field() {
    let s = spec_with("\"Q: {{text}}\"", "\"Q: {{txt}}\"");
    check(&s, "spec.yaml:19:19:", "not a dataset field").await;
}

#[tokio::test]
async fn duplicate_prompt_ids() {
    let s = spec_with("  - id: polite", "  - id: plain");
    check(&s, "spec.yaml:20:9:", "duplicate").await;
}

#[tokio::test]
async fn unknown_provider_type() {
    let s = spec_with("type: openai", "type: opneai");
    check(&s, "spec.yaml:9:11:", "openai").await;
}

/// A dataset with `bad` as its 3rd line exits 1 naming `data.jsonl:3:`.
async fn check_dataset_line(bad: &str, message: &str) {
    let env = Env::without_server();
    env.write_dataset(8);
    let data = std::fs::read_to_string(env.path("data.jsonl")).unwrap();
    let mut lines: Vec<&str> = data.lines().collect();
    lines[2] = bad;
    env.write("data.jsonl", &(lines.join("\n") + "\n"));
    env.write_spec(&SpecOptions::default());
    for cmd in ["validate", "run"] {
        let out = env.run(&[cmd, "spec.yaml"]).await;
        out.expect_code(1);
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("data.jsonl:3:") && l.contains(message)),
            "{cmd}: expected data.jsonl:3: and {message:?} in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn malformed_jsonl_row() {
    check_dataset_line("{\"id\": \"x\", \"text\": ", "").await;
}

#[tokio::test]
async fn jsonl_row_that_is_not_an_object() {
    check_dataset_line("[1, 2]", "expected a JSON object").await;
}

#[tokio::test]
async fn jsonl_row_without_the_target_field() {
    check_dataset_line(r#"{"id": "x", "text": "<qx>"}"#, "label").await;
}

#[tokio::test]
async fn duplicate_row_id() {
    check_dataset_line(
        r#"{"id": "item-0", "text": "<qx>", "label": "yes"}"#,
        "duplicate id",
    )
    .await;
}

#[tokio::test]
async fn bad_flags_exit_1() {
    let env = Env::without_server();
    env.write_dataset(8);
    env.write_spec(&SpecOptions::default());
    for args in [
        &["run", "spec.yaml", "--limit", "0"][..],
        &["run", "spec.yaml", "--bogus"],
        &["run"],
        &["frobnicate"],
        &["leaderboard", "--format", "yaml"],
    ] {
        let out = env.run(args).await;
        out.expect_code(1);
    }
    let out = env.run(&["run", "spec.yaml", "--arms", "nope@fake"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("unknown arm"), "{}", out.stderr);
    assert!(
        out.stderr.contains("plain@fake"),
        "the known arms are listed: {}",
        out.stderr
    );
    let out = env.run(&["leaderboard"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("no database"), "{}", out.stderr);
}

#[tokio::test]
async fn help_exits_0() {
    let env = Env::without_server();
    let out = env.run(&["run", "--help"]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("--dry-run"), "{}", out.stdout);
}

#[tokio::test]
async fn misspelt_local_model() {
    let s = spec_with(
        "providers:\n",
        "providers:\n  - { id: small, type: local, model: smollm2-135m-instrukt }\n",
    );
    check(
        &s,
        "spec.yaml:8:38:",
        "unknown model `smollm2-135m-instrukt` (did you mean `smollm2-135m-instruct`?)",
    )
    .await;
}

#[tokio::test]
async fn fine_tune_base_model_that_is_not_a_model() {
    let s = spec_with(
        "generation:",
        "finetunes:\n  - { id: ft, base_model: weights/fake.gguf, prompt: plain }\ngeneration:",
    )
    .replacen(
        "  target: label\n",
        "  target: label\n  split: { eval: 4, train: 4 }\n",
        1,
    );
    let env = Env::without_server();
    env.write_dataset(8);
    env.write("weights/fake.gguf", "not a model at all");
    env.write("spec.yaml", &s);
    for cmd in ["validate", "run"] {
        let out = env.run(&[cmd, "spec.yaml"]).await;
        out.expect_code(1);
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("spec.yaml:25:"))
            .unwrap_or_else(|| panic!("{cmd}: no spec.yaml:25: line in\n{}", out.stderr));
        assert!(
            line.contains("weights/fake.gguf") && line.contains("GGUF magic"),
            "{line}"
        );
    }
    assert!(!env.db().exists(), "bad input writes no database");
}

/// A dataset path that is a FIFO would block `validate` forever: it is refused as not a
/// regular file, with the place in the spec.
#[tokio::test]
async fn dataset_that_is_a_fifo() {
    let env = Env::without_server();
    let made = std::process::Command::new("mkfifo")
        .arg(env.path("data.jsonl"))
        .status()
        .unwrap();
    assert!(made.success());
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(1);
    assert!(
        out.stderr.lines().any(|l| l.starts_with("spec.yaml:4:9:")
            && l.contains("data.jsonl")
            && l.contains("not a regular file")),
        "{}",
        out.stderr
    );
}

/// "Billion laughs": nine levels of nine aliases in a few hundred bytes. Refused at the alias
/// that crosses the bound, long before memory runs out.
#[tokio::test]
async fn yaml_alias_bomb() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        let list = vec![format!("*a{}", level - 1); 9].join(", ");
        bomb.push_str(&format!("a{level}: &a{level} [{list}]\n"));
    }
    assert!(bomb.len() < 600, "{}", bomb.len());
    let env = Env::without_server();
    env.write("spec.yaml", &bomb);
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains("spec.yaml:5:") && out.stderr.contains("more than 10000 nodes"),
        "{}",
        out.stderr
    );
}

/// `--db` pointed at something that is not an orchestrator database is the user's mistake
/// (exit 1, saying what the file is), and the file is left as it was: read commands open the
/// store read-only and never migrate, and `run` refuses before adding a table.
#[tokio::test]
async fn a_db_that_is_not_ours_is_refused_and_left_alone() {
    let env = Env::without_server();
    env.write_dataset(4);
    env.write_spec(&SpecOptions::default());
    // A SQLite file of another program (one table, `notes`, and one row).
    let notes = env.path("notes.db");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/other-program.sqlite"
    );
    std::fs::copy(fixture, &notes).unwrap();
    let text = env.write("notes.txt", &"just some words, not a database\n".repeat(40));
    for db in [&notes, &text] {
        let before = std::fs::read(db).unwrap();
        let db = db.to_str().unwrap();
        for args in [
            &["leaderboard", "--db", db][..],
            &["runs", "--db", db],
            &["report", "--db", db],
            &["run", "spec.yaml", "--db", db],
        ] {
            let out = env.run(args).await;
            out.expect_code(1);
            assert!(out.stderr.contains(db), "names the file: {}", out.stderr);
        }
        assert_eq!(std::fs::read(db).unwrap(), before, "{db} is unchanged");
    }
    let out = env.run(&["runs", "--db", notes.to_str().unwrap()]).await;
    assert!(
        out.stderr.contains("not an orchestrator database"),
        "{}",
        out.stderr
    );
    // A folder that cannot be made (its parent is a file) is the user's to fix too.
    let under_file = text.join("x.db");
    let out = env
        .run(&["run", "spec.yaml", "--db", under_file.to_str().unwrap()])
        .await;
    out.expect_code(1);
}

/// `--db` with a URL of a scheme this version cannot open is refused (exit 1, naming the scheme
/// and what is supported, never the URL's password) instead of becoming a file name; `sqlite:`
/// URLs name files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_url_of_another_scheme_is_refused() {
    let env = Env::without_server();
    env.write_dataset(8);
    env.write_spec(&SpecOptions::default());
    for url in ["postgres://me:s3cret@localhost/orch", "mysql://h/d"] {
        let out = env.run(&["runs", "--db", url]).await;
        out.expect_code(1);
        assert!(
            out.stderr.contains("unsupported URL scheme"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("sqlite:"), "{}", out.stderr);
        assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    }
    let mut cmd = env.command(&["runs"]);
    cmd.env("ORCHESTRATOR_DB", "postgresql://u:pw@h/d");
    let out = cmd.output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "ORCHESTRATOR_DB is read the same way"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pw@"));
    assert!(
        !env.path("postgres:").exists(),
        "no folder named after the URL"
    );
    let out = env.run(&["runs", "--db", "sqlite:missing.db"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("missing.db"), "{}", out.stderr);
}
