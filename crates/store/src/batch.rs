//! The runner's hot path: calls, scores and cache entries written in batches, and the reads a
//! run makes while it goes (which items are done, what has been spent, is an answer cached).
//!
//! A batch is one `BEGIN IMMEDIATE` transaction of multi-row `INSERT`s (see `multirow`). Cache
//! lookups come one key at a time ([`Store::cache_get`]) or [`CACHE_KEYS_PER_QUERY`] keys per
//! query ([`Store::cache_get_many`]), which is how the runner asks: once per chunk of pending
//! items, not once per call. This module does not decide what to retry: it only guarantees that
//! a successful call is never overwritten.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use domain::{CallRecord, ScoreRecord};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::choice_columns::{self, ChoiceColumns};
use crate::multirow::{Insert, insert_rows};
use crate::{Error, Result, Store, db_err, from_i64, now_ms};

/// Results the runner has gathered since its last write, stored together in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub calls: Vec<CallRecord>,
    pub scores: Vec<ScoreRecord>,
    /// Provider answers to cache, keyed by `providers::cache_key`.
    pub cache: Vec<(String, CachedAnswer)>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.scores.is_empty() && self.cache.is_empty()
    }

    /// Rows in the batch, all tables together.
    pub fn len(&self) -> usize {
        self.calls.len() + self.scores.len() + self.cache.len()
    }
}

/// A provider answer kept in the response cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Cut off at the token limit; served as such, never as a whole answer.
    #[serde(default)]
    pub truncated: bool,
    /// The label a constrained answer chose, served with it.
    #[serde(default)]
    pub choice: Option<domain::ChoiceRecord>,
    #[serde(default)]
    pub token_logprobs: Option<Vec<f32>>,
}

/// A call replaces a stored one only when the stored one failed: resumed runs retry failures,
/// and a success is final.
static CALLS: LazyLock<Insert> = LazyLock::new(|| {
    Insert::new(
        &format!(
            "INSERT INTO calls (run_id, arm, item_id, response, prompt_tokens, \
             completion_tokens, latency_ms, cost_usd, attempts, cache_hit, error, \
             compute_seconds, truncated, {}, created_ms)",
            choice_columns::COLUMNS
        ),
        19,
        &format!(
            "ON CONFLICT (run_id, arm, item_id) DO UPDATE SET response = excluded.response, \
             prompt_tokens = excluded.prompt_tokens, \
             completion_tokens = excluded.completion_tokens, latency_ms = excluded.latency_ms, \
             cost_usd = excluded.cost_usd, attempts = excluded.attempts, \
             cache_hit = excluded.cache_hit, error = excluded.error, \
             compute_seconds = excluded.compute_seconds, truncated = excluded.truncated, {}, \
             created_ms = excluded.created_ms WHERE calls.error IS NOT NULL",
            choice_columns::UPDATE_FROM_EXCLUDED
        ),
    )
});

static SCORES: LazyLock<Insert> = LazyLock::new(|| {
    Insert::new(
        "INSERT INTO scores (run_id, arm, item_id, scorer, value)",
        5,
        "ON CONFLICT (run_id, arm, item_id, scorer) DO UPDATE SET value = excluded.value",
    )
});

/// The first answer cached for a key stays: the key hashes everything that shaped the answer.
static CACHE: LazyLock<Insert> = LazyLock::new(|| {
    Insert::new(
        &format!(
            "INSERT INTO cache (key, text, prompt_tokens, completion_tokens, truncated, {}, \
             created_ms)",
            choice_columns::COLUMNS
        ),
        11,
        "ON CONFLICT (key) DO NOTHING",
    )
});

/// The columns a cached answer is read from.
static CACHE_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "text, prompt_tokens, completion_tokens, truncated, {}",
        choice_columns::COLUMNS
    )
});

static CACHE_GET: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM cache WHERE key = ?", *CACHE_COLUMNS));

/// Keys per query of [`Store::cache_get_many`]: a few hundred keep each query's parameter list
/// far below SQLite's limit while making per-query overhead negligible.
pub const CACHE_KEYS_PER_QUERY: usize = 512;

static CACHE_GET_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT key, {} FROM cache WHERE key IN ({})",
        *CACHE_COLUMNS,
        vec!["?"; CACHE_KEYS_PER_QUERY].join(", ")
    )
});

/// Reads a `cache` row with at least `text`, `prompt_tokens` and `completion_tokens`.
fn cached_from_row(row: &SqliteRow) -> Result<CachedAnswer> {
    let err = db_err("reading the response cache", None);
    Ok(CachedAnswer {
        text: row.try_get("text").map_err(&err)?,
        prompt_tokens: from_i64(
            "cache",
            "prompt_tokens",
            row.try_get("prompt_tokens").map_err(&err)?,
        )?,
        completion_tokens: from_i64(
            "cache",
            "completion_tokens",
            row.try_get("completion_tokens").map_err(&err)?,
        )?,
        truncated: row.try_get("truncated").map_err(&err)?,
        choice: choice_columns::choice_from_row(row, "cache")?,
        token_logprobs: choice_columns::logprobs_from_row(row, "cache")?,
    })
}

