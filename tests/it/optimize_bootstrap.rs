//! `demos.bootstrap`: before the search, the first seed prompt answers the first N train rows,
//! and every candidate's demonstrations come from the rows it answered right. The scripted
//! model here answers `positive` to every `good` review and `unsure` to the rest, so the seed
//! gets exactly the positive rows right: no demo set may hold a negative row.

use crate::optimize::{server, write_reviews, write_spec};
use crate::support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demonstrations_come_from_train_rows_the_seed_answered_right() {
    let env = Env::with_server(testserver::ServerConfig {
        rules: vec![("good".into(), "positive".into())],
        ..server()
    })
    .await;
    write_reviews(&env);
    write_spec(&env, "{ max_calls: 400 }");
    let spec = std::fs::read_to_string(env.path("spec.yaml")).unwrap();
    let from = "demos: { max: 2, candidates: 3 }";
    assert!(spec.contains(from));
    env.write(
        "spec.yaml",
        &spec.replace(from, "demos: { max: 2, candidates: 3, bootstrap: 20 }"),
    );

    let dry = env.run(&["run", "spec.yaml", "--dry-run"]).await;
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("up to 420 calls"),
        "400 + 20: {}",
        dry.stdout
    );

    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("train rows right; demo sets are drawn from those"),
        "{}",
        out.stderr
    );
    let store = store::Store::open_read_only(&env.db()).await.unwrap();
    let run = store.latest_run(None).await.unwrap().unwrap();
    let results = store.results(run.id).await.unwrap();
    let boot: Vec<_> = results
        .calls
        .iter()
        .filter(|c| c.arm == "opt@api~boot")
        .collect();
    assert_eq!(boot.len(), 20);
    let positive = |id: &str| id[1..].parse::<u32>().unwrap() % 2 == 0;
    let right: Vec<&str> = boot
        .iter()
        .filter(|c| positive(&c.item_id))
        .map(|c| c.item_id.as_str())
        .collect();
    let mut demo_rows = 0;
    for search in &results.searches {
        for id in search.demo_ids.iter().flatten() {
            demo_rows += 1;
            assert!(
                right.contains(&id.as_str()),
                "{id} in {search:?} was not answered right"
            );
        }
    }
    assert!(demo_rows > 0, "some candidate has demonstrations");
}
