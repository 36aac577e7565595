//! The `similar` scorer through the binary, on a tiny random BERT folder written by the test
//! (`embed::testing`): answers equal to their target embed identically (cosine 1), others do
//! not, so a threshold just under 1 passes exactly the matching items, and the raw cosine is
//! stored beside the score as `similar.raw`.

use crate::support::{Env, SpecOptions, yes_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_scores_by_embedding_and_keeps_the_raw_cosine() {
    let env = Env::with_server(yes_server(std::time::Duration::ZERO)).await;
    env.write_dataset(10);
    embed::testing::write_tiny_model(&env.path("bert")).unwrap();
    let spec = env.write_spec(&SpecOptions {
        two_prompts: false,
        ..SpecOptions::default()
    });
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "scorers:\n  - type: equals\n",
        "scorers:\n  - { type: similar, threshold: 0.999, model: bert }\n  - type: equals\n",
    );
    std::fs::write(&spec, text).unwrap();
    env.run(&["validate", "spec.yaml"]).await.expect_code(0);
    env.run(&["run", "spec.yaml"]).await.expect_code(0);
    let row = env.row(None, "plain@fake").await;
    // 8 of 10 labels are `yes`, and the server always answers `yes`.
    assert_eq!(row["quality"], 0.8, "{row}");
    let board = env.run(&["leaderboard", "--format", "json"]).await;
    assert!(board.stdout.contains("similar.raw"), "{}", board.stdout);
}

#[tokio::test]
async fn a_missing_embedding_model_is_reported_at_its_place() {
    let env = Env::without_server();
    env.write_dataset(3);
    let spec = env.write_spec(&SpecOptions::default());
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "scorers:\n  - type: equals\n",
        "scorers:\n  - { type: similar, model: no-such-dir/ }\n  - type: equals\n",
    );
    std::fs::write(&spec, text).unwrap();
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("no-such-dir"), "{}", out.stderr);
}
