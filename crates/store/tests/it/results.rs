//! `results`: everything a run stored, in plan order, for the reports.

use domain::{ArmKind, CallRecord, RunResults, RunStatus, TrainingRecord};
use store::{Error, WriteBatch};

use crate::{failed, fresh, item, ok, prompt_arm, score, with_run};

#[tokio::test]
async fn results_of_an_unknown_run_is_not_found() {
    let (_dir, store) = fresh().await;
    let err = store.results(3).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { run: 3 }), "{err:?}");
    assert_eq!(err.to_string(), "run 3 is not in the database");
}

#[tokio::test]
async fn results_of_a_fresh_run_are_empty() {
    let (_dir, store, run) = with_run().await;
    let results = store.results(run).await.unwrap();
    assert_eq!(results.run, store.run(run).await.unwrap().unwrap());
    assert!(results.arms.is_empty() && results.items.is_empty() && results.calls.is_empty());
    assert!(results.scores.is_empty() && results.training.is_empty());
}

/// Arms `z` then `a`, items `i3 i1 i2`; rows written in scrambled order come back by arm
/// position, then item position, then scorer; rows of an unrecorded arm or item come last.
#[tokio::test]
async fn results_come_back_in_plan_order() {
    let (_dir, store, run) = with_run().await;
    let mut tune = prompt_arm("a");
    tune.kind = ArmKind::Finetune;
    store
        .insert_arms(run, &[prompt_arm("z"), tune.clone()])
        .await
        .unwrap();
    store
        .insert_items(run, &[item("i3"), item("i1"), item("i2")])
        .await
        .unwrap();
    let scrambled = [
        ("a", "i2"),
        ("stray", "i1"),
        ("z", "i1"),
        ("a", "unlisted"),
        ("z", "i3"),
        ("a", "i3"),
        ("z", "i2"),
        ("a", "i1"),
    ];
    let batch = WriteBatch {
        calls: scrambled.iter().map(|(a, i)| ok(a, i, "x")).collect(),
        scores: scrambled
            .iter()
            .flat_map(|(a, i)| [score(a, i, "f1", 0.5), score(a, i, "equals", 1.0)])
            .collect(),
        cache: Vec::new(),
    };
    store.write_batch(run, &batch).await.unwrap();

    let results = store.results(run).await.unwrap();
    let expected = [
        ("z", "i3"),
        ("z", "i1"),
        ("z", "i2"),
        ("a", "i3"),
        ("a", "i1"),
        ("a", "i2"),
        ("a", "unlisted"),
        ("stray", "i1"),
    ];
    let got: Vec<(&str, &str)> = results
        .calls
        .iter()
        .map(|c| (c.arm.as_str(), c.item_id.as_str()))
        .collect();
    assert_eq!(got, expected);
    let got: Vec<(&str, &str, &str)> = results
        .scores
        .iter()
        .map(|s| (s.arm.as_str(), s.item_id.as_str(), s.scorer.as_str()))
        .collect();
    let expected: Vec<_> = expected
        .iter()
        .flat_map(|&(a, i)| [(a, i, "equals"), (a, i, "f1")])
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_whole_run_round_trips() {
    let (_dir, store) = fresh().await;
    let run = store
        .create_run("movies", "h1", "fp1", r#"{"plan":true}"#)
        .await
        .unwrap();
    let mut tune = prompt_arm("lora");
    tune.kind = ArmKind::Finetune;
    tune.provider = None;
    let arms = vec![prompt_arm("zero-shot@gpt"), tune];
    let items = vec![item("b"), item("a")];
    store.insert_arms(run, &arms).await.unwrap();
    store.insert_items(run, &items).await.unwrap();
    let calls = vec![
        ok("zero-shot@gpt", "b", "positive"),
        failed("zero-shot@gpt", "a", "HTTP 500"),
        ok("lora", "b", "negative"),
        CallRecord {
            truncated: true,
            choice: None,
            token_logprobs: None,
            ..ok("lora", "a", "positive")
        },
    ];
    let scores = vec![
        score("zero-shot@gpt", "b", "equals", 1.0),
        score("lora", "b", "equals", 0.0),
        score("lora", "a", "equals", 1.0),
    ];
    store
        .write_batch(
            run,
            &WriteBatch {
                calls: calls.clone(),
                scores: scores.clone(),
                cache: Vec::new(),
            },
        )
        .await
        .unwrap();
    let training = TrainingRecord {
        arm: "lora".into(),
        status: domain::TrainingStatus::Completed,
        train_seconds: 30.0,
        tokens_per_second: 1000.0,
        peak_memory_bytes: 1 << 28,
        adapter_path: Some("out/lora".into()),
        checkpoint_dir: None,
        error: None,
        curve: vec![domain::LossPoint {
            step: 1,
            epoch: 0.5,
            split: domain::LossSplit::Train,
            loss: 2.0,
        }],
    };
    store.upsert_training(run, &training).await.unwrap();
    store
        .insert_loss_points(run, "lora", &training.curve)
        .await
        .unwrap();
    store
        .set_run_status(run, RunStatus::Completed)
        .await
        .unwrap();

    let bench = |batch_size: u32, items_per_second: f64| domain::ServingBench {
        arm: "p@local".into(),
        batch_size,
        items: 16,
        items_per_second,
        latency_p50_ms: 1000.0 * f64::from(batch_size) / items_per_second,
        latency_p95_ms: 1100.0 * f64::from(batch_size) / items_per_second,
        measured_ms: 1_700_000_000_000,
    };
    store
        .put_serving_bench(run, &[bench(4, 6.0), bench(1, 2.0)])
        .await
        .unwrap();
    // Measured again: the newer figure replaces the older.
    store
        .put_serving_bench(run, &[bench(4, 7.0)])
        .await
        .unwrap();

    let got = store.results(run).await.unwrap();
    let expected = RunResults {
        run: store.run(run).await.unwrap().unwrap(),
        arms,
        items,
        calls,
        scores,
        training: vec![training],
        searches: Vec::new(),
        serving_bench: vec![bench(1, 2.0), bench(4, 7.0)],
    };
    assert_eq!(got, expected);
    assert_eq!(got.run.status, RunStatus::Completed);
}
