//! Everything a run stored, read back as one `domain::RunResults` for the leaderboard, compare
//! and report.
//!
//! The order is part of the contract, so reports and snapshots are stable: arms in the order the
//! plan recorded them, items in eval-set order, calls and scores by arm then item (then scorer),
//! curves by step. Rows for an arm or item that was never recorded still come back, after the
//! recorded ones, sorted by name. All reads share one snapshot, so a run being written while it
//! is read comes back consistent. This module computes nothing from the rows.

use std::collections::HashMap;

use domain::{
    CallRecord, LossPoint, LossSplit, RunResults, ScoreRecord, TrainingRecord, TrainingStatus,
};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::runs::{arm_columns, arm_from_row, run_columns, run_from_row};
use crate::{Error, Result, Store, db_err, from_i64, parse_enum};

const OP: &str = "reading a run's results";

impl Store {
    /// Everything run `run` stored. [`Error::NotFound`] if there is no such run.
    pub async fn results(&self, run: i64) -> Result<RunResults> {
        let err = db_err(OP, Some(run));
        // A read transaction pins one WAL snapshot for all the queries below.
        let mut tx = self.reader.begin().await.map_err(&err)?;

        let info = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = ?"
        ))
        .bind(run)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?
        .ok_or(Error::NotFound { run })?;
        let info = run_from_row(&info)?;

        let arms = sqlx::query(concat!(
            "SELECT ",
            arm_columns!(),
            " FROM arms WHERE run_id = ? ORDER BY seq"
        ))
        .bind(run)
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?
        .iter()
        .map(arm_from_row)
        .collect::<Result<Vec<_>>>()?;

        let items =
            sqlx::query("SELECT item_id, input, target FROM items WHERE run_id = ? ORDER BY seq")
                .bind(run)
                .fetch_all(&mut *tx)
                .await
                .map_err(&err)?
                .iter()
                .map(|row| {
                    Ok(domain::EvalItem {
                        item_id: row.try_get("item_id").map_err(&err)?,
                        input: row.try_get("input").map_err(&err)?,
                        target: row.try_get("target").map_err(&err)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;

        // `x.seq IS NULL` first in each key puts unrecorded arms/items after recorded ones.
        let calls = sqlx::query(
            "SELECT c.* FROM calls c \
             LEFT JOIN arms a ON a.run_id = c.run_id AND a.arm = c.arm \
             LEFT JOIN items i ON i.run_id = c.run_id AND i.item_id = c.item_id \
             WHERE c.run_id = ? \
             ORDER BY a.seq IS NULL, a.seq, c.arm, i.seq IS NULL, i.seq, c.item_id",
        )
        .bind(run)
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?
        .iter()
        .map(call_from_row)
        .collect::<Result<Vec<_>>>()?;

        let scores = sqlx::query(
            "SELECT s.arm, s.item_id, s.scorer, s.value FROM scores s \
             LEFT JOIN arms a ON a.run_id = s.run_id AND a.arm = s.arm \
             LEFT JOIN items i ON i.run_id = s.run_id AND i.item_id = s.item_id \
             WHERE s.run_id = ? \
             ORDER BY a.seq IS NULL, a.seq, s.arm, i.seq IS NULL, i.seq, s.item_id, s.scorer",
        )
        .bind(run)
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?
        .iter()
        .map(|row| {
            Ok(ScoreRecord {
                arm: row.try_get("arm").map_err(&err)?,
                item_id: row.try_get("item_id").map_err(&err)?,
                scorer: row.try_get("scorer").map_err(&err)?,
                value: row.try_get("value").map_err(&err)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

        let mut curves: HashMap<String, Vec<LossPoint>> = HashMap::new();
        for row in sqlx::query(
            "SELECT arm, step, epoch, split, loss FROM loss_points WHERE run_id = ? \
             ORDER BY arm, step, split",
        )
        .bind(run)
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?
        {
            let arm: String = row.try_get("arm").map_err(&err)?;
            let loss: Option<f64> = row.try_get("loss").map_err(&err)?;
            curves.entry(arm).or_default().push(LossPoint {
                step: from_i64("loss_points", "step", row.try_get("step").map_err(&err)?)?,
                epoch: row.try_get("epoch").map_err(&err)?,
                split: parse_enum(
                    "loss_points",
                    "split",
                    row.try_get("split").map_err(&err)?,
                    LossSplit::parse,
                )?,
                loss: loss.unwrap_or(f64::NAN),
            });
        }

        let training = sqlx::query(
            "SELECT t.* FROM training t \
             LEFT JOIN arms a ON a.run_id = t.run_id AND a.arm = t.arm \
             WHERE t.run_id = ? ORDER BY a.seq IS NULL, a.seq, t.arm",
        )
        .bind(run)
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?
        .iter()
        .map(|row| {
            let arm: String = row.try_get("arm").map_err(&err)?;
            Ok(TrainingRecord {
                curve: curves.remove(&arm).unwrap_or_default(),
                arm,
                status: parse_enum(
                    "training",
                    "status",
                    row.try_get("status").map_err(&err)?,
                    TrainingStatus::parse,
                )?,
                train_seconds: row.try_get("train_seconds").map_err(&err)?,
                tokens_per_second: row.try_get("tokens_per_second").map_err(&err)?,
                peak_memory_bytes: from_i64(
                    "training",
                    "peak_memory_bytes",
                    row.try_get("peak_memory_bytes").map_err(&err)?,
                )?,
                adapter_path: row.try_get("adapter_path").map_err(&err)?,
                checkpoint_dir: row.try_get("checkpoint_dir").map_err(&err)?,
                error: row.try_get("error").map_err(&err)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

        let searches = crate::searches::read_searches(&mut tx, run).await?;
        let serving_bench = crate::serving_bench::read_serving_bench(&mut tx, run).await?;
        tx.rollback().await.map_err(&err)?;
        Ok(RunResults {
            run: info,
            arms,
            items,
            calls,
            scores,
            training,
            searches,
            serving_bench,
        })
    }
}

fn call_from_row(row: &SqliteRow) -> Result<CallRecord> {
    let err = db_err(OP, None);
    let int = |column: &'static str| -> Result<u32> {
        from_i64("calls", column, row.try_get(column).map_err(&err)?)
    };
    Ok(CallRecord {
        arm: row.try_get("arm").map_err(&err)?,
        item_id: row.try_get("item_id").map_err(&err)?,
        response: row.try_get("response").map_err(&err)?,
        prompt_tokens: int("prompt_tokens")?,
        completion_tokens: int("completion_tokens")?,
        latency_ms: row.try_get("latency_ms").map_err(&err)?,
        cost_usd: row.try_get("cost_usd").map_err(&err)?,
        attempts: int("attempts")?,
        cache_hit: row.try_get("cache_hit").map_err(&err)?,
        error: row.try_get("error").map_err(&err)?,
        compute_seconds: row.try_get("compute_seconds").map_err(&err)?,
        truncated: row.try_get("truncated").map_err(&err)?,
        choice: crate::choice_columns::choice_from_row(row, "calls")?,
        token_logprobs: crate::choice_columns::logprobs_from_row(row, "calls")?,
    })
}
