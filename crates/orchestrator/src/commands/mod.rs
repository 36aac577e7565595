//! One module per subcommand; each has an `Args` (its clap doc comments are the help text) and
//! an `execute`. The helpers here are the few steps several commands share: opening the store,
//! choosing the run a read command is about, and recovering the plan a run was made from.

use std::path::Path;

use anyhow::Context;
use domain::{RunInfo, RunResults};
use experiment::Plan;
use store::Store;

use crate::exit::bad_input;

pub mod compare;
pub mod leaderboard;
pub mod models;
pub mod report;
pub mod run;
pub mod runs;
pub mod validate;

/// Opens (creating if needed) the database at `db`.
pub async fn open_store(db: &Path) -> anyhow::Result<Store> {
    Store::open(db)
        .await
        .with_context(|| format!("opening the database {}", db.display()))
}

/// Opens an existing database for reading; a missing file is the user's mistake, not ours.
pub async fn open_existing(db: &Path) -> anyhow::Result<Store> {
    if !db.exists() {
        return Err(bad_input(format!(
            "no database at {}: run an experiment first, or pass --db PATH",
            db.display()
        )));
    }
    open_store(db).await
}

/// The run a read command is about: `--run ID`, else the newest run of `experiment` (or of any
/// experiment when none is named).
pub async fn select_run(
    store: &Store,
    experiment: Option<&str>,
    run: Option<i64>,
) -> anyhow::Result<RunInfo> {
    if let Some(id) = run {
        return store
            .run(id)
            .await
            .context("reading the run")?
            .ok_or_else(|| {
                bad_input(format!(
                    "there is no run {id}; `orchestrator runs` lists them"
                ))
            });
    }
    store
        .latest_run(experiment)
        .await
        .context("finding the latest run")?
        .ok_or_else(|| match experiment {
            Some(name) => bad_input(format!("experiment {name:?} has no runs yet")),
            None => bad_input("there are no runs yet; start one with `orchestrator run FILE`"),
        })
}

/// Everything the run stored.
pub async fn load_results(store: &Store, run: &RunInfo) -> anyhow::Result<RunResults> {
    store
        .results(run.id)
        .await
        .with_context(|| format!("reading the results of run {}", run.id))
}

/// The plan the run was made from, as it stored it; None for a record this version can't read.
pub fn stored_plan(run: &RunInfo) -> Option<Plan> {
    match serde_json::from_str(&run.spec_json) {
        Ok(plan) => Some(plan),
        Err(err) => {
            tracing::warn!(run = run.id, error = %err, "the run's stored plan could not be read");
            None
        }
    }
}

/// The metric that ranks arms: the plan's decision metric, else the first scorer with scores.
pub fn primary_metric(plan: Option<&Plan>, results: &RunResults) -> String {
    plan.map(|p| p.primary_metric().to_string())
        .or_else(|| results.scores.first().map(|s| s.scorer.clone()))
        .unwrap_or_else(|| "equals".to_string())
}
