//! Batches sent through a provider's Batch API (`run --batch`): what was submitted, under which
//! token, and how far it got, so that a rerun collects a batch instead of submitting its items
//! again. The runner decides the order of steps; this module only records them, each step in
//! its own statement, the batch and its items in one transaction.

use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::{Result, Store, db_err, now_ms};

/// The status of a batch row whose answers are stored: its items are no longer in flight.
pub const COLLECTED: &str = "collected";
/// Written before anything is sent.
pub const PREPARING: &str = "preparing";
/// The input file is up; the remote batch may or may not exist.
pub const UPLOADED: &str = "uploaded";

/// One submitted (or about to be submitted) batch of one arm.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiBatch {
    pub id: i64,
    pub run_id: i64,
    pub arm: String,
    pub provider: String,
    /// In the remote batch's metadata.
    pub token: String,
    pub input_file_id: Option<String>,
    pub remote_id: Option<String>,
    /// [`PREPARING`], [`UPLOADED`], the provider's status, or [`COLLECTED`].
    pub status: String,
    pub created_ms: i64,
    /// Its items' ids, which are the lines' `custom_id`s.
    pub items: Vec<String>,
}

impl Store {
    /// Records a batch of `items` of `arm` before anything is sent ([`PREPARING`]); returns
    /// the batch as stored.
    pub async fn begin_api_batch(
        &self,
        run: i64,
        arm: &str,
        provider: &str,
        token: &str,
        items: &[String],
    ) -> Result<ApiBatch> {
        let err = db_err("recording a batch", Some(run));
        let created_ms = now_ms();
        let mut tx = self.writer.begin().await.map_err(&err)?;
        let id: i64 = sqlx::query(
            "INSERT INTO api_batches (run_id, arm, provider, token, status, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(run)
        .bind(arm)
        .bind(provider)
        .bind(token)
        .bind(PREPARING)
        .bind(created_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(&err)?
        .try_get("id")
        .map_err(&err)?;
        for item in items {
            sqlx::query("INSERT INTO api_batch_items (batch_id, item_id) VALUES (?, ?)")
                .bind(id)
                .bind(item)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(ApiBatch {
            id,
            run_id: run,
            arm: arm.to_owned(),
            provider: provider.to_owned(),
            token: token.to_owned(),
            input_file_id: None,
            remote_id: None,
            status: PREPARING.to_owned(),
            created_ms,
            items: items.to_vec(),
        })
    }

    /// The batch's input file is uploaded ([`UPLOADED`]).
    pub async fn set_api_batch_file(&self, batch: i64, file_id: &str) -> Result<()> {
        sqlx::query("UPDATE api_batches SET input_file_id = ?, status = ? WHERE id = ?")
            .bind(file_id)
            .bind(UPLOADED)
            .bind(batch)
            .execute(&self.writer)
            .await
            .map_err(db_err("recording a batch's file", None))?;
        Ok(())
    }

    /// The remote batch exists, with this id and status.
    pub async fn set_api_batch_remote(
        &self,
        batch: i64,
        remote_id: &str,
        status: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE api_batches SET remote_id = ?, status = ? WHERE id = ?")
            .bind(remote_id)
            .bind(status)
            .bind(batch)
            .execute(&self.writer)
            .await
            .map_err(db_err("recording a batch's id", None))?;
        Ok(())
    }

    /// The remote batch's latest status.
    pub async fn set_api_batch_status(&self, batch: i64, status: &str) -> Result<()> {
        sqlx::query("UPDATE api_batches SET status = ? WHERE id = ? AND status <> ?")
            .bind(status)
            .bind(batch)
            .bind(COLLECTED)
            .execute(&self.writer)
            .await
            .map_err(db_err("recording a batch's status", None))?;
        Ok(())
    }

    /// The batches' answers are stored: they are [`COLLECTED`].
    pub async fn collect_api_batches(&self, batches: &[i64]) -> Result<()> {
        let err = db_err("marking batches collected", None);
        let mut tx = self.writer.begin().await.map_err(&err)?;
        for batch in batches {
            sqlx::query("UPDATE api_batches SET status = ?, collected_ms = ? WHERE id = ?")
                .bind(COLLECTED)
                .bind(now_ms())
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }

    /// Run `run`'s batches that are not collected yet, oldest first, with their items.
    pub async fn open_api_batches(&self, run: i64) -> Result<Vec<ApiBatch>> {
        self.api_batches_where(run, true).await
    }

    /// All of run `run`'s batches, oldest first, with their items.
    pub async fn api_batches(&self, run: i64) -> Result<Vec<ApiBatch>> {
        self.api_batches_where(run, false).await
    }

    async fn api_batches_where(&self, run: i64, open_only: bool) -> Result<Vec<ApiBatch>> {
        let err = db_err("reading a run's batches", Some(run));
        let rows = sqlx::query(
            "SELECT * FROM api_batches WHERE run_id = ? AND (? = 0 OR status <> ?) ORDER BY id",
        )
        .bind(run)
        .bind(i64::from(open_only))
        .bind(COLLECTED)
        .fetch_all(&self.reader)
        .await
        .map_err(&err)?;
        let mut batches = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut batch = batch_from_row(row).map_err(&err)?;
            batch.items = sqlx::query_scalar(
                "SELECT item_id FROM api_batch_items WHERE batch_id = ? ORDER BY item_id",
            )
            .bind(batch.id)
            .fetch_all(&self.reader)
            .await
            .map_err(&err)?;
            batches.push(batch);
        }
        Ok(batches)
    }
}

fn batch_from_row(row: &SqliteRow) -> std::result::Result<ApiBatch, sqlx::Error> {
    Ok(ApiBatch {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        arm: row.try_get("arm")?,
        provider: row.try_get("provider")?,
        token: row.try_get("token")?,
        input_file_id: row.try_get("input_file_id")?,
        remote_id: row.try_get("remote_id")?,
        status: row.try_get("status")?,
        created_ms: row.try_get("created_ms")?,
        items: Vec::new(),
    })
}
