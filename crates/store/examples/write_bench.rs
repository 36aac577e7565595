//! Measures the runner's write path: 10,000 calls, each with one score and one cache entry,
//! written with `Store::write_batch` in batches of 256 into a fresh database in a temporary
//! directory, their cache keys looked up one by one and 512 at a time, then read back with
//! `results`. Prints the elapsed times; the numbers feed
//! BENCHMARKS.md. It is a measurement, not a test: it asserts nothing about speed.
//!
//! Run: `cargo run --release -p store --example write_bench [CALLS] [BATCH]`

use std::time::Instant;

use domain::{ArmInfo, ArmKind, CallRecord, EvalItem, ScoreRecord};
use store::{CachedAnswer, Store, WriteBatch};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let batch_size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);

    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("bench.db")).await?;
    let run = store.create_run("bench", "hash", "fp", "{}").await?;
    let arm = "zero-shot@bench";
    store
        .insert_arms(
            run,
            &[ArmInfo {
                arm: arm.into(),
                kind: ArmKind::Prompt,
                provider: Some("bench".into()),
                prompt: Some("zero-shot".into()),
                model: "bench-model".into(),
                pricing: None,
                sweep: None,
                choices: None,
            }],
        )
        .await?;
    let items: Vec<EvalItem> = (0..calls)
        .map(|i| EvalItem {
            item_id: format!("item-{i:06}"),
            input: format!("An input text for item {i}, about as long as a short review."),
            target: "positive".into(),
        })
        .collect();
    let started = Instant::now();
    store.insert_items(run, &items).await?;
    let items_elapsed = started.elapsed();

    let batches: Vec<WriteBatch> = items
        .chunks(batch_size)
        .map(|chunk| WriteBatch {
            calls: chunk.iter().map(|it| call(arm, &it.item_id)).collect(),
            scores: chunk
                .iter()
                .map(|it| ScoreRecord {
                    arm: arm.into(),
                    item_id: it.item_id.clone(),
                    scorer: "equals".into(),
                    value: 1.0,
                })
                .collect(),
            cache: chunk
                .iter()
                .map(|it| {
                    let answer = CachedAnswer {
                        text: "positive".into(),
                        prompt_tokens: 42,
                        completion_tokens: 1,
                        truncated: false,
                        choice: None,
                        token_logprobs: None,
                    };
                    (format!("{:064x}", hash(&it.item_id)), answer)
                })
                .collect(),
        })
        .collect();

    let started = Instant::now();
    for batch in &batches {
        store.write_batch(run, batch).await?;
    }
    let write_elapsed = started.elapsed();

    let keys: Vec<String> = batches
        .iter()
        .flat_map(|b| b.cache.iter().map(|(k, _)| k.clone()))
        .collect();
    let started = Instant::now();
    for key in &keys {
        store.cache_get(key).await?;
    }
    let one_by_one = started.elapsed();
    let started = Instant::now();
    for chunk in keys.chunks(512) {
        store.cache_get_many(chunk).await?;
    }
    let chunked = started.elapsed();

    let started = Instant::now();
    let results = store.results(run).await?;
    let read_elapsed = started.elapsed();
    assert_eq!(results.calls.len(), calls, "every call was written");

    let per_sec = calls as f64 / write_elapsed.as_secs_f64();
    println!("insert_items: {calls} items in {:.1} ms", ms(items_elapsed));
    println!(
        "write_batch:  {calls} calls (+1 score, +1 cache entry each) in {} batches of {batch_size}: \
         {:.1} ms ({per_sec:.0} calls/s)",
        batches.len(),
        ms(write_elapsed)
    );
    println!(
        "cache lookups: {} keys one by one in {:.1} ms; 512 per cache_get_many in {:.1} ms",
        keys.len(),
        ms(one_by_one),
        ms(chunked)
    );
    println!("results:      read back in {:.1} ms", ms(read_elapsed));
    store.close().await;
    Ok(())
}

fn call(arm: &str, item: &str) -> CallRecord {
    CallRecord {
        arm: arm.into(),
        item_id: item.into(),
        response: Some("positive".into()),
        prompt_tokens: 42,
        completion_tokens: 1,
        latency_ms: 180.0,
        cost_usd: 0.000_007,
        attempts: 1,
        cache_hit: false,
        error: None,
        compute_seconds: 0.0,
        truncated: false,
        choice: None,
        token_logprobs: None,
    }
}

/// A stand-in for the sha256 cache key: distinct per item, same length.
fn hash(s: &str) -> u128 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x1000_0000_01b3)
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
