//! What the binary writes stays safe when what it reads is hostile: answers and dataset ids with
//! terminal escape sequences, bidi overrides, HTML and spreadsheet formulas are shown escaped on
//! the terminal and escaped for Markdown and CSV; `report --html` never replaces the database or
//! a file that is not an earlier report; ids that would name folders outside `.orchestrator/`
//! are refused by `validate`; and a closed stdout (`| head -1`) ends every command quietly.

use std::process::Stdio;

use testserver::{Fault, FaultPlan, ServerConfig};

use crate::support::{Env, SpecOptions, yes_server};

/// Clears the screen and sets the window title, as an answer or an id might.
const ESCAPES: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}";
/// A right-to-left override, which makes the text after it display reversed.
const BIDI: &str = "\u{202e}";

/// Four items: `<q1>`'s id has a bidi override and `<q2>`'s terminal escapes; the `polite` arm
/// gets a hostile answer on `<q1>` and a formula on `<q3>`; `<q2>` always fails with a 400.
async fn hostile_run() -> Env {
    let hostile_answer = format!("{ESCAPES}<script>alert(1)</script> | no");
    let env = Env::with_server(ServerConfig {
        rules: vec![
            ("Please answer: <q1>".into(), hostile_answer),
            (
                "Please answer: <q3>".into(),
                "=HYPERLINK(\"http://x\")".into(),
            ),
        ],
        default_answers: vec!["yes".into()],
        faults: FaultPlan::none().always("<q2>", Fault::BadRequest),
        ..ServerConfig::default()
    })
    .await;
    let ids = [
        "item-0".to_string(),
        format!("item-1{BIDI}lmth.exe"),
        format!("item-2{ESCAPES}"),
        "item-3".to_string(),
    ];
    let rows: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let row = serde_json::json!({"id": id, "text": format!("<q{i}> is this fine?"), "label": "yes"});
            format!("{row}\n")
        })
        .collect();
    env.write("data.jsonl", &rows);
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(3);
    assert_raw_free(&out.stderr);
    let failed: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("failed:"))
        .collect();
    assert!(
        failed
            .iter()
            .any(|l| l.contains(r"item item-2\u{1b}[2J\u{1b}]0;pwned\u{7}: ")),
        "{}",
        out.stderr
    );
    env
}

/// No escape character, bell or bidi override reaches the terminal as itself.
#[track_caller]
fn assert_raw_free(text: &str) {
    for c in ['\u{1b}', '\u{7}', '\u{202e}', '\u{9b}'] {
        assert!(!text.contains(c), "{c:?} printed raw in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_shown_escaped_on_the_terminal_and_in_markdown_and_csv() {
    let env = hostile_run().await;
    let args = ["compare", "plain@fake", "polite@fake"];

    let table = env.run(&args).await;
    table.expect_code(0);
    assert_raw_free(&table.stdout);
    assert!(
        table.stdout.contains(r"item-1\u{202e}lmth.exe"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains(r"\u{1b}[2J\u{1b}]0;pwned\u{7}"),
        "{}",
        table.stdout
    );

    let markdown = env
        .run(&[&args[..], &["--format", "markdown"]].concat())
        .await;
    markdown.expect_code(0);
    assert_raw_free(&markdown.stdout);
    assert!(!markdown.stdout.contains("<script>"), "{}", markdown.stdout);
    assert!(
        markdown
            .stdout
            .contains(r"&lt;script>alert(1)&lt;/script> \| no"),
        "{}",
        markdown.stdout
    );

    let csv = env.run(&[&args[..], &["--format", "csv"]].concat()).await;
    csv.expect_code(0);
    assert_raw_free(&csv.stdout);
    assert!(
        csv.stdout.contains(r#"'=HYPERLINK(""http://x"")"#),
        "a formula cell is guarded: {}",
        csv.stdout
    );

    for args in [
        &["leaderboard"][..],
        &["leaderboard", "--format", "markdown"],
        &["report"],
        &["report", "--format", "markdown"],
    ] {
        let out = env.run(args).await;
        out.expect_code(0);
        assert_raw_free(&out.stdout);
    }
}

/// A database with one completed run of two arms over four items.
async fn finished_run() -> Env {
    let env = Env::with_server(yes_server(std::time::Duration::ZERO)).await;
    env.write_dataset(4);
    env.write_spec(&SpecOptions::default());
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_html_replaces_only_its_own_pages() {
    let env = finished_run().await;
    let db = env.db();
    let db_bytes = std::fs::read(&db).unwrap();

    // The database itself, even with --force, and through another spelling of its path.
    for target in ["orchestrator.db", "./orchestrator.db"] {
        for force in [false, true] {
            let mut args = vec!["report", "--html", target];
            if force {
                args.push("--force");
            }
            let out = env.run(&args).await;
            out.expect_code(1);
            assert!(out.stderr.contains("is the database"), "{}", out.stderr);
        }
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        db_bytes,
        "the database is intact"
    );
    env.run(&["runs"]).await.expect_code(0);

    // A file of someone else's is kept, unless --force.
    let notes = env.write("notes.html", "<p>my notes</p>");
    let out = env.run(&["report", "--html", "notes.html"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "<p>my notes</p>");
    let out = env
        .run(&["report", "--html", "notes.html", "--force"])
        .await;
    out.expect_code(0);
    assert!(::report::is_report_html(&std::fs::read(&notes).unwrap()));

    // A new file, then the same file again: an earlier report is replaced without asking.
    env.run(&["report", "--html", "page.html"])
        .await
        .expect_code(0);
    env.run(&["report", "--html", "page.html"])
        .await
        .expect_code(0);
    assert!(::report::is_report_html(
        &std::fs::read(env.path("page.html")).unwrap()
    ));

    // A folder is not a file to write.
    std::fs::create_dir(env.path("folder")).unwrap();
    let out = env.run(&["report", "--html", "folder", "--force"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_ids_that_would_leave_the_artifacts_folder() {
    let env = Env::without_server();
    env.write_dataset(8);
    env.write_spec(&SpecOptions {
        extra: "finetunes:\n  - { id: ../../../../x, base_model: smollm2-135m-instruct, prompt: plain }\n  - { id: /abs/path, base_model: smollm2-135m-instruct, prompt: plain }\n".into(),
        ..SpecOptions::default()
    });
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(1);
    for id in ["../../../../x", "/abs/path"] {
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(&format!("invalid id `{id}`")))
            .unwrap_or_else(|| panic!("no error for {id}: {}", out.stderr));
        let place = line.split(": ").next().unwrap();
        let mut parts = place.rsplitn(3, ':');
        let (col, row, file) = (parts.next(), parts.next(), parts.next());
        assert!(file.is_some_and(|f| f.ends_with("spec.yaml")), "{line}");
        assert!(
            row.unwrap().parse::<u32>().is_ok() && col.unwrap().parse::<u32>().is_ok(),
            "{line}"
        );
    }
    assert!(!env.path(".orchestrator").exists());
}

/// Every command that prints, with its stdout a pipe whose reader is already gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_every_command_quietly() {
    let env = finished_run().await;
    let commands: [&[&str]; 10] = [
        &["runs"],
        &["leaderboard"],
        &["leaderboard", "--format", "json"],
        &["compare", "plain@fake", "polite@fake"],
        &["report"],
        &["report", "--format", "markdown"],
        &["validate", "spec.yaml"],
        &["run", "spec.yaml", "--dry-run"],
        &["run", "spec.yaml"],
        &["models", "list"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = env.command(args);
        // `spawn`, not `output`, which would replace stdout with a pipe of its own.
        cmd.stdout(Stdio::from(writer));
        let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
