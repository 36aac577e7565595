//! The response cache through the runner: a new run of the same plan is answered from it without
//! a request, and a prompt that occurs more than once inside one run is paid for once, whether
//! its copies are close together (parked behind the first) or further apart than one look-ahead
//! chunk (answered from the first's committed or not-yet-committed answer).

use std::time::Duration;

use domain::RunStatus;
use testserver::{Fault, FaultPlan, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::support::{Bench, hosted_spec};

/// `n` rows whose texts repeat every `distinct` rows: `{id: item-I, text: "<qJ> ?"}`, J = I mod
/// `distinct`.
fn repeating_dataset(b: &Bench, n: usize, distinct: usize) {
    let mut s = String::new();
    for i in 0..n {
        let j = i % distinct;
        s.push_str(&format!(
            "{{\"id\":\"item-{i}\",\"text\":\"<q{j}> ?\",\"label\":\"yes\"}}\n"
        ));
    }
    std::fs::write(b.path("data.jsonl"), s).unwrap();
}

fn yes_server(latency_ms: u64, faults: FaultPlan) -> ServerConfig {
    ServerConfig {
        latency: Duration::from_millis(latency_ms),
        default_answers: vec!["yes".into()],
        faults,
        ..ServerConfig::default()
    }
}

/// Checks a finished run's calls: `n` per arm, `paid` of them not from the cache.
async fn check_calls(b: &Bench, run: i64, n: usize, paid: usize) {
    let results = b.store.results(run).await.unwrap();
    assert_eq!(results.calls.len(), n);
    assert!(results.calls.iter().all(|c| c.error.is_none()));
    let hits: Vec<_> = results.calls.iter().filter(|c| c.cache_hit).collect();
    assert_eq!(n - hits.len(), paid);
    assert!(
        hits.iter()
            .all(|c| c.cost_usd == 0.0 && c.response.as_deref() == Some("yes"))
    );
    assert_eq!(results.scores.len(), n);
    assert!(results.scores.iter().all(|s| s.value == 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_of_the_same_plan_is_answered_from_the_cache() {
    let server = testserver::spawn(yes_server(1, FaultPlan::none()))
        .await
        .unwrap();
    let b = Bench::new().await;
    b.dataset(40);
    let plan = b.plan(&hosted_spec(&server.base_url(), 8, ""));
    let (first, _) = b.run(&plan, b.options(), CancellationToken::new()).await;
    assert_eq!(server.requests(), 80);

    let mut opts = b.options();
    opts.new = true;
    let (second, _) = b.run(&plan, opts, CancellationToken::new()).await;
    assert_ne!(second.run_id, first.run_id);
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(second.answered, 80);
    assert_eq!(server.requests(), 80, "no request the second time");
    check_calls(&b, second.run_id, 80, 0).await;
    assert_eq!(second.spent_usd, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_prompt_in_one_chunk_are_asked_once() {
    let server = testserver::spawn(yes_server(20, FaultPlan::none()))
        .await
        .unwrap();
    let b = Bench::new().await;
    repeating_dataset(&b, 30, 10);
    let plan = b.plan(&hosted_spec(&server.base_url(), 4, ""));
    let (summary, _) = b.run(&plan, b.options(), CancellationToken::new()).await;
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.answered, 60);
    // Two arms with different templates: ten distinct prompts each.
    assert_eq!(server.requests(), 20);
    check_calls(&b, summary.run_id, 60, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_further_apart_than_a_chunk_are_asked_once() {
    let server = testserver::spawn(yes_server(0, FaultPlan::none()))
        .await
        .unwrap();
    let b = Bench::new().await;
    // Item i and item i + 700 share a prompt; a look-ahead chunk is 512 items.
    repeating_dataset(&b, 2100, 700);
    let plan = b.plan(&hosted_spec(&server.base_url(), 16, ""));
    let mut opts = b.options();
    opts.arms = Some(vec!["plain@fake".into()]);
    let (summary, _) = b.run(&plan, opts, CancellationToken::new()).await;
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.answered, 2100);
    assert_eq!(server.requests(), 700);
    check_calls(&b, summary.run_id, 2100, 700).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_copy_fails_the_next_is_asked_and_the_rest_share_its_answer() {
    // The first request for `<q3>` fails; no retries, so that item fails.
    let faults = FaultPlan::none().first_n("<q3>", 1, Fault::ServerError);
    let server = testserver::spawn(yes_server(20, faults)).await.unwrap();
    let b = Bench::new().await;
    repeating_dataset(&b, 30, 10);
    let spec = hosted_spec(&server.base_url(), 4, "").replace(
        "max_concurrency: 4",
        "max_concurrency: 4\n    max_retries: 0",
    );
    let plan = b.plan(&spec);
    let mut opts = b.options();
    opts.arms = Some(vec!["plain@fake".into()]);
    let (summary, _) = b.run(&plan, opts.clone(), CancellationToken::new()).await;
    assert_eq!(summary.failed_items, 1);
    assert_eq!(summary.answered, 29);
    assert_eq!(
        server.requests_for("Q: <q3> ?"),
        2,
        "the failure, then one copy"
    );
    assert_eq!(server.requests(), 11);

    // A rerun answers every item, the one that failed included, from the cache.
    let (rerun, _) = b.run(&plan, opts, CancellationToken::new()).await;
    assert_eq!(rerun.status, RunStatus::Completed);
    assert_eq!((rerun.answered, rerun.failed_items), (30, 0));
    assert_eq!(server.requests(), 11);
    check_calls(&b, rerun.run_id, 30, 0).await;
}