impl Store {
    /// Writes a batch of calls, scores and cache entries in one transaction: all of it lands, or
    /// none. A call for an (arm, item) already stored replaces it only if the stored call failed;
    /// scores replace earlier values for the same (arm, item, scorer); a cache key already
    /// present keeps its first answer.
    pub async fn write_batch(&self, run: i64, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let err = db_err("writing a batch of results", Some(run));
        let created_ms = now_ms();
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        insert_rows(&mut tx, &CALLS, &batch.calls, |q, c| {
            let q = q
                .bind(run)
                .bind(c.arm.as_str())
                .bind(c.item_id.as_str())
                .bind(c.response.as_deref())
                .bind(c.prompt_tokens)
                .bind(c.completion_tokens)
                .bind(c.latency_ms)
                .bind(c.cost_usd)
                .bind(c.attempts)
                .bind(c.cache_hit)
                .bind(c.error.as_deref())
                .bind(c.compute_seconds)
                .bind(c.truncated);
            ChoiceColumns::new(c.choice.as_ref(), c.token_logprobs.as_deref())
                .bind(q)
                .bind(created_ms)
        })
        .await
        .map_err(&err)?;
        insert_rows(&mut tx, &SCORES, &batch.scores, |q, s| {
            q.bind(run)
                .bind(s.arm.as_str())
                .bind(s.item_id.as_str())
                .bind(s.scorer.as_str())
                .bind(s.value)
        })
        .await
        .map_err(&err)?;
        insert_rows(&mut tx, &CACHE, &batch.cache, |q, (key, answer)| {
            let q = q
                .bind(key.as_str())
                .bind(answer.text.as_str())
                .bind(answer.prompt_tokens)
                .bind(answer.completion_tokens)
                .bind(answer.truncated);
            ChoiceColumns::new(answer.choice.as_ref(), answer.token_logprobs.as_deref())
                .bind(q)
                .bind(created_ms)
        })
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        tracing::debug!(
            run,
            calls = batch.calls.len(),
            scores = batch.scores.len(),
            cache = batch.cache.len(),
            "batch written"
        );
        Ok(())
    }

    /// Items of `arm` that already have a successful call (`error IS NULL`); a resumed run
    /// skips these and retries the rest. Empty for an unknown run or arm.
    pub async fn completed_items(&self, run: i64, arm: &str) -> Result<HashSet<String>> {
        let rows =
            sqlx::query("SELECT item_id FROM calls WHERE run_id = ? AND arm = ? AND error IS NULL")
                .bind(run)
                .bind(arm)
                .fetch_all(&self.reader)
                .await
                .map_err(db_err("reading completed items", Some(run)))?;
        rows.iter()
            .map(|row| {
                row.try_get("item_id")
                    .map_err(db_err("reading completed items", Some(run)))
            })
            .collect()
    }

    /// The cached answer for `key`, if one was stored.
    pub async fn cache_get(&self, key: &str) -> Result<Option<CachedAnswer>> {
        let err = db_err("reading the response cache", None);
        let row = sqlx::query(CACHE_GET.as_str())
            .bind(key)
            .fetch_optional(&self.reader)
            .await
            .map_err(&err)?;
        row.as_ref().map(cached_from_row).transpose()
    }

    /// The cached answers of every key in `keys` that has one, keyed like `keys`; keys without
    /// an answer are simply absent. Asks [`CACHE_KEYS_PER_QUERY`] keys per query, so looking up
    /// a chunk of pending items costs one round trip to SQLite instead of one per item.
    /// Duplicate keys are allowed.
    pub async fn cache_get_many(&self, keys: &[String]) -> Result<HashMap<String, CachedAnswer>> {
        let err = db_err("reading the response cache", None);
        let mut found = HashMap::new();
        for chunk in keys.chunks(CACHE_KEYS_PER_QUERY) {
            // A short chunk is padded with its own last key, so every lookup uses the one
            // statement text (and the one prepared statement); `IN` ignores the repeats.
            let Some(last) = chunk.last() else { continue };
            let padded = chunk
                .iter()
                .chain(std::iter::repeat(last))
                .take(CACHE_KEYS_PER_QUERY);
            let query = padded.fold(sqlx::query(CACHE_GET_MANY.as_str()), |q, key| {
                q.bind(key.as_str())
            });
            let rows = query.fetch_all(&self.reader).await.map_err(&err)?;
            for row in &rows {
                let key: String = row.try_get("key").map_err(&err)?;
                found.insert(key, cached_from_row(row)?);
            }
        }
        Ok(found)
    }

    /// What the run's calls have cost so far, failed calls included, in US dollars.
    pub async fn run_cost(&self, run: i64) -> Result<f64> {
        let err = db_err("summing a run's cost", Some(run));
        // TOTAL is 0.0 over no rows; the EXISTS tells "no calls yet" from "no such run".
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?1) AS found, \
             (SELECT TOTAL(cost_usd) FROM calls WHERE run_id = ?1) AS cost",
        )
        .bind(run)
        .fetch_one(&self.reader)
        .await
        .map_err(&err)?;
        let found: bool = row.try_get("found").map_err(&err)?;
        if !found {
            return Err(Error::NotFound { run });
        }
        row.try_get("cost").map_err(&err)
    }
}
