//! Claiming a run: find the newest resumable run of a spec (or create one) and take its lease in
//! one `BEGIN IMMEDIATE` transaction, so two processes on one database never both answer the
//! same items; refreshing the lease while working; releasing it when done.
//!
//! Whether a holder is alive is the caller's judgement (a pid on this host can be asked; on
//! another host only the heartbeat's age tells), handed in as [`Liveness`].

use std::time::Duration;

use domain::RunStatus;
use sqlx::Row as _;

use crate::runs::{insert_run, newest_resumable};
use crate::{Result, Store, db_err, now_ms};

/// Who works on a run: this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    pub pid: u32,
    pub host: String,
    /// Unique to the process (a pid can be reused).
    pub token: String,
}

/// The process that holds a run's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub run: i64,
    pub pid: u32,
    pub host: String,
    /// How long ago it last refreshed the lease.
    pub heartbeat_age: Duration,
}

/// How a claim judges a lease it finds held by someone else.
pub struct Liveness<'a> {
    /// A lease not refreshed for this long is taken over.
    pub stale_after: Duration,
    /// Whether the holder is known to be gone (its pid on this host no longer exists).
    pub is_dead: &'a (dyn Fn(&LeaseHolder) -> bool + Sync),
    /// Take the lease whatever the holder's state (`run --takeover`).
    pub takeover: bool,
}

/// What a new run is made of.
pub struct NewRun<'a> {
    pub experiment: &'a str,
    pub spec_hash: &'a str,
    pub dataset_fingerprint: &'a str,
    pub spec_json: &'a str,
}

/// The outcome of [`Store::claim_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A new run, leased to the caller.
    Created(i64),
    /// The newest resumable run of the spec, now `running` and leased to the caller.
    Resumed(i64),
    /// That run is being worked on by another live process.
    Busy(LeaseHolder),
}

impl Store {
    /// Resumes the newest resumable run of `new`'s spec (unless `resume` is false) or creates a
    /// run, and leases it to `owner`, atomically. A run leased to a live, fresh holder is
    /// [`Claim::Busy`] instead.
    pub async fn claim_run(
        &self,
        new: &NewRun<'_>,
        owner: &LeaseOwner,
        resume: bool,
        liveness: &Liveness<'_>,
    ) -> Result<Claim> {
        let err = db_err("claiming a run", None);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let resumable = if resume {
            newest_resumable(&mut *tx, new.experiment, new.spec_hash)
                .await?
                .map(|r| r.id)
        } else {
            None
        };
        let (run, claim) = match resumable {
            Some(run) => {
                let held = sqlx::query(
                    "SELECT owner_pid, owner_host, token, heartbeat_ms FROM run_leases \
                     WHERE run_id = ?",
                )
                .bind(run)
                .fetch_optional(&mut *tx)
                .await
                .map_err(&err)?;
                if let Some(row) = held {
                    let token: String = row.try_get("token").map_err(&err)?;
                    let holder = holder_from_row(run, &row)?;
                    let alive = !liveness.takeover
                        && holder.heartbeat_age < liveness.stale_after
                        && !(liveness.is_dead)(&holder);
                    if token != owner.token && alive {
                        return Ok(Claim::Busy(holder));
                    }
                }
                sqlx::query("UPDATE runs SET status = ?, finished_ms = NULL WHERE id = ?")
                    .bind(RunStatus::Running.as_str())
                    .bind(run)
                    .execute(&mut *tx)
                    .await
                    .map_err(&err)?;
                (run, Claim::Resumed(run))
            }
            None => {
                let id = insert_run(&mut *tx, new).await?;
                (id, Claim::Created(id))
            }
        };
        sqlx::query(
            "INSERT INTO run_leases (run_id, owner_pid, owner_host, token, heartbeat_ms) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET \
             owner_pid = excluded.owner_pid, owner_host = excluded.owner_host, \
             token = excluded.token, heartbeat_ms = excluded.heartbeat_ms",
        )
        .bind(run)
        .bind(i64::from(owner.pid))
        .bind(&owner.host)
        .bind(&owner.token)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(claim)
    }

    /// Refreshes `owner`'s lease on `run`; false when the lease is no longer `owner`'s (it was
    /// taken over).
    pub async fn heartbeat(&self, run: i64, owner: &LeaseOwner) -> Result<bool> {
        let done =
            sqlx::query("UPDATE run_leases SET heartbeat_ms = ? WHERE run_id = ? AND token = ?")
                .bind(now_ms())
                .bind(run)
                .bind(&owner.token)
                .execute(&self.writer)
                .await
                .map_err(db_err("refreshing a run's lease", Some(run)))?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `owner`'s lease on `run` (nothing happens if it is someone else's now).
    pub async fn release_lease(&self, run: i64, owner: &LeaseOwner) -> Result<()> {
        sqlx::query("DELETE FROM run_leases WHERE run_id = ? AND token = ?")
            .bind(run)
            .bind(&owner.token)
            .execute(&self.writer)
            .await
            .map_err(db_err("releasing a run's lease", Some(run)))?;
        Ok(())
    }

    /// Who holds the lease on `run`, if anyone.
    pub async fn lease_holder(&self, run: i64) -> Result<Option<LeaseHolder>> {
        let err = db_err("reading a run's lease", Some(run));
        let row = sqlx::query(
            "SELECT owner_pid, owner_host, heartbeat_ms FROM run_leases WHERE run_id = ?",
        )
        .bind(run)
        .fetch_optional(&self.reader)
        .await
        .map_err(&err)?;
        row.map(|row| holder_from_row(run, &row)).transpose()
    }
}

fn holder_from_row(run: i64, row: &sqlx::sqlite::SqliteRow) -> Result<LeaseHolder> {
    let err = db_err("reading a run's lease", Some(run));
    let heartbeat: i64 = row.try_get("heartbeat_ms").map_err(&err)?;
    let pid: i64 = row.try_get("owner_pid").map_err(&err)?;
    Ok(LeaseHolder {
        run,
        pid: u32::try_from(pid).unwrap_or(0),
        host: row.try_get("owner_host").map_err(&err)?,
        heartbeat_age: Duration::from_millis(u64::try_from(now_ms() - heartbeat).unwrap_or(0)),
    })
}
