//! Training records and loss curves.

use domain::{LossPoint, LossSplit, TrainingRecord, TrainingStatus};
use store::Error;

use crate::with_run;

fn record(status: TrainingStatus) -> TrainingRecord {
    TrainingRecord {
        arm: "lora".into(),
        status,
        train_seconds: 12.5,
        tokens_per_second: 850.0,
        peak_memory_bytes: 3 << 30,
        adapter_path: None,
        checkpoint_dir: Some("/tmp/ckpt".into()),
        error: None,
        curve: Vec::new(),
    }
}

fn point(step: u64, split: LossSplit, loss: f64) -> LossPoint {
    LossPoint {
        step,
        epoch: step as f64 / 10.0,
        split,
        loss,
    }
}

#[tokio::test]
async fn upsert_training_creates_then_updates_and_ignores_the_curve() {
    let (_dir, store, run) = with_run().await;
    let mut running = record(TrainingStatus::Running);
    running.curve = vec![point(1, LossSplit::Train, 2.0)];
    store.upsert_training(run, &running).await.unwrap();
    let mut done = record(TrainingStatus::Completed);
    done.adapter_path = Some("/tmp/adapter".into());
    done.train_seconds = 60.0;
    store.upsert_training(run, &done).await.unwrap();
    assert_eq!(store.results(run).await.unwrap().training, [done]);
}

#[tokio::test]
async fn loss_points_come_back_by_step_and_replace_a_recomputed_step() {
    let (_dir, store, run) = with_run().await;
    store
        .upsert_training(run, &record(TrainingStatus::Running))
        .await
        .unwrap();
    store
        .insert_loss_points(
            run,
            "lora",
            &[
                point(3, LossSplit::Train, 1.5),
                point(1, LossSplit::Train, 2.5),
                point(2, LossSplit::Val, 2.2),
            ],
        )
        .await
        .unwrap();
    // Resumed from the step-1 checkpoint: steps 2 and 3 are measured again.
    store
        .insert_loss_points(
            run,
            "lora",
            &[
                point(2, LossSplit::Train, 1.9),
                point(3, LossSplit::Train, 1.4),
            ],
        )
        .await
        .unwrap();
    let curve = &store.results(run).await.unwrap().training[0].curve;
    assert_eq!(
        curve,
        &[
            point(1, LossSplit::Train, 2.5),
            point(2, LossSplit::Train, 1.9),
            point(2, LossSplit::Val, 2.2),
            point(3, LossSplit::Train, 1.4)
        ]
    );
}

#[tokio::test]
async fn a_nan_loss_survives_the_round_trip() {
    let (_dir, store, run) = with_run().await;
    store
        .upsert_training(run, &record(TrainingStatus::Failed))
        .await
        .unwrap();
    store
        .insert_loss_points(run, "lora", &[point(1, LossSplit::Train, f64::NAN)])
        .await
        .unwrap();
    let curve = &store.results(run).await.unwrap().training[0].curve;
    assert!(curve[0].loss.is_nan());
}

#[tokio::test]
async fn values_beyond_i64_are_refused_not_wrapped() {
    let (_dir, store, run) = with_run().await;
    let mut huge = record(TrainingStatus::Running);
    huge.peak_memory_bytes = u64::MAX;
    let err = store.upsert_training(run, &huge).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                field: "peak_memory_bytes",
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .insert_loss_points(run, "lora", &[point(u64::MAX, LossSplit::Train, 1.0)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { field: "step", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn training_of_an_unknown_run_is_not_found() {
    let (_dir, store, run) = with_run().await;
    let err = store
        .upsert_training(run + 1, &record(TrainingStatus::Running))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .insert_loss_points(run + 1, "lora", &[point(1, LossSplit::Train, 1.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
