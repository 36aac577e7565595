//! The batched write path: the replace-only-failed rule, score upserts, the response cache,
//! costs, atomicity, 10k-call batches and concurrent writers.

use std::collections::HashSet;

use store::{CachedAnswer, Error, Store, WriteBatch};

use crate::{db_path, failed, fresh, ok, score, with_run};

fn calls(calls: Vec<domain::CallRecord>) -> WriteBatch {
    WriteBatch {
        calls,
        ..WriteBatch::default()
    }
}

fn answer(text: &str) -> CachedAnswer {
    CachedAnswer {
        text: text.into(),
        prompt_tokens: 10,
        completion_tokens: 2,
        truncated: false,
        choice: None,
        token_logprobs: None,
    }
}

/// The stored calls of `run`, as (item, response, error).
async fn stored(store: &Store, run: i64) -> Vec<(String, Option<String>, Option<String>)> {
    let results = store.results(run).await.unwrap();
    results
        .calls
        .into_iter()
        .map(|c| (c.item_id, c.response, c.error))
        .collect()
}

fn set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn completed_items_are_the_calls_without_an_error() {
    let (_dir, store, run) = with_run().await;
    assert!(store.completed_items(run, "a").await.unwrap().is_empty());
    let batch = calls(vec![
        ok("a", "i1", "yes"),
        failed("a", "i2", "timeout"),
        ok("a", "i3", "no"),
        ok("b", "i2", "yes"),
    ]);
    store.write_batch(run, &batch).await.unwrap();
    assert_eq!(
        store.completed_items(run, "a").await.unwrap(),
        set(&["i1", "i3"])
    );
    assert_eq!(store.completed_items(run, "b").await.unwrap(), set(&["i2"]));
    assert!(store.completed_items(run, "c").await.unwrap().is_empty());
    assert!(
        store
            .completed_items(run + 1, "a")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_call_is_replaced_and_a_successful_one_never_is() {
    let (_dir, store, run) = with_run().await;
    let write = |c| {
        let store = store.clone();
        async move { store.write_batch(run, &calls(vec![c])).await.unwrap() }
    };
    let row = |r: &str, e: Option<&str>| {
        vec![(
            "i".to_string(),
            Some(r.to_string()).filter(|r| !r.is_empty()),
            e.map(String::from),
        )]
    };

    write(failed("a", "i", "HTTP 500")).await;
    assert_eq!(stored(&store, run).await, row("", Some("HTTP 500")));
    write(failed("a", "i", "timeout")).await;
    assert_eq!(stored(&store, run).await, row("", Some("timeout")));
    write(ok("a", "i", "first")).await;
    assert_eq!(stored(&store, run).await, row("first", None));
    write(ok("a", "i", "second")).await;
    assert_eq!(stored(&store, run).await, row("first", None));
    write(failed("a", "i", "HTTP 429")).await;
    assert_eq!(stored(&store, run).await, row("first", None));
}

#[tokio::test]
async fn the_rule_holds_inside_one_multi_row_statement() {
    // More than one chunk of rows, with the same key twice in a chunk and once in the tail.
    let (_dir, store, run) = with_run().await;
    let mut batch: Vec<_> = (0..150).map(|i| ok("a", &format!("i{i}"), "x")).collect();
    batch[10] = failed("a", "dup", "boom");
    batch[20] = ok("a", "dup", "fixed");
    batch[30] = ok("a", "kept", "first");
    batch[40] = failed("a", "kept", "late failure");
    batch[140] = ok("a", "kept", "tail success");
    store.write_batch(run, &calls(batch)).await.unwrap();
    let results = store.results(run).await.unwrap();
    let get = |id: &str| results.calls.iter().find(|c| c.item_id == id).unwrap();
    assert_eq!(get("dup").response.as_deref(), Some("fixed"));
    assert_eq!(get("dup").error, None);
    assert_eq!(get("kept").response.as_deref(), Some("first"));
    assert_eq!(results.calls.len(), 150 - 3);
}

#[tokio::test]
async fn a_call_round_trips_every_field() {
    let (_dir, store, run) = with_run().await;
    let mut call = ok("a", "i", "answer with ünïcode and 'quotes'");
    call.prompt_tokens = u32::MAX;
    call.completion_tokens = 0;
    call.latency_ms = 0.1 + 0.2;
    call.cost_usd = 1e-9;
    call.attempts = 4;
    call.cache_hit = true;
    call.compute_seconds = 12.345_678_9;
    store
        .write_batch(run, &calls(vec![call.clone()]))
        .await
        .unwrap();
    assert_eq!(store.results(run).await.unwrap().calls, [call]);
}

#[tokio::test]
async fn scores_upsert() {
    let (_dir, store, run) = with_run().await;
    let scores = |v| WriteBatch {
        scores: vec![score("a", "i", "equals", v), score("a", "i", "f1", 0.5)],
        ..WriteBatch::default()
    };
    store.write_batch(run, &scores(0.0)).await.unwrap();
    store.write_batch(run, &scores(1.0)).await.unwrap();
    assert_eq!(
        store.results(run).await.unwrap().scores,
        [score("a", "i", "equals", 1.0), score("a", "i", "f1", 0.5)]
    );
}

#[tokio::test]
async fn the_cache_keeps_the_first_answer_for_a_key() {
    let (_dir, store, run) = with_run().await;
    assert_eq!(store.cache_get("k").await.unwrap(), None);
    let put = |text: &str| WriteBatch {
        cache: vec![("k".into(), answer(text))],
        ..WriteBatch::default()
    };
    store.write_batch(run, &put("first")).await.unwrap();
    store.write_batch(run, &put("second")).await.unwrap();
    assert_eq!(store.cache_get("k").await.unwrap(), Some(answer("first")));
    assert_eq!(store.cache_get("other").await.unwrap(), None);
}

#[tokio::test]
async fn a_truncated_answer_is_cached_as_truncated_with_its_choice() {
    let (_dir, store, run) = with_run().await;
    let cut = CachedAnswer {
        truncated: true,
        choice: Some(domain::ChoiceRecord {
            label: None,
            via: domain::ChoiceVia::Unmapped,
            confidence: None,
            probabilities: Vec::new(),
        }),
        token_logprobs: Some(vec![-1.0, -0.25]),
        ..answer("cut off mid")
    };
    store
        .write_batch(
            run,
            &WriteBatch {
                cache: vec![("k".into(), cut.clone())],
                ..WriteBatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.cache_get("k").await.unwrap(), Some(cut.clone()));
    let many = store.cache_get_many(&["k".to_string()]).await.unwrap();
    assert_eq!(many.get("k"), Some(&cut));
}

#[tokio::test]
async fn cache_get_many_finds_the_stored_keys_over_several_queries() {
    let (_dir, store, run) = with_run().await;
    assert!(store.cache_get_many(&[]).await.unwrap().is_empty());
    // Every other key of more than two queries' worth is stored.
    let n = 2 * store::CACHE_KEYS_PER_QUERY + 7;
    let keys: Vec<String> = (0..n).map(|i| format!("key-{i}")).collect();
    let stored: Vec<(String, CachedAnswer)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, k)| (k.clone(), answer(&format!("answer {i}"))))
        .collect();
    let batch = WriteBatch {
        cache: stored.clone(),
        ..WriteBatch::default()
    };
    store.write_batch(run, &batch).await.unwrap();

    let found = store.cache_get_many(&keys).await.unwrap();
    assert_eq!(found.len(), stored.len());
    for (key, answer) in &stored {
        assert_eq!(found.get(key), Some(answer), "{key}");
        assert_eq!(store.cache_get(key).await.unwrap().as_ref(), Some(answer));
    }
    assert!(!found.contains_key("key-1"));

    // A short lookup, with a repeated key and a missing one.
    let some = ["key-2", "key-2", "key-3", "key-4"].map(String::from);
    let found = store.cache_get_many(&some).await.unwrap();
    let mut keys: Vec<&str> = found.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["key-2", "key-4"]);
    assert_eq!(found["key-4"], answer("answer 4"));
}

