//! `run --batch` end to end, the binary against the test server's Batch API: every hosted item
//! answered through batches at half the real-time price with no real-time call; failed and
//! expired lines asked once more in real time, or recorded failed, as `batch.on_failure` says;
//! a lost create response adopted instead of sent again; and a process killed (or stopped with
//! Ctrl-C) while its batches run leaves them for the rerun to collect, with no item submitted
//! twice.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testserver::{BatchConfig, ServerConfig};

use crate::support::{Env, SpecOptions, yes_server};

const ITEMS: usize = 12;
const FAST_POLL: &str = "batch: { poll_seconds: 0.05, max_poll_seconds: 0.2 }\n";

async fn env_with(batch: BatchConfig, extra: &str) -> Env {
    let env = Env::with_server(ServerConfig {
        batch,
        ..yes_server(Duration::ZERO)
    })
    .await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        extra: extra.to_owned(),
        ..SpecOptions::default()
    });
    env
}

/// Every item of both arms went into exactly one batch line per arm.
fn submitted_once(env: &Env) {
    for i in 0..ITEMS {
        let id = format!("item-{i}");
        assert_eq!(env.server().batch_lines_for(&id), 2, "{id}: once per arm");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_answers_every_item_at_half_the_real_time_price() {
    let env = env_with(BatchConfig::default(), FAST_POLL).await;
    let out = env.run(&["run", "spec.yaml", "--batch"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("sent batch"), "{}", out.stderr);
    assert_eq!(env.server().requests(), 0, "no real-time call");
    assert_eq!(env.server().batches_created(), 2, "one batch per arm");
    submitted_once(&env);
    let batched = env.row(Some(1), "plain@fake").await;
    assert_eq!(
        (batched["n"].as_u64(), batched["errors"].as_u64()),
        (Some(ITEMS as u64), Some(0))
    );
    let quality = batched["quality"].as_f64().unwrap();
    assert!(
        (quality - 10.0 / 12.0).abs() < 1e-12,
        "every answer scored: {quality}"
    );

    env.run(&["run", "spec.yaml", "--new", "--no-cache"])
        .await
        .expect_code(0);
    let realtime = env.row(Some(2), "plain@fake").await;
    let (b, r) = (
        batched["cost_usd"].as_f64().unwrap(),
        realtime["cost_usd"].as_f64().unwrap(),
    );
    assert!(
        r > 0.0 && (b - r / 2.0).abs() < 1e-12,
        "batch {b} vs real time {r}"
    );

    // A rerun finds nothing left, and sends nothing.
    env.run(&["run", "spec.yaml", "--batch"])
        .await
        .expect_code(0);
    assert_eq!(env.server().batches_created(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_lines_are_asked_once_in_real_time_or_left_failed() {
    let failing = BatchConfig {
        failing_lines: vec!["<q3>".into(), "<q7>".into()],
        ..BatchConfig::default()
    };
    let env = env_with(failing.clone(), FAST_POLL).await;
    env.run(&["run", "spec.yaml", "--batch"])
        .await
        .expect_code(0);
    assert_eq!(
        env.server().requests(),
        4,
        "two items of two arms, in real time"
    );
    assert_eq!(env.server().requests_for("Q: <q3> is this fine?"), 1);
    assert_eq!(env.row(Some(1), "plain@fake").await["errors"], 0);

    let leave = "batch: { on_failure: fail, poll_seconds: 0.05, max_poll_seconds: 0.2 }\n";
    let env = env_with(failing, leave).await;
    let out = env.run(&["run", "spec.yaml", "--batch"]).await;
    out.expect_code(3);
    assert_eq!(env.server().requests(), 0);
    assert_eq!(env.row(Some(1), "plain@fake").await["errors"], 2);

    let expiring = BatchConfig {
        expire_after: Some(5),
        ..BatchConfig::default()
    };
    let env = env_with(expiring, FAST_POLL).await;
    let out = env.run(&["run", "spec.yaml", "--batch"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("expired"), "{}", out.stderr);
    assert_eq!(env.server().requests(), 2 * (ITEMS as u64 - 5));
    assert_eq!(env.row(Some(1), "polite@fake").await["n"], ITEMS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_response_is_adopted_not_sent_again() {
    let lossy = BatchConfig {
        lose_create_responses: 1,
        ..BatchConfig::default()
    };
    let env = env_with(lossy, FAST_POLL).await;
    env.run(&["run", "spec.yaml", "--batch"])
        .await
        .expect_code(0);
    assert_eq!(env.server().batches_created(), 2);
    submitted_once(&env);
    assert_eq!(env.server().requests(), 0);
}

/// Starts `run --batch`, waits until both arms' batches exist, and sends `signal`.
async fn stop_while_waiting(env: &Env, signal: Signal) -> Option<i32> {
    let mut child = env
        .command(&["run", "spec.yaml", "--batch"])
        .spawn()
        .unwrap();
    for _ in 0..2000 {
        if env.server().batches_created() >= 2 || child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before its batches did"
    );
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, signal).unwrap();
    child.wait().await.unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_its_batches_run_is_collected_by_the_rerun() {
    let slow = BatchConfig {
        completion: Duration::from_secs(2),
        ..BatchConfig::default()
    };
    let env = env_with(slow.clone(), FAST_POLL).await;
    assert_eq!(stop_while_waiting(&env, Signal::SIGKILL).await, None);
    env.run(&["run", "spec.yaml", "--batch"])
        .await
        .expect_code(0);
    assert_eq!(
        env.server().batches_created(),
        2,
        "the rerun sent no new batch"
    );
    submitted_once(&env);
    assert_eq!(env.row(Some(1), "plain@fake").await["n"], ITEMS as u64);

    // Ctrl-C stops the waiting; a plain rerun collects without a real-time call.
    let env = env_with(slow, FAST_POLL).await;
    assert_eq!(stop_while_waiting(&env, Signal::SIGINT).await, Some(130));
    let runs = env.run(&["runs"]).await;
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    assert_eq!(env.server().requests(), 0);
    assert_eq!(env.server().batches_created(), 2);
    assert_eq!(env.row(Some(1), "polite@fake").await["n"], ITEMS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_with_batch_estimates_at_batch_rates() {
    let env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions {
        price: (1000.0, 2000.0),
        ..SpecOptions::default()
    });
    let total = |stdout: &str| -> f64 {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("estimated cost (upper bound, before cache hits): $"))
            .unwrap_or_else(|| panic!("no estimate in {stdout}"));
        line.replace(',', "").parse().unwrap()
    };
    let realtime = env.run(&["run", "spec.yaml", "--dry-run"]).await;
    let batched = env.run(&["run", "spec.yaml", "--dry-run", "--batch"]).await;
    batched.expect_code(0);
    assert!(
        batched.stdout.contains("at batch rates"),
        "{}",
        batched.stdout
    );
    let (r, b) = (total(&realtime.stdout), total(&batched.stdout));
    assert!(
        r > 0.0 && (b - r / 2.0).abs() <= 0.01 * r,
        "batch {b} vs real time {r}"
    );
    assert_eq!(env.server().batches_created(), 0);
}

/// Two arms of one provider whose prompts render alike ask one request per item: the batch
/// carries it once, and the second arm follows its answer at no cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arms_asking_the_same_request_share_one_batch_line() {
    let env = env_with(BatchConfig::default(), FAST_POLL).await;
    let spec = std::fs::read_to_string(env.path("spec.yaml")).unwrap();
    let twin = "  - id: twin\n    template: \"Q: {{text}}\"\n";
    let spec = spec.replacen("  - id: polite\n", &format!("{twin}  - id: polite\n"), 1);
    env.write("spec.yaml", &spec);
    env.run(&["run", "spec.yaml", "--batch"])
        .await
        .expect_code(0);
    submitted_once(&env);
    assert_eq!(
        env.server().batches_created(),
        2,
        "plain and polite; twin sent nothing"
    );
    let twin = env.row(Some(1), "twin@fake").await;
    assert_eq!(
        (twin["n"].as_u64(), twin["errors"].as_u64()),
        (Some(ITEMS as u64), Some(0))
    );
    assert_eq!(twin["cost_usd"], 0.0, "{twin}");
    assert_eq!(
        twin["quality"],
        env.row(Some(1), "plain@fake").await["quality"]
    );
}

/// A server without a Batch API (404 on `/v1/files`, as vLLM's and llama.cpp's servers answer):
/// nothing was made, so every item is asked in real time instead, once, with a note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_batch_api_falls_back_to_real_time_calls() {
    let none = BatchConfig {
        unsupported: true,
        ..BatchConfig::default()
    };
    let env = env_with(none, FAST_POLL).await;
    let out = env.run(&["run", "spec.yaml", "--batch"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("could not be sent"), "{}", out.stderr);
    assert!(out.stderr.contains("404"), "{}", out.stderr);
    assert_eq!(
        env.server().requests(),
        2 * ITEMS as u64,
        "each item once, in real time"
    );
    assert_eq!(env.row(Some(1), "plain@fake").await["n"], ITEMS as u64);
}
