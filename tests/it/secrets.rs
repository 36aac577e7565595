//! The API key never leaves the request: not in the database file, stdout, stderr (even at
//! `-vv`), any leaderboard or report format, the HTML report, or the run's artifacts — on a
//! healthy run and on a failing one whose server echoes the Authorization header back.

use std::path::Path;

use testserver::{Fault, FaultPlan, ServerConfig};

use crate::support::{Env, Output, SECRET, SpecOptions};

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "the API key leaked into {what}:\n{text}"
    );
    assert!(
        !text.contains("SECRET"),
        "part of the API key leaked into {what}:\n{text}"
    );
}

fn assert_output_clean(what: &str, out: &Output) {
    assert_clean(&format!("{what} stdout"), &out.stdout);
    assert_clean(&format!("{what} stderr"), &out.stderr);
}

/// Every file under `dir` (the database with its WAL, artifacts, reports), byte by byte.
fn assert_files_clean(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_files_clean(&path);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the API key leaked into {}", path.display());
    }
}

async fn read_everything(env: &Env) {
    for format in ["table", "json", "csv", "markdown"] {
        let out = env.run(&["leaderboard", "--format", format]).await;
        assert_output_clean(&format!("leaderboard {format}"), &out);
    }
    for format in ["text", "json", "markdown"] {
        let out = env
            .run(&["report", "--format", format, "--html", "report.html"])
            .await;
        assert_output_clean(&format!("report {format}"), &out);
    }
    assert_output_clean("runs", &env.run(&["runs"]).await);
    assert_files_clean(env.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_reaches_the_database_output_or_reports() {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        require_api_key: Some(SECRET.into()),
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(6);
    env.write_spec(&SpecOptions::default());

    let out = env.run(&["-vv", "run", "spec.yaml"]).await;
    out.expect_code(0);
    assert_output_clean("run -vv", &out);
    let log = env.server().requests_log();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|e| e.api_key_matched == Some(true)),
        "the key was sent"
    );
    read_everything(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_stays_secret_when_the_server_echoes_it_in_errors() {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        faults: FaultPlan::none()
            .always("<q1>", Fault::EchoAuthorization { status: 400 })
            .always("<q2>", Fault::EchoAuthorization { status: 500 }),
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(6);
    env.write_spec(&SpecOptions {
        max_retries: 1,
        ..SpecOptions::default()
    });

    let out = env.run(&["-vv", "run", "spec.yaml"]).await;
    out.expect_code(3);
    assert_output_clean("failing run -vv", &out);
    read_everything(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_is_not_printed() {
    let mut env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        require_api_key: Some("sk-the-right-one".into()),
        ..ServerConfig::default()
    })
    .await;
    env.api_key = Some(SECRET.into());
    env.write_dataset(3);
    env.write_spec(&SpecOptions {
        two_prompts: false,
        ..SpecOptions::default()
    });
    let out = env.run(&["-vv", "run", "spec.yaml"]).await;
    out.expect_code(3);
    assert_output_clean("unauthorised run", &out);
    assert_files_clean(env.dir.path());
}

/// A server that puts the key inside a successful answer: the answer is stored, cached and
/// reported with the key redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_echoed_inside_an_answer_is_redacted_everywhere() {
    let env = Env::with_server(ServerConfig {
        default_answers: vec!["yes".into()],
        faults: FaultPlan::none().always("<q1>", Fault::EchoKeyInAnswer),
        ..ServerConfig::default()
    })
    .await;
    env.write_dataset(6);
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["-vv", "run", "spec.yaml"]).await;
    out.expect_code(0);
    assert_output_clean("run -vv", &out);
    // Answered from the cache the second time: the cached copy is redacted too.
    let again = env.run(&["run", "spec.yaml", "--new"]).await;
    again.expect_code(0);
    assert_output_clean("cached rerun", &again);
    let compare = env
        .run(&[
            "compare",
            "plain@fake",
            "polite@fake",
            "--format",
            "markdown",
        ])
        .await;
    assert_output_clean("compare", &compare);
    read_everything(&env).await;
}

/// A key pasted where the name of its environment variable belongs, or credentials in
/// `base_url`: refused before anything is stored, and never echoed.
#[tokio::test]
async fn a_key_in_the_spec_is_refused_without_being_echoed_or_stored() {
    let env = Env::without_server();
    env.write_dataset(3);
    let spec = crate::support::spec("http://127.0.0.1:9/v1", &SpecOptions::default());
    let pasted = spec.replace(
        "api_key_env: OPENAI_API_KEY",
        &format!("api_key_env: {SECRET}-0123456789abcdef"),
    );
    let in_url = spec.replace(
        "http://127.0.0.1:9/v1",
        &format!("http://user:{SECRET}@127.0.0.1:9/v1"),
    );
    assert_ne!(pasted, spec);
    assert_ne!(in_url, spec);
    for text in [pasted, in_url] {
        env.write("spec.yaml", &text);
        for args in [&["validate", "spec.yaml"][..], &["run", "spec.yaml"]] {
            let out = env.run(args).await;
            out.expect_code(1);
            assert_output_clean(&args.join(" "), &out);
        }
        assert!(!env.db().exists(), "nothing was stored");
    }
}
