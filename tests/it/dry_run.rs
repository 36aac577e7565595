//! `--dry-run` prints the arms, items and estimated cost, and neither calls the server nor
//! creates the database.

use std::time::Duration;

use crate::support::{Env, SpecOptions, yes_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_estimates_and_spends_nothing() {
    let env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.write_dataset(10);
    env.write_spec(&SpecOptions {
        budget: Some(5.0),
        ..SpecOptions::default()
    });
    let out = env.run(&["run", "spec.yaml", "--dry-run"]).await;
    out.expect_code(0);
    assert_eq!(env.server().requests(), 0);
    assert!(!env.db().exists(), "a dry run writes no database");
    for expected in [
        "plain@fake",
        "polite@fake",
        "estimated cost",
        "budget: $5.00",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in {}",
            out.stdout
        );
    }
}
