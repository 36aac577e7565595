//! `orchestrator leaderboard`: one row per arm of a run, ranked by the decision metric, with
//! quality ± 95% CI, cost, latency and tokens (`report::LeaderboardRow` is the JSON shape).

use std::path::Path;

use crate::commands::{
    load_results, open_existing, primary_metric, select_run, warn_if_unfinished,
};
use crate::exit::Exit;
use crate::output::out;

/// One row per arm: quality with a 95% CI, cost, latency, tokens, errors.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment whose latest run to show (default: the latest run of any experiment).
    pub experiment: Option<String>,

    /// Show this run instead (ids: `orchestrator runs`).
    #[arg(long, value_name = "ID")]
    pub run: Option<i64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

/// Formats of tabular output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
    Csv,
    Markdown,
}

impl From<TableFormat> for report::Format {
    fn from(f: TableFormat) -> Self {
        match f {
            TableFormat::Table => report::Format::Table,
            TableFormat::Json => report::Format::Json,
            TableFormat::Csv => report::Format::Csv,
            TableFormat::Markdown => report::Format::Markdown,
        }
    }
}

pub async fn execute(args: Args, db: &Path) -> anyhow::Result<Exit> {
    let store = open_existing(db).await?;
    let run = select_run(&store, args.experiment.as_deref(), args.run).await?;
    let results = load_results(&store, &run).await?;
    warn_if_unfinished(&run);
    let metric = primary_metric(&results);
    let rows = report::leaderboard(&results, &metric);
    out!(
        "{}",
        with_newline(report::render_leaderboard(&rows, args.format.into()))
    )?;
    Ok(Exit::Ok)
}

/// Renderers may or may not end with a newline; the terminal wants exactly one.
pub fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
