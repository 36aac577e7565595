//! Several `run` processes on one database: two runs of one spec never both do the work (the
//! second is told who holds the run), a run whose process was killed is taken over by the next
//! one, and two different specs at once both complete without repeating a request.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Env, Output, SpecOptions, repeated_prompts, yes_server};

const ITEMS: usize = 24;

async fn wait(child: tokio::process::Child) -> Output {
    let out = child.wait_with_output().await.unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits (bounded) until the server has seen `n` requests.
async fn until_requests(env: &Env, n: u64) {
    for _ in 0..3000 {
        if env.server().requests() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never saw {n} requests");
}

fn spec_options() -> SpecOptions {
    SpecOptions {
        max_concurrency: 2,
        two_prompts: false,
        ..SpecOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_the_same_spec_is_refused_while_the_first_works() {
    let env = Env::with_server(yes_server(Duration::from_millis(100))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&spec_options());
    let first = env.command(&["run", "spec.yaml"]).spawn().unwrap();
    until_requests(&env, 2).await;
    let second = env.run(&["run", "spec.yaml"]).await;
    second.expect_code(1);
    assert!(
        second.stderr.contains("run 1 is in progress in process")
            && second.stderr.contains("on this host")
            && second.stderr.contains("--takeover"),
        "{}",
        second.stderr
    );
    wait(first).await.expect_code(0);
    assert_eq!(repeated_prompts(env.server()), 0);
    assert_eq!(
        env.server().requests(),
        ITEMS as u64,
        "nothing was paid twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_taken_over_by_the_next_one() {
    let env = Env::with_server(yes_server(Duration::from_millis(100))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&spec_options());
    let mut first = env.command(&["run", "spec.yaml"]).spawn().unwrap();
    until_requests(&env, 4).await;
    let pid = Pid::from_raw(i32::try_from(first.id().unwrap()).unwrap());
    kill(pid, Signal::SIGKILL).unwrap();
    first.wait().await.unwrap();

    // Stored as `running`, but its owner is gone: readers see it as interrupted, and the items
    // it never asked are unanswered, not errors.
    let runs = env.run(&["runs"]).await;
    runs.expect_code(0);
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);
    let board = env.run(&["leaderboard", "--format", "json"]).await;
    board.expect_code(0);
    assert!(
        board.stderr.contains("run 1 is interrupted, not finished"),
        "{}",
        board.stderr
    );
    let rows: serde_json::Value = serde_json::from_str(&board.stdout).unwrap();
    let unanswered = rows[0]["unanswered"].as_u64().unwrap();
    assert!(unanswered > 0, "{rows}");
    assert_eq!(rows[0]["errors"], 0, "{rows}");

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("resuming run 1"), "{}", out.stderr);
    assert_eq!(env.row(Some(1), "plain@fake").await["n"], ITEMS as u64);
    assert_eq!(env.row(Some(1), "plain@fake").await["errors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_specs_at_once_on_one_database_both_complete() {
    let env = Env::with_server(yes_server(Duration::from_millis(20))).await;
    env.write_dataset(ITEMS);
    let spec = env.write_spec(&spec_options());
    let other = std::fs::read_to_string(&spec)
        .unwrap()
        .replacen("name: e2e", "name: e2e-other", 1)
        .replacen(
            "template: \"Q: {{text}}\"",
            "template: \"Other Q: {{text}}\"",
            1,
        );
    env.write("other.yaml", &other);
    let a = env.command(&["run", "spec.yaml"]).spawn().unwrap();
    let b = env.command(&["run", "other.yaml"]).spawn().unwrap();
    let (a, b) = tokio::join!(wait(a), wait(b));
    a.expect_code(0);
    b.expect_code(0);
    assert_eq!(env.server().requests(), 2 * ITEMS as u64);
    assert_eq!(repeated_prompts(env.server()), 0);
}
