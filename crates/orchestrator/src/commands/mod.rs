//! One module per subcommand; each has an `Args` (its clap doc comments are the help text) and
//! an `execute`. The helpers here are the few steps several commands share: opening the store,
//! choosing the run a read command is about, and the metric that ranks its arms.

use std::path::Path;

use anyhow::Context;
use domain::{RunInfo, RunResults};
use store::Store;

use crate::exit::bad_input;

pub mod bench_serving;
pub mod compare;
pub mod data;
pub mod leaderboard;
pub mod models;
pub mod report;
pub mod run;
pub mod runs;
pub mod validate;

/// Opens (creating if needed) the database at `db`.
pub async fn open_store(db: &Path) -> anyhow::Result<Store> {
    // The store's errors name the path already.
    Ok(Store::open(db).await?)
}

/// Opens an existing database for reading, read-only: a read command never changes the file.
/// A database of an earlier version is upgraded first (with a note), as `run` would.
pub async fn open_existing(db: &Path) -> anyhow::Result<Store> {
    match Store::open_read_only(db).await {
        Err(store::Error::Missing { .. }) => Err(bad_input(format!(
            "no database at {}: run an experiment first, or pass --db PATH",
            db.display()
        ))),
        Err(store::Error::OlderSchema { found, known, .. }) => {
            crate::output::errln!(
                "note: upgrading {} from schema {found} to {known} (this version's)",
                db.display()
            );
            open_store(db).await
        }
        opened => Ok(opened?),
    }
}

/// The run a read command is about: `--run ID`, else the newest run of `experiment` (or of any
/// experiment when none is named).
pub async fn select_run(
    store: &Store,
    experiment: Option<&str>,
    run: Option<i64>,
) -> anyhow::Result<RunInfo> {
    let mut info = if let Some(id) = run {
        store
            .run(id)
            .await
            .context("reading the run")?
            .ok_or_else(|| {
                bad_input(format!(
                    "there is no run {id}; `orchestrator runs` lists them"
                ))
            })?
    } else {
        store
            .latest_run(experiment)
            .await
            .context("finding the latest run")?
            .ok_or_else(|| match experiment {
                Some(name) => bad_input(format!("experiment {name:?} has no runs yet")),
                None => bad_input("there are no runs yet; start one with `orchestrator run FILE`"),
            })?
    };
    info.status = observed_status(store, &info).await?;
    Ok(info)
}

/// The run's status as a reader should see it: `running` with its owner gone is `interrupted`.
pub async fn observed_status(store: &Store, run: &RunInfo) -> anyhow::Result<domain::RunStatus> {
    runner::observed_status(store, run)
        .await
        .with_context(|| format!("reading the lease of run {}", run.id))
}

/// Everything the run stored.
pub async fn load_results(store: &Store, run: &RunInfo) -> anyhow::Result<RunResults> {
    store
        .results(run.id)
        .await
        .with_context(|| format!("reading the results of run {}", run.id))
}

/// The metric that ranks arms: the one the run stored, else (a run of an earlier version) the
/// default, with a note on stderr.
pub fn primary_metric(results: &RunResults) -> String {
    let assumed = ::report::assumed_settings(results);
    if let Some(note) = &assumed.note {
        eprintln!("note: {note}");
    }
    assumed.settings.decision.metric
}

/// Whether `run` stopped before answering everything it was asked (interrupted, failed, or
/// still running): its figures cover the items answered so far. A run the budget stopped is
/// finished: what it has is final for that budget.
pub fn is_unfinished(run: &RunInfo) -> bool {
    !run.status.is_finished()
}

/// Says on stderr, before any figure, that `run` is not finished and what that means.
pub fn warn_if_unfinished(run: &RunInfo) {
    if is_unfinished(run) {
        crate::output::errln!(
            "warning: run {} is {}, not finished: the figures cover only the items answered so \
             far and any verdict is provisional; run the spec again to finish it",
            run.id,
            run.status
        );
    }
}
