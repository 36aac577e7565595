//! The training side of fine-tune arms: one status row per arm, updated as the worker reports,
//! and the loss curve it draws.
//!
//! This module records what the worker said; it does not interpret the curve (early stopping,
//! best checkpoint) — the worker and the report do.

use domain::{LossPoint, TrainingRecord};

use crate::{Result, Store, db_err, now_ms, to_i64};

impl Store {
    /// Creates or updates the training record of `t.arm`. `t.curve` is not stored here: loss
    /// points arrive one by one through [`Self::insert_loss_points`].
    pub async fn upsert_training(&self, run: i64, t: &TrainingRecord) -> Result<()> {
        let peak_memory_bytes = to_i64("peak_memory_bytes", t.peak_memory_bytes)?;
        sqlx::query(
            "INSERT INTO training (run_id, arm, status, train_seconds, tokens_per_second, \
             peak_memory_bytes, adapter_path, checkpoint_dir, error, updated_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (run_id, arm) DO UPDATE SET status = excluded.status, \
             train_seconds = excluded.train_seconds, \
             tokens_per_second = excluded.tokens_per_second, \
             peak_memory_bytes = excluded.peak_memory_bytes, \
             adapter_path = excluded.adapter_path, checkpoint_dir = excluded.checkpoint_dir, \
             error = excluded.error, updated_ms = excluded.updated_ms",
        )
        .bind(run)
        .bind(t.arm.as_str())
        .bind(t.status.as_str())
        .bind(t.train_seconds)
        .bind(t.tokens_per_second)
        .bind(peak_memory_bytes)
        .bind(t.adapter_path.as_deref())
        .bind(t.checkpoint_dir.as_deref())
        .bind(t.error.as_deref())
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(db_err("recording a training record", Some(run)))?;
        Ok(())
    }

    /// Adds points to `arm`'s loss curve, in one transaction. A point for a (step, split) already
    /// stored is replaced: a training resumed from a checkpoint recomputes the steps after it,
    /// and the latest measurement is the one that belongs to the adapter it produces.
    pub async fn insert_loss_points(&self, run: i64, arm: &str, pts: &[LossPoint]) -> Result<()> {
        if pts.is_empty() {
            return Ok(());
        }
        let err = db_err("recording loss points", Some(run));
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        for p in pts {
            sqlx::query(
                "INSERT INTO loss_points (run_id, arm, step, split, epoch, loss) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (run_id, arm, step, split) DO UPDATE SET epoch = excluded.epoch, \
                 loss = excluded.loss",
            )
            .bind(run)
            .bind(arm)
            .bind(to_i64("step", p.step)?)
            .bind(p.split.as_str())
            .bind(p.epoch)
            // SQLite turns a NaN into NULL; the column allows it and reads give NaN back.
            .bind(p.loss)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }
}
