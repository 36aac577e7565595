//! `orchestrator run FILE`: runs (or resumes) an experiment with progress bars, Ctrl-C handling
//! and the exit codes of the run's outcome. `--dry-run` prints the plan and its estimated cost
//! and touches neither the network nor the database. `--batch` sends hosted arms through the
//! Batch API and waits for the batches (Ctrl-C stops waiting; a rerun collects them).
//!
//! Exit codes: 0 completed (also when the budget stopped it, with a warning); 3 finished with
//! failed items; 130 interrupted by Ctrl-C (rerun the same command to resume).

use std::path::{Path, PathBuf};

use anyhow::Context;
use domain::RunStatus;
use indicatif::MultiProgress;
use runner::{Estimate, RunOptions, RunOutcome};
use tokio_util::sync::CancellationToken;

use crate::commands::open_store;
use crate::exit::Exit;
use crate::output::{errln, outln};
use crate::progress::{Ui, plural};

/// Run an experiment: every prompt × provider arm and every fine-tune answers the eval items.
/// A rerun of the same spec resumes its unfinished run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment YAML.
    pub file: PathBuf,

    /// Run only these arms (comma-separated, e.g. zero-shot@gpt-4o-mini,smollm2-lora).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub arms: Option<Vec<String>>,

    /// Answer only the first N eval items.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Neither read nor write the response cache: every call goes to the provider.
    #[arg(long)]
    pub no_cache: bool,

    /// Most calls in flight over all providers (each provider's max_concurrency still holds).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,

    /// Print the arms, items and estimated cost; spend nothing and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Send hosted arms through their provider's Batch API (half price, answers within 24 h)
    /// and wait for the batches; a rerun (with or without --batch) collects batches left open.
    #[arg(long)]
    pub batch: bool,

    /// Start a new run even if an unfinished run of this spec could be resumed.
    #[arg(long)]
    pub new: bool,

    /// Resume the run even though another process holds it: for a process that died on another
    /// host (one on this host is detected by itself, as is one silent for a minute).
    #[arg(long, conflicts_with = "new")]
    pub takeover: bool,
}

pub async fn execute(args: Args, db: &Path, bars: MultiProgress) -> anyhow::Result<Exit> {
    let plan = experiment::load(&args.file)?;
    let opts = RunOptions {
        arms: args.arms,
        limit: args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        no_cache: args.no_cache,
        jobs: args.jobs.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        new: args.new,
        takeover: args.takeover,
        dry_run: args.dry_run,
        batch: args.batch,
        artifacts_dir: artifacts_dir(db),
        worker: None,
        grace: runner::DEFAULT_GRACE,
        abort: CancellationToken::new(),
        secrets: runner::Secrets::from_env(),
    };
    runner::check_options(&plan, &opts)?;
    if opts.dry_run {
        let estimate = runner::estimate(&plan, &opts)?;
        print_estimate(&estimate)?;
        return Ok(Exit::Ok);
    }

    let store = open_store(db).await?;
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(
        cancel.clone(),
        opts.abort.clone(),
        bars.clone(),
    ));
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let ui = tokio::spawn(Ui::new(bars.clone()).drive(rx));
    let outcome = runner::run(&plan, &store, opts, cancel.clone(), tx).await;
    // The runner has dropped its sender: the UI drains what is left and clears the bars.
    let _ = ui.await;
    signals.abort();
    store.close().await;

    let summary = match outcome.context("running the experiment")? {
        RunOutcome::Finished(summary) => summary,
        RunOutcome::Planned(estimate) => {
            print_estimate(&estimate)?;
            return Ok(Exit::Ok);
        }
    };
    // The run is over and stored: a closed stdout must not change its exit status.
    let _ = outln!(
        "run {}: {} · {} answered now · {} failed · ${:.4} spent",
        summary.run_id,
        summary.status,
        summary.answered,
        summary.failed_items,
        summary.spent_usd
    );
    Ok(match summary.status {
        RunStatus::Interrupted => {
            errln!(
                "interrupted: {} item{} left; run the same command again to resume run {}",
                summary.unanswered,
                plural(summary.unanswered),
                summary.run_id
            );
            Exit::Interrupted
        }
        RunStatus::BudgetExceeded => {
            errln!(
                "warning: budget reached: the run stopped before spending more than \
                 budget.max_cost_usd; {} item{} unanswered. Raise the budget and run again: \
                 answers already paid for come from the cache.",
                summary.unanswered,
                plural(summary.unanswered),
            );
            if summary.failed_items > 0 {
                Exit::Failures
            } else {
                Exit::Ok
            }
        }
        RunStatus::Failed => Exit::Internal,
        RunStatus::Completed | RunStatus::Running => {
            if summary.failed_items > 0 {
                errln!(
                    "{} item{} failed for good; see `orchestrator leaderboard --run {}` (a new run \
                     retries them, and answers already cached cost nothing)",
                    summary.failed_items,
                    plural(summary.failed_items),
                    summary.run_id
                );
                Exit::Failures
            } else {
                let _ = outln!(
                    "see the results: orchestrator leaderboard --run {}",
                    summary.run_id
                );
                Exit::Ok
            }
        }
    })
}

