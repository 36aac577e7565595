//! One process per run: the run is claimed (resumed or created) together with a lease in the
//! store, refreshed by a heartbeat while the run works, and released when it stops. A second
//! `run` of the same spec is refused with the owner named; a lease whose owner died (its pid is
//! gone from this host, or its heartbeat is stale) is taken over; `--takeover` takes it anyway.

use std::time::Duration;

use domain::{RunInfo, RunStatus};
use experiment::Plan;
use store::{Claim, LeaseHolder, LeaseOwner, Liveness, NewRun, Store};
use tokio::task::JoinHandle;

use crate::execute::plan_without_rows;
use crate::{Error, RunOptions};

/// How often a working run refreshes its lease.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A lease not refreshed for this long belongs to a process that is gone (or hung).
const STALE_AFTER: Duration = Duration::from_secs(60);

/// This process, as a lease owner: pid, host name and a token no other process has.
pub(crate) fn this_process() -> LeaseOwner {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    LeaseOwner {
        pid,
        host: host_name(),
        token: format!("{pid}-{nanos:x}"),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether `holder` is known to be gone: it ran on this host and its pid no longer exists.
fn is_dead(holder: &LeaseHolder) -> bool {
    if holder.host != host_name() {
        return false;
    }
    let Ok(pid) = i32::try_from(holder.pid) else {
        return true;
    };
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Claims the run this invocation works on: `(run id, resumed)`, or [`Error::InProgress`].
pub(crate) async fn claim(
    store: &Store,
    plan: &Plan,
    opts: &RunOptions,
    owner: &LeaseOwner,
) -> Result<(i64, bool), Error> {
    let spec_json = serde_json::to_string(&plan_without_rows(plan)).unwrap_or_default();
    let new = NewRun {
        experiment: &plan.name,
        spec_hash: &plan.spec_hash,
        dataset_fingerprint: &plan.dataset.fingerprint,
        spec_json: &spec_json,
    };
    let liveness = Liveness {
        stale_after: STALE_AFTER,
        is_dead: &is_dead,
        takeover: opts.takeover,
    };
    match store.claim_run(&new, owner, !opts.new, &liveness).await? {
        Claim::Created(run) => Ok((run, false)),
        Claim::Resumed(run) => Ok((run, true)),
        Claim::Busy(holder) => Err(Error::InProgress {
            run: holder.run,
            pid: holder.pid,
            host: if holder.host == host_name() {
                "this host".to_owned()
            } else {
                holder.host
            },
        }),
    }
}

/// Refreshes the lease until aborted; a lease taken over by another process is logged.
pub(crate) fn keep_alive(store: Store, run: i64, owner: LeaseOwner) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.heartbeat(run, &owner).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(run, "another process took over this run's lease");
                    return;
                }
                Err(err) => tracing::warn!(run, error = %err, "refreshing the run's lease failed"),
            }
        }
    })
}

/// The status a read command should show for `run`: a run stored as `running` whose owner is
/// gone (its lease is stale, its pid has left this host, or it holds no lease at all, as a run
/// of an earlier version killed mid-way does) is `interrupted`: a rerun resumes it.
pub async fn observed_status(store: &Store, run: &RunInfo) -> Result<RunStatus, store::Error> {
    if run.status != RunStatus::Running {
        return Ok(run.status);
    }
    let gone = match store.lease_holder(run.id).await? {
        None => true,
        Some(holder) => holder.heartbeat_age > STALE_AFTER || is_dead(&holder),
    };
    Ok(if gone {
        RunStatus::Interrupted
    } else {
        RunStatus::Running
    })
}
