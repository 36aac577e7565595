//! Integration tests of the store against real SQLite files in temporary directories: every
//! public method on a freshly migrated database, reopening, the replace-only-failed rule,
//! idempotent inserts, large and concurrent batches, and the order results come back in.
//!
//! Timing is never asserted here; `examples/write_bench.rs` measures it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_batches;
mod batch;
mod lease;
mod open;
mod results;
mod runs;
mod searches;
mod training;
mod upgrade;

use std::path::PathBuf;

use domain::{ArmInfo, ArmKind, ArmPricing, CallRecord, EvalItem, Pricing, ScoreRecord};
use store::Store;
use tempfile::TempDir;

/// A fresh store in its own temporary directory; keep the `TempDir` alive as long as the store.
pub async fn fresh() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_path(&dir)).await.unwrap();
    (dir, store)
}

pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("orchestrator.db")
}

/// A fresh store with one run of experiment `exp`.
pub async fn with_run() -> (TempDir, Store, i64) {
    let (dir, store) = fresh().await;
    let run = store.create_run("exp", "hash", "fp", "{}").await.unwrap();
    (dir, store, run)
}

/// A successful call answering `text`.
pub fn ok(arm: &str, item: &str, text: &str) -> CallRecord {
    CallRecord {
        arm: arm.into(),
        item_id: item.into(),
        response: Some(text.into()),
        prompt_tokens: 12,
        completion_tokens: 3,
        latency_ms: 250.5,
        cost_usd: 0.000_125,
        attempts: 1,
        cache_hit: false,
        error: None,
        compute_seconds: 0.0,
        truncated: false,
        choice: None,
        token_logprobs: None,
    }
}

/// A failed call.
pub fn failed(arm: &str, item: &str, error: &str) -> CallRecord {
    CallRecord {
        response: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
        attempts: 3,
        error: Some(error.into()),
        ..ok(arm, item, "")
    }
}

pub fn score(arm: &str, item: &str, scorer: &str, value: f64) -> ScoreRecord {
    ScoreRecord {
        arm: arm.into(),
        item_id: item.into(),
        scorer: scorer.into(),
        value,
    }
}

pub fn prompt_arm(arm: &str) -> ArmInfo {
    ArmInfo {
        arm: arm.into(),
        kind: ArmKind::Prompt,
        provider: Some("gpt-4o-mini".into()),
        prompt: Some("zero-shot".into()),
        model: "gpt-4o-mini".into(),
        pricing: Some(ArmPricing::Hosted {
            pricing: Some(Pricing {
                input_per_mtok: 0.15,
                output_per_mtok: 0.6,
            }),
            batch_api: false,
        }),
        sweep: None,
        choices: None,
    }
}

pub fn item(id: &str) -> EvalItem {
    EvalItem {
        item_id: id.into(),
        input: format!("input of {id}"),
        target: "positive".into(),
    }
}
