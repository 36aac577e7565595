//! Prompt searches: candidate records round-trip through `results` (by arm, then order), an
//! update replaces a candidate's row, and the reads between rungs see only what they should: a
//! candidate's scores on its successful calls, and the cost of the arms under one prefix (where
//! `_` is a character, not a wildcard).

use domain::SearchRecord;
use store::WriteBatch;

use crate::{failed, ok, score, with_run};

fn candidate(arm: &str, seq: u32, dev_score: Option<f64>, chosen: bool) -> SearchRecord {
    SearchRecord {
        arm: arm.into(),
        candidate: format!("{arm}~c{seq:02}"),
        seq,
        seed_prompt: "zero-shot".into(),
        instruction: (seq > 0).then(|| format!("instruction {seq}")),
        demo_ids: (seq > 0).then(|| vec!["t1".to_owned(), "t7".to_owned()]),
        dev_items: 20,
        dev_score,
        chosen,
    }
}

#[tokio::test]
async fn candidates_round_trip_and_update_in_place() {
    let (_dir, store, run) = with_run().await;
    let first = vec![
        candidate("opt@b", 1, Some(0.5), false),
        candidate("opt@b", 0, None, false),
        candidate("opt@a", 0, Some(0.25), false),
    ];
    store.upsert_searches(run, &first).await.unwrap();
    let mut chosen = candidate("opt@b", 1, Some(0.75), true);
    chosen.dev_items = 40;
    store
        .upsert_searches(run, std::slice::from_ref(&chosen))
        .await
        .unwrap();
    let got = store.results(run).await.unwrap().searches;
    assert_eq!(
        got,
        vec![
            candidate("opt@a", 0, Some(0.25), false),
            candidate("opt@b", 0, None, false),
            chosen
        ]
    );
}

#[tokio::test]
async fn item_scores_and_prefix_costs() {
    let (_dir, store, run) = with_run().await;
    let mut paid = ok("opt@a_b~c00", "d1", "yes");
    paid.cost_usd = 0.25;
    let mut other = ok("opt@aXb~c00", "d1", "yes");
    other.cost_usd = 4.0;
    let mut broken = failed("opt@a_b~c00", "d2", "500");
    broken.cost_usd = 0.5;
    let batch = WriteBatch {
        calls: vec![paid, other, broken],
        scores: vec![
            score("opt@a_b~c00", "d1", "equals", 1.0),
            score("opt@a_b~c00", "d1", "f1", 0.5),
            score("opt@a_b~c00", "d2", "equals", 1.0),
        ],
        cache: Vec::new(),
    };
    store.write_batch(run, &batch).await.unwrap();
    let scores = store
        .item_scores(run, "opt@a_b~c00", "equals")
        .await
        .unwrap();
    assert_eq!(
        scores.len(),
        1,
        "only the successful call counts: {scores:?}"
    );
    assert_eq!(scores["d1"], 1.0);
    let cost = store
        .cost_of_arms_with_prefix(run, "opt@a_b~")
        .await
        .unwrap();
    assert!((cost - 0.75).abs() < 1e-12, "{cost}");
}