#[tokio::test]
async fn run_cost_sums_every_call_of_the_run() {
    let (_dir, store, run) = with_run().await;
    assert_eq!(store.run_cost(run).await.unwrap(), 0.0);
    let mut expensive_failure = failed("a", "i2", "HTTP 500");
    expensive_failure.cost_usd = 0.25;
    let mut cheap = ok("a", "i1", "x");
    cheap.cost_usd = 0.5;
    store
        .write_batch(run, &calls(vec![cheap, expensive_failure]))
        .await
        .unwrap();
    let other = store.create_run("exp", "hash", "fp", "{}").await.unwrap();
    store
        .write_batch(other, &calls(vec![ok("a", "i1", "x")]))
        .await
        .unwrap();
    assert_eq!(store.run_cost(run).await.unwrap(), 0.75);
    let err = store.run_cost(other + 1).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_batch_for_an_unknown_run_fails_whole() {
    let (_dir, store) = fresh().await;
    let batch = WriteBatch {
        calls: vec![ok("a", "i", "x")],
        scores: vec![score("a", "i", "equals", 1.0)],
        cache: vec![("k".into(), answer("x"))],
    };
    let err = store.write_batch(99, &batch).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { run: 99 }), "{err:?}");
    assert_eq!(store.cache_get("k").await.unwrap(), None);
}

