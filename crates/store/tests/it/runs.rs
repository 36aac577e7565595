//! Runs, arms and items: creation, status changes, lookups and idempotent inserts.

use domain::{ArmKind, RunStatus};
use store::Error;

use crate::{fresh, item, prompt_arm, with_run};

#[tokio::test]
async fn create_run_starts_running_and_run_reads_it_back() {
    let (_dir, store) = fresh().await;
    let id = store
        .create_run("movies", "abc", "fp1", r#"{"name":"movies"}"#)
        .await
        .unwrap();
    let run = store.run(id).await.unwrap().unwrap();
    assert_eq!(run.id, id);
    assert_eq!(run.experiment, "movies");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.finished_ms, None);
    assert_eq!(run.dataset_fingerprint, "fp1");
    assert_eq!(run.spec_hash, "abc");
    assert_eq!(run.spec_json, r#"{"name":"movies"}"#);
    assert!(run.started_ms > 0);
    assert_eq!(store.run(id + 1).await.unwrap(), None);
}

#[tokio::test]
async fn stopping_a_run_stamps_finished_and_resuming_clears_it() {
    let (_dir, store, run) = with_run().await;
    for status in [
        RunStatus::Interrupted,
        RunStatus::BudgetExceeded,
        RunStatus::Failed,
        RunStatus::Completed,
    ] {
        store.set_run_status(run, status).await.unwrap();
        let info = store.run(run).await.unwrap().unwrap();
        assert_eq!(info.status, status);
        assert!(info.finished_ms.is_some_and(|f| f >= info.started_ms));
    }
    store.set_run_status(run, RunStatus::Running).await.unwrap();
    assert_eq!(store.run(run).await.unwrap().unwrap().finished_ms, None);
}

#[tokio::test]
async fn setting_the_status_of_an_unknown_run_is_not_found() {
    let (_dir, store) = fresh().await;
    let err = store
        .set_run_status(42, RunStatus::Completed)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { run: 42 }), "{err:?}");
}

#[tokio::test]
async fn list_runs_is_oldest_first_and_latest_run_filters_by_experiment() {
    let (_dir, store) = fresh().await;
    assert_eq!(store.latest_run(None).await.unwrap(), None);
    let a1 = store.create_run("a", "h", "fp", "{}").await.unwrap();
    let b1 = store.create_run("b", "h", "fp", "{}").await.unwrap();
    let a2 = store.create_run("a", "h", "fp", "{}").await.unwrap();
    let ids: Vec<i64> = store
        .list_runs()
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [a1, b1, a2]);
    let latest = |e| {
        let store = store.clone();
        async move { store.latest_run(e).await.unwrap().map(|r| r.id) }
    };
    assert_eq!(latest(None).await, Some(a2));
    assert_eq!(latest(Some("a")).await, Some(a2));
    assert_eq!(latest(Some("b")).await, Some(b1));
    assert_eq!(latest(Some("c")).await, None);
}

#[tokio::test]
async fn resumable_run_is_the_newest_resumable_run_with_the_same_hash() {
    let (_dir, store) = fresh().await;
    let create = |exp: &'static str, hash: &'static str, status| {
        let store = store.clone();
        async move {
            let id = store.create_run(exp, hash, "fp", "{}").await.unwrap();
            store.set_run_status(id, status).await.unwrap();
            id
        }
    };
    let interrupted = create("exp", "A", RunStatus::Interrupted).await;
    let over_budget = create("exp", "A", RunStatus::BudgetExceeded).await;
    let _completed = create("exp", "A", RunStatus::Completed).await;
    let _other_hash = create("exp", "B", RunStatus::Running).await;
    let _other_exp = create("other", "A", RunStatus::Running).await;

    let pick = || async { store.resumable_run("exp", "A").await.unwrap().map(|r| r.id) };
    assert_eq!(pick().await, Some(over_budget));
    store
        .set_run_status(over_budget, RunStatus::Failed)
        .await
        .unwrap();
    assert_eq!(pick().await, Some(interrupted));
    store
        .set_run_status(interrupted, RunStatus::Completed)
        .await
        .unwrap();
    assert_eq!(pick().await, None);
    let running = create("exp", "A", RunStatus::Running).await;
    assert_eq!(pick().await, Some(running));
    assert_eq!(store.resumable_run("nope", "A").await.unwrap(), None);
}