/// Where fine-tune jobs keep their files: `.orchestrator/` beside the database.
fn artifacts_dir(db: &Path) -> PathBuf {
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    dir.join(".orchestrator")
}

/// First Ctrl-C or SIGTERM (what `timeout`, CI cancellation and container stops send): stop
/// scheduling and let calls in flight finish. Second: abandon calls in flight now, but still
/// store every answer already received. Third: leave at once.
async fn watch_signals(cancel: CancellationToken, abort: CancellationToken, bars: MultiProgress) {
    let Ok(mut signals) = Signals::new() else {
        tracing::warn!(
            "cannot watch for Ctrl-C and SIGTERM; stopping early will lose calls in flight"
        );
        return;
    };
    signals.next().await;
    cancel.cancel();
    Ui::line(
        &bars,
        "stopping: letting calls in flight finish and saving results (Ctrl-C again to stop them now)",
    );
    signals.next().await;
    abort.cancel();
    Ui::line(
        &bars,
        "stopping now: abandoning calls in flight, saving what was answered; rerun the same command to resume",
    );
    signals.next().await;
    std::process::exit(Exit::Interrupted as i32);
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

fn print_estimate(e: &Estimate) -> std::io::Result<()> {
    let items = e.arms.first().map_or(0, |a| a.items);
    outln!(
        "{}: {} arm{} × {items} eval item{} (dry run: nothing is spent or written)",
        e.experiment,
        e.arms.len(),
        plural(e.arms.len() as u64),
        plural(items)
    )?;
    let width = e.arms.iter().map(|a| a.arm.len()).max().unwrap_or(3).max(3);
    outln!(
        "{:<width$}  {:<8}  {:>6}  {:>12}  {:>12}  {:>10}",
        "arm",
        "kind",
        "items",
        "prompt tok",
        "max out tok",
        "est. cost"
    )?;
    for a in &e.arms {
        let cost = a.cost_usd.map_or_else(|| "-".to_string(), dollars);
        outln!(
            "{:<width$}  {:<8}  {:>6}  {:>12}  {:>12}  {:>10}{}",
            a.arm,
            a.kind.as_str(),
            a.items,
            a.prompt_tokens,
            a.max_completion_tokens,
            cost,
            a.note
                .as_deref()
                .map_or_else(String::new, |n| format!("  ({n})")),
        )?;
        if let Some(calls) = a.search_calls {
            let cost = a
                .search_cost_usd
                .map_or_else(|| "local compute".to_string(), dollars);
            outln!(
                "{:<width$}  prompt search: up to {calls} calls on dev items, {cost}",
                ""
            )?;
        }
    }
    outln!(
        "estimated cost (upper bound, before cache hits): {}",
        dollars(e.total_usd)
    )?;
    if let Some(b) = e.budget_usd {
        let verdict = if e.total_usd > b {
            "the run would stop at the budget"
        } else {
            "within budget"
        };
        outln!("budget: ${b:.2} ({verdict})")?;
    }
    Ok(())
}

/// Dollars to four places; a negative zero (a free arm's `-0.0 × price`) prints as `$0.0000`.
fn dollars(x: f64) -> String {
    format!("${:.4}", x + 0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn negative_zero_dollars_print_as_zero() {
        assert_eq!(super::dollars(-0.0), "$0.0000");
        assert_eq!(super::dollars(0.00004), "$0.0000");
        assert_eq!(super::dollars(1.23456), "$1.2346");
    }
}