#[tokio::test]
async fn a_batch_that_fails_late_leaves_nothing_behind() {
    let (_dir, store, run) = with_run().await;
    // SQLite stores a NaN as NULL, which `scores.value NOT NULL` refuses: the calls written
    // before the bad score must roll back with it.
    let batch = WriteBatch {
        calls: (0..100).map(|i| ok("a", &format!("i{i}"), "x")).collect(),
        scores: vec![
            score("a", "i0", "equals", 1.0),
            score("a", "i1", "equals", f64::NAN),
        ],
        cache: vec![("k".into(), answer("x"))],
    };
    let err = store.write_batch(run, &batch).await.unwrap_err();
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    assert!(store.completed_items(run, "a").await.unwrap().is_empty());
    assert_eq!(store.cache_get("k").await.unwrap(), None);
    // The writer connection is usable again afterwards.
    store
        .write_batch(run, &calls(vec![ok("a", "i0", "x")]))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_empty_batch_is_a_no_op() {
    let (_dir, store, run) = with_run().await;
    store
        .write_batch(run, &WriteBatch::default())
        .await
        .unwrap();
    assert!(store.results(run).await.unwrap().calls.is_empty());
}

#[tokio::test]
async fn ten_thousand_calls_in_one_batch() {
    let (_dir, store, run) = with_run().await;
    let n = 10_000;
    let batch = WriteBatch {
        calls: (0..n)
            .map(|i| ok("a", &format!("item-{i:05}"), "yes"))
            .collect(),
        scores: (0..n)
            .map(|i| score("a", &format!("item-{i:05}"), "equals", 1.0))
            .collect(),
        cache: (0..n)
            .map(|i| (format!("key-{i}"), answer("yes")))
            .collect(),
    };
    store.write_batch(run, &batch).await.unwrap();
    assert_eq!(store.completed_items(run, "a").await.unwrap().len(), n);
    let results = store.results(run).await.unwrap();
    assert_eq!(results.calls.len(), n);
    assert_eq!(results.scores.len(), n);
    assert_eq!(
        store.cache_get("key-9999").await.unwrap(),
        Some(answer("yes"))
    );
}

/// Tasks sharing one store queue on its writer; tasks on separately opened stores (as two
/// processes would) meet SQLite's lock and wait it out. Neither may fail with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_do_not_fail_with_busy() {
    let (dir, store, run) = with_run().await;
    let second = Store::open(&db_path(&dir)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    let (writers, batches, per_batch) = (8, 10, 50);
    for w in 0..writers {
        let store = if w % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        tasks.spawn(async move {
            for b in 0..batches {
                let batch = WriteBatch {
                    calls: (0..per_batch)
                        .map(|i| ok(&format!("arm{w}"), &format!("{b}-{i}"), "x"))
                        .collect(),
                    scores: (0..per_batch)
                        .map(|i| score(&format!("arm{w}"), &format!("{b}-{i}"), "equals", 1.0))
                        .collect(),
                    cache: vec![(format!("{w}-{b}"), answer("x"))],
                };
                store.write_batch(run, &batch).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let results = store.results(run).await.unwrap();
    assert_eq!(results.calls.len(), writers * batches * per_batch);
    assert_eq!(results.scores.len(), writers * batches * per_batch);
}