#[tokio::test]
async fn insert_arms_is_idempotent_and_keeps_the_first_order_and_description() {
    let (_dir, store, run) = with_run().await;
    store
        .insert_arms(run, &[prompt_arm("b"), prompt_arm("a")])
        .await
        .unwrap();
    let mut changed = prompt_arm("a");
    changed.model = "something-else".into();
    let mut tune = prompt_arm("c");
    tune.kind = ArmKind::Finetune;
    tune.provider = None;
    tune.prompt = None;
    store
        .insert_arms(run, &[changed, tune.clone()])
        .await
        .unwrap();
    store.insert_arms(run, &[prompt_arm("b")]).await.unwrap();

    let arms = store.results(run).await.unwrap().arms;
    assert_eq!(arms, [prompt_arm("b"), prompt_arm("a"), tune]);
}

#[tokio::test]
async fn insert_items_is_idempotent_and_keeps_eval_order() {
    let (_dir, store, run) = with_run().await;
    store
        .insert_items(run, &[item("i3"), item("i1")])
        .await
        .unwrap();
    store
        .insert_items(run, &[item("i1"), item("i2"), item("i3")])
        .await
        .unwrap();
    let ids: Vec<String> = store
        .results(run)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.item_id)
        .collect();
    assert_eq!(ids, ["i3", "i1", "i2"]);
}

#[tokio::test]
async fn many_items_go_in_whole_chunks_and_a_resume_appends_only_new_ones() {
    // More than one multi-row statement's worth, with a tail; then a superset with a repeat.
    let (_dir, store, run) = with_run().await;
    let first: Vec<_> = (0..150).map(|i| item(&format!("i{i:03}"))).collect();
    store.insert_items(run, &first).await.unwrap();
    let mut second: Vec<_> = (140..300)
        .rev()
        .map(|i| item(&format!("i{i:03}")))
        .collect();
    second.push(item("i299"));
    store.insert_items(run, &second).await.unwrap();
    store.insert_items(run, &first).await.unwrap();

    let items = store.results(run).await.unwrap().items;
    let ids: Vec<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
    let expected: Vec<String> = (0..150)
        .chain((150..300).rev())
        .map(|i| format!("i{i:03}"))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(items[7], item("i007"), "input and target round-trip");
}

#[tokio::test]
async fn arms_and_items_of_an_unknown_run_are_not_found() {
    let (_dir, store) = fresh().await;
    let err = store.insert_arms(7, &[prompt_arm("a")]).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { run: 7 }), "{err:?}");
    let err = store.insert_items(7, &[item("i")]).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { run: 7 }), "{err:?}");
}

#[tokio::test]
async fn an_arms_sweep_point_round_trips() {
    let (_dir, store, run) = with_run().await;
    let point = domain::SweepPoint {
        family: "lora".into(),
        examples: 40,
        label_noise: 0.2,
    };
    let arms = [
        domain::ArmInfo {
            sweep: Some(point),
            ..prompt_arm("lora~noise0.2")
        },
        prompt_arm("plain"),
    ];
    store.insert_arms(run, &arms).await.unwrap();
    let back = store.results(run).await.unwrap().arms;
    assert_eq!(back, arms);
}

#[tokio::test]
async fn an_arms_choice_labels_round_trip_in_their_order() {
    let (_dir, store, run) = with_run().await;
    let arms = [
        domain::ArmInfo {
            choices: Some(vec!["negative".into(), "positive".into(), "mixed".into()]),
            ..prompt_arm("labels@local")
        },
        prompt_arm("free@local"),
    ];
    store.insert_arms(run, &arms).await.unwrap();
    let back = store.results(run).await.unwrap().arms;
    assert_eq!(back, arms);
}
