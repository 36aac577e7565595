//! Batch API records: a batch and its items stored before anything is sent, each later step
//! (file, remote id, status) recorded, collected batches no longer open, batches kept per run.

use super::*;

#[tokio::test]
async fn a_batch_is_recorded_step_by_step_until_collected() {
    let (_dir, store, run) = with_run().await;
    let items = vec!["b".to_owned(), "a".to_owned()];
    let first = store
        .begin_api_batch(run, "p@api", "api", "tok-1", &items)
        .await
        .unwrap()
        .id;
    let second = store
        .begin_api_batch(run, "q@api", "api", "tok-2", &["c".into()])
        .await
        .unwrap()
        .id;
    let open = store.open_api_batches(run).await.unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].status, "preparing");
    assert_eq!(open[0].items, ["a", "b"]);
    assert_eq!(
        (
            open[0].input_file_id.as_deref(),
            open[0].remote_id.as_deref()
        ),
        (None, None)
    );

    store.set_api_batch_file(first, "file-1").await.unwrap();
    let open = store.open_api_batches(run).await.unwrap();
    assert_eq!(
        (open[0].status.as_str(), open[0].input_file_id.as_deref()),
        ("uploaded", Some("file-1"))
    );
    store
        .set_api_batch_remote(first, "batch-9", "validating")
        .await
        .unwrap();
    store
        .set_api_batch_status(first, "completed")
        .await
        .unwrap();
    let open = store.open_api_batches(run).await.unwrap();
    assert_eq!(
        (open[0].remote_id.as_deref(), open[0].status.as_str()),
        (Some("batch-9"), "completed")
    );

    store.collect_api_batches(&[first]).await.unwrap();
    store.set_api_batch_status(first, "expired").await.unwrap();
    let open = store.open_api_batches(run).await.unwrap();
    assert_eq!(open.iter().map(|b| b.id).collect::<Vec<_>>(), [second]);
    let all = store.api_batches(run).await.unwrap();
    assert_eq!(
        all[0].status, "collected",
        "a collected batch stays collected"
    );
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn tokens_are_unique_and_batches_belong_to_their_run() {
    let (_dir, store, run) = with_run().await;
    store
        .begin_api_batch(run, "a", "p", "tok", &[])
        .await
        .unwrap();
    assert!(
        store
            .begin_api_batch(run, "a", "p", "tok", &[])
            .await
            .is_err()
    );
    let other = store.create_run("exp2", "hash2", "fp", "{}").await.unwrap();
    assert!(store.open_api_batches(other).await.unwrap().is_empty());
    assert!(
        store
            .begin_api_batch(9_999, "a", "p", "tok-x", &[])
            .await
            .is_err()
    );
}
