//! Hosted prompt arms: every item answered, scored and stored; concurrency bounded by the
//! provider; resume after a cancel answers only what is left; the budget stops scheduling.

use std::time::Duration;

use domain::RunStatus;
use runner::Event;
use testserver::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::support::{Bench, hosted_spec};

fn server_config(latency_ms: u64) -> ServerConfig {
    ServerConfig {
        latency: Duration::from_millis(latency_ms),
        default_answers: vec!["yes".into()],
        ..ServerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_of_every_arm_is_answered_scored_and_stored() {
    let server = testserver::spawn(server_config(2)).await.unwrap();
    let b = Bench::new().await;
    b.dataset(50);
    let plan = b.plan(&hosted_spec(&server.base_url(), 5, ""));

    let (summary, events) = b.run(&plan, b.options(), CancellationToken::new()).await;
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.answered, 100);
    assert_eq!(summary.failed_items, 0);
    assert!(!summary.resumed);
    assert_eq!(server.requests(), 100);
    assert!(server.max_in_flight() <= 5, "{}", server.max_in_flight());

    let results = b.store.results(summary.run_id).await.unwrap();
    assert_eq!(results.calls.len(), 100);
    assert_eq!(results.scores.len(), 100, "one scorer");
    assert!(results.scores.iter().all(|s| s.value == 1.0));
    assert!(
        results
            .calls
            .iter()
            .all(|c| c.error.is_none() && c.cost_usd > 0.0)
    );
    assert!(matches!(
        events.first(),
        Some(Event::RunStarted { resumed: false, .. })
    ));
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished {
            status: RunStatus::Completed,
            failed_items: 0,
            ..
        })
    ));
    let spent = b.store.run_cost(summary.run_id).await.unwrap();
    assert!((summary.spent_usd - spent).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_resumes_with_only_the_items_left() {
    let server = testserver::spawn(server_config(50)).await.unwrap();
    let b = Bench::new().await;
    b.dataset(40);
    let plan = b.plan(&hosted_spec(&server.base_url(), 4, ""));
    let mut opts = b.options();
    opts.arms = Some(vec!["plain@fake".into()]);

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watcher = async {
        while server.requests() < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        trigger.cancel();
    };
    let ((first, _), ()) = tokio::join!(b.run(&plan, opts.clone(), cancel), watcher);
    assert_eq!(first.status, RunStatus::Interrupted);
    assert!(first.answered >= 8 && first.answered < 40, "{first:?}");
    assert_eq!(first.answered + first.unanswered, 40);
    let asked_before = server.requests();
    assert_eq!(
        asked_before, first.answered,
        "in-flight calls finished and were stored"
    );

    let (second, events) = b.run(&plan, opts, CancellationToken::new()).await;
    assert!(second.resumed);
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(second.answered, 40 - first.answered);
    assert_eq!(server.requests(), 40, "no item asked twice");
    let started = events.iter().find_map(|e| match e {
        Event::RunStarted { arms, .. } => Some(arms.clone()),
        _ => None,
    });
    assert_eq!(started.unwrap()[0].done, first.answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_stops_scheduling_before_it_is_exceeded() {
    let server = testserver::spawn(server_config(1)).await.unwrap();
    let b = Bench::new().await;
    b.dataset(100);
    // $1000 per million tokens: each call costs about half a cent.
    let plan = b.plan(&hosted_spec(
        &server.base_url(),
        3,
        "budget: { max_cost_usd: 0.1 }",
    ));
    let (summary, events) = b.run(&plan, b.options(), CancellationToken::new()).await;
    assert_eq!(summary.status, RunStatus::BudgetExceeded);
    assert!(summary.spent_usd <= 0.1, "{summary:?}");
    assert!(
        summary.answered > 0 && summary.answered < 200,
        "{summary:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Note(n) if n.contains("budget reached")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_estimates_without_touching_the_store() {
    let b = Bench::new().await;
    b.dataset(10);
    let plan = b.plan(&hosted_spec("http://127.0.0.1:9/v1", 3, ""));
    let mut opts = b.options();
    opts.dry_run = true;
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let outcome = runner::run(&plan, &b.store, opts, CancellationToken::new(), tx)
        .await
        .unwrap();
    let runner::RunOutcome::Planned(estimate) = outcome else {
        panic!("expected an estimate")
    };
    assert_eq!(estimate.arms.len(), 2);
    assert!(estimate.arms.iter().all(|a| a.items == 10));
    assert!(estimate.total_usd > 0.0);
    assert!(b.store.list_runs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_arms_are_bad_input() {
    let b = Bench::new().await;
    b.dataset(3);
    let plan = b.plan(&hosted_spec("http://127.0.0.1:9/v1", 3, ""));
    let mut opts = b.options();
    opts.arms = Some(vec!["nope".into()]);
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let err = runner::run(&plan, &b.store, opts, CancellationToken::new(), tx)
        .await
        .unwrap_err();
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("plain@fake"), "{err}");
}
