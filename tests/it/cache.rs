//! The response cache: a new run of the same spec answers from the cache (no request reaches
//! the server, and cache hits cost nothing); `--no-cache` asks the server again.

use std::time::Duration;

use crate::support::{Env, SpecOptions, yes_server};

const ITEMS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_with_new_is_served_from_the_cache_and_no_cache_bypasses_it() {
    let env = Env::with_server(yes_server(Duration::ZERO)).await;
    env.write_dataset(ITEMS);
    env.write_spec(&SpecOptions::default());

    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    let first = env.server().requests();
    assert_eq!(first, 2 * ITEMS as u64);

    env.run(&["run", "spec.yaml", "--new"]).await.expect_code(0);
    assert_eq!(
        env.server().requests(),
        first,
        "a cached run makes no requests"
    );
    let row = env.row(Some(2), "plain@fake").await;
    assert_eq!(row["n"], ITEMS as u64);
    assert_eq!(
        row["cost_usd"].as_f64().unwrap(),
        0.0,
        "cache hits cost nothing: {row}"
    );
    assert!(
        (row["quality"].as_f64().unwrap() - 0.8).abs() < 1e-9,
        "{row}"
    );

    env.run(&["run", "spec.yaml", "--new", "--no-cache"])
        .await
        .expect_code(0);
    assert_eq!(env.server().requests(), 2 * first, "--no-cache asks again");
}
