//! Ctrl-C or SIGTERM mid-run: the binary stops scheduling, lets calls in flight finish, marks the
//! run interrupted and exits 130; the same command then resumes and completes the run without
//! asking the server for any item twice. A second Ctrl-C abandons the calls in flight but still
//! stores what was answered. `--new` starts afresh.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Env, Output, SpecOptions, repeated_prompts, run_id, yes_server};

const ITEMS: usize = 30;
const CONCURRENCY: usize = 3;

/// Starts `run`, sends SIGINT once the server has seen `after` requests, and waits for the exit.
async fn interrupt_after(env: &Env, after: u64) -> Output {
    signal_after(env, after, &[Signal::SIGINT]).await
}

/// Starts `run`, sends `signals` once the server has seen `after` requests (each after the
/// binary has said it is stopping, so no two are merged into one), and waits for the exit.
async fn signal_after(env: &Env, after: u64, signals: &[Signal]) -> Output {
    use tokio::io::{AsyncBufReadExt, BufReader};
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
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for (i, signal) in signals.iter().enumerate() {
        kill(pid, *signal).unwrap();
        if i + 1 == signals.len() {
            break;
        }
        while let Some(line) = stderr.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("stopping") {
                break;
            }
        }
    }
    while let Some(line) = stderr.next_line().await.unwrap() {
        seen.push_str(&line);
        seen.push('\n');
    }
    let out = child.wait_with_output().await.unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: seen,
    }
}

/// After SIGTERM (what `timeout`, CI cancellation and container stops send) every answer the
/// server gave is stored: the rerun asks for no item twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stores_every_answer_and_the_rerun_repeats_nothing() {
    let env = Env::with_server(yes_server(Duration::from_millis(150))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        max_concurrency: CONCURRENCY,
        two_prompts: false,
        ..SpecOptions::default()
    });
    let out = signal_after(&env, 6, &[Signal::SIGTERM]).await;
    out.expect_code(130);
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    let at_stop = env.server().requests();
    assert!(at_stop < ITEMS as u64, "the run was not cut short");
    let runs = env.run(&["runs"]).await;
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);

    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    let rows = env.leaderboard(Some(1)).await;
    assert_eq!(rows[0]["n"], ITEMS as u64);
    assert_eq!(rows[0]["errors"], 0);
    assert_eq!(repeated_prompts(env.server()), 0, "a paid answer was lost");
    assert_eq!(env.server().requests(), ITEMS as u64);
}

/// A second Ctrl-C stops at once, without waiting for the calls in flight, yet the run is
/// stored as interrupted with what was answered, and resumes; only calls that were in flight at
/// the second signal can be asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_abandons_calls_in_flight_but_keeps_the_answers() {
    let env = Env::with_server(yes_server(Duration::from_millis(400))).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        max_concurrency: CONCURRENCY,
        two_prompts: false,
        ..SpecOptions::default()
    });
    let out = signal_after(&env, 7, &[Signal::SIGINT, Signal::SIGINT]).await;
    out.expect_code(130);
    assert!(out.stderr.contains("stopping now"), "{}", out.stderr);
    let runs = env.run(&["runs"]).await;
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);
    let answered_before: u64 = env.leaderboard(Some(1)).await[0]["n"].as_u64().unwrap();
    assert!(
        answered_before >= 3,
        "answers before the signals were stored: {answered_before}"
    );

    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    assert_eq!(env.row(Some(1), "plain@fake").await["n"], ITEMS as u64);
    let repeated = repeated_prompts(env.server());
    assert!(repeated <= CONCURRENCY, "{repeated} items were asked twice");
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
    // An unfinished run is reported as such, and CI's bar has its own code for it.
    let report = env.run(&["report", "--fail-under"]).await;
    report.expect_code(5);
    assert!(
        report.stderr.contains("run 1 is interrupted, not finished")
            && report.stderr.contains("provisional"),
        "{}",
        report.stderr
    );
    let board = env.run(&["leaderboard"]).await;
    board.expect_code(0);
    assert!(board.stderr.contains("not finished"), "{}", board.stderr);

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("resuming run 1"), "{}", out.stderr);
    let report = env.run(&["report"]).await;
    assert!(!report.stderr.contains("not finished"), "{}", report.stderr);
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
