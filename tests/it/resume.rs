//! Ctrl-C mid-run: the binary stops scheduling, lets calls in flight finish, marks the run
//! interrupted and exits 130; the same command then resumes and completes the run without asking
//! the server for any item twice (beyond calls that were in flight). `--new` starts afresh.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Env, Output, SpecOptions, repeated_prompts, run_id, yes_server};

const ITEMS: usize = 30;
const CONCURRENCY: usize = 3;

/// Starts `run`, sends SIGINT once the server has seen `after` requests, and waits for the exit.
async fn interrupt_after(env: &Env, after: u64) -> Output {
    let mut child = env.command(&["run", "spec.yaml"]).spawn().unwrap();
    // Poll the server until the run is visibly under way (bounded, so a broken build fails
    // instead of hanging).
    for _ in 0..2000 {
        if env.server().requests() >= after || child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before it could be interrupted"
    );
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    let out = child.wait_with_output().await.unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_then_rerun_resumes_without_repeating_items() {
    let env = Env::with_server(yes_server(Duration::from_millis(150))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        max_concurrency: CONCURRENCY,
        two_prompts: false,
        ..SpecOptions::default()
    });

    let out = interrupt_after(&env, 6).await;
    out.expect_code(130);
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    let at_interrupt = env.server().requests();
    assert!(at_interrupt < ITEMS as u64, "the run was not cut short");
    let runs = env.run(&["runs"]).await;
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("resuming run 1"), "{}", out.stderr);
    assert_eq!(run_id(&out.stdout), 1);
    let rows = env.leaderboard(Some(1)).await;
    assert_eq!(rows[0]["n"], ITEMS as u64);
    assert_eq!(rows[0]["errors"], 0);
    // Calls in flight at the interrupt were allowed to finish and were stored, so at most those
    // could have been asked again.
    let repeated = repeated_prompts(env.server());
    assert!(repeated <= CONCURRENCY, "{repeated} items were asked twice");
    assert!(env.server().requests() <= (ITEMS + CONCURRENCY) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_starts_a_fresh_run_instead_of_resuming() {
    let env = Env::with_server(yes_server(Duration::from_millis(150))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        max_concurrency: CONCURRENCY,
        two_prompts: false,
        ..SpecOptions::default()
    });
    interrupt_after(&env, 3).await.expect_code(130);

    let out = env.run(&["run", "spec.yaml", "--new"]).await;
    out.expect_code(0);
    assert_eq!(run_id(&out.stdout), 2);
    assert!(out.stderr.contains("starting run 2"), "{}", out.stderr);
    assert_eq!(env.row(Some(2), "plain@fake").await["n"], ITEMS as u64);
    let runs = env.run(&["runs"]).await;
    assert!(
        runs.stdout.contains("interrupted"),
        "run 1 stays interrupted: {}",
        runs.stdout
    );
}
