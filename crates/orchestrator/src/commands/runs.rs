//! `orchestrator runs`: lists the runs in the database, newest first, with their status.

use std::path::Path;

use anyhow::Context;
use chrono::{Local, TimeZone};

use crate::commands::{observed_status, open_existing};
use crate::exit::Exit;
use crate::output::outln;

/// List runs with their status.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn execute(_args: Args, db: &Path) -> anyhow::Result<Exit> {
    let store = open_existing(db).await?;
    let mut runs = store.list_runs().await.context("listing runs")?;
    runs.sort_by_key(|r| std::cmp::Reverse(r.id));
    if runs.is_empty() {
        outln!("no runs yet")?;
        return Ok(Exit::Ok);
    }
    let width = runs
        .iter()
        .map(|r| r.experiment.len())
        .max()
        .unwrap_or(10)
        .max(10);
    outln!(
        "{:>4}  {:<width$}  {:<15}  {:<16}  {:<16}  spec",
        "id",
        "experiment",
        "status",
        "started",
        "finished"
    )?;
    for mut r in runs {
        r.status = observed_status(&store, &r).await?;
        outln!(
            "{:>4}  {:<width$}  {:<15}  {:<16}  {:<16}  {}",
            r.id,
            r.experiment,
            r.status.as_str(),
            when(r.started_ms),
            r.finished_ms.map_or_else(|| "-".to_string(), when),
            r.spec_hash.get(..12).unwrap_or(&r.spec_hash),
        )?;
    }
    Ok(Exit::Ok)
}

fn when(ms: i64) -> String {
    Local.timestamp_millis_opt(ms).single().map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}
