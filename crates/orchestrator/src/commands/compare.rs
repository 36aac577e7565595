//! `orchestrator compare A B`: the items on which two arms of a run disagree, and the paired
//! test (paired bootstrap; McNemar for pass/fail metrics) on all items.

use std::path::Path;

use anyhow::Context;

use crate::commands::leaderboard::{TableFormat, with_newline};
use crate::commands::{
    load_results, open_existing, primary_metric, select_run, warn_if_unfinished,
};
use crate::exit::{Exit, bad_input};
use crate::output::out;

/// Items where two arms disagree, with the paired test over all items.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first arm (e.g. zero-shot@gpt-4o-mini).
    pub arm_a: String,
    /// The second arm (e.g. smollm2-lora).
    pub arm_b: String,

    /// Compare within this run (default: the latest run).
    #[arg(long, value_name = "ID")]
    pub run: Option<i64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

pub async fn execute(args: Args, db: &Path) -> anyhow::Result<Exit> {
    let store = open_existing(db).await?;
    let run = select_run(&store, None, args.run).await?;
    let results = load_results(&store, &run).await?;
    warn_if_unfinished(&run);
    for arm in [&args.arm_a, &args.arm_b] {
        if !results.arms.iter().any(|a| &a.arm == arm) {
            let known: Vec<&str> = results.arms.iter().map(|a| a.arm.as_str()).collect();
            return Err(bad_input(format!(
                "run {} has no arm {arm:?}; its arms are: {}",
                run.id,
                known.join(", ")
            )));
        }
    }
    let metric = primary_metric(&results);
    let comparison = report::compare(&results, &args.arm_a, &args.arm_b, &metric)
        .context("comparing the arms")?;
    out!(
        "{}",
        with_newline(report::render_compare(&comparison, args.format.into()))
    )?;
    Ok(Exit::Ok)
}
