//! `budget.max_cost_usd`: the run stops scheduling before a call could take spending past the
//! budget, says so, and exits 0 with the run marked `budget_exceeded`.

use std::time::Duration;

use crate::support::{Env, SpecOptions, yes_server};

const ITEMS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_stops_the_run_before_it_is_exceeded() {
    let env = Env::with_server(yes_server(Duration::from_millis(5))).await;
    env.write_dataset(ITEMS);
    // $10,000 per million tokens: a call costs a few cents; $0.50 buys a handful of calls.
    let budget = 0.5;
    env.write_spec(&SpecOptions {
        price: (10_000.0, 10_000.0),
        budget: Some(budget),
        two_prompts: false,
        max_concurrency: 2,
        ..SpecOptions::default()
    });

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(out.stderr.contains("budget reached"), "{}", out.stderr);
    let requests = env.server().requests();
    assert!(requests > 0, "some calls fit in the budget");
    assert!(
        requests < ITEMS as u64,
        "the budget stopped the run: {requests} requests"
    );

    let runs = env.run(&["runs"]).await;
    assert!(runs.stdout.contains("budget_exceeded"), "{}", runs.stdout);
    let rows = env.leaderboard(None).await;
    let spent: f64 = rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    assert!(spent > 0.0 && spent <= budget, "spent {spent} of {budget}");
}
