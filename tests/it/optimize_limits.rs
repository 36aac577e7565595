//! What an `optimize:` search costs is known before it runs and holds when it is cut short:
//! `--dry-run` counts its calls and their price, a dollar budget that cannot buy the smallest
//! search (4 candidates on 20 dev items) is refused before anything is sent, and a run stopped
//! with Ctrl-C mid-search resumes without paying for any candidate answer twice.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::optimize::{server, write_reviews, write_spec};
use crate::support::Env;

/// The estimate's total line, in dollars.
fn total(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("estimated cost (upper bound, before cache hits): $"))
        .unwrap_or_else(|| panic!("no estimate in {stdout}"))
        .replace(',', "")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_counts_the_search_and_its_price() {
    let env = Env::with_server(server()).await;
    write_reviews(&env);
    write_spec(&env, "{ max_calls: 400 }");
    let out = env.run(&["run", "spec.yaml", "--dry-run"]).await;
    out.expect_code(0);
    // 13 candidates, rungs 13×20 and 7×40 (see optimize.rs): 400 calls.
    assert!(
        out.stdout
            .contains("prompt search: up to 400 calls on dev items, $"),
        "{}",
        out.stdout
    );
    let with_search = total(&out.stdout);
    write_spec(&env, "{ max_calls: 400, max_cost_usd: 0.01 }");
    let capped = env.run(&["run", "spec.yaml", "--dry-run"]).await;
    let capped_total = total(&capped.stdout);
    assert!(
        capped_total < with_search,
        "{capped_total} vs {with_search}"
    );
    assert_eq!(env.server().requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_cannot_buy_the_smallest_search_is_refused_up_front() {
    let env = Env::with_server(server()).await;
    write_reviews(&env);
    write_spec(&env, "{ max_calls: 400, max_cost_usd: 0.000001 }");
    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains("cannot buy the smallest prompt search"),
        "{}",
        out.stderr
    );
    assert_eq!(env.server().requests(), 0);
    assert!(!env.db().exists(), "refused before the database is made");
}

/// Runs the spec, sending SIGINT once the server has seen `after` requests.
async fn interrupted(env: &Env, after: u64) -> Option<i32> {
    let mut child = env.command(&["run", "spec.yaml"]).spawn().unwrap();
    for _ in 0..3000 {
        if env.server().requests() >= after || child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "the run ended first");
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    child.wait().await.unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_search_resumes_without_paying_twice() {
    let slow = || testserver::ServerConfig {
        latency: Duration::from_millis(15),
        ..server()
    };
    let whole = Env::with_server(slow()).await;
    write_reviews(&whole);
    write_spec(&whole, "{ max_calls: 400 }");
    whole.run(&["run", "spec.yaml"]).await.expect_code(0);
    let uninterrupted = whole.server().requests();

    let env = Env::with_server(slow()).await;
    write_reviews(&env);
    write_spec(&env, "{ max_calls: 400 }");
    assert_eq!(interrupted(&env, 60).await, Some(130));
    let at_stop = env.server().requests();
    assert!(at_stop < 400, "stopped inside the search: {at_stop}");
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    assert_eq!(
        env.server().requests(),
        uninterrupted,
        "the resumed run asked exactly what an uninterrupted one asks"
    );
    let chosen = |e: &Env| {
        let db = e.db();
        async move {
            let store = store::Store::open_read_only(&db).await.unwrap();
            let run = store.latest_run(None).await.unwrap().unwrap();
            let searches = store.results(run.id).await.unwrap().searches;
            searches.into_iter().find(|s| s.chosen).map(|s| s.candidate)
        }
    };
    assert_eq!(chosen(&env).await, chosen(&whole).await, "the same winner");
}
