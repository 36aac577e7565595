//! `orchestrator report`: the decision report of a run — quality ± CI, cost over the horizon,
//! time-to-ship, break-even volume and the verdict with its reasons — as text, JSON or Markdown,
//! and optionally as a self-contained HTML page.

use std::path::{Path, PathBuf};

use anyhow::Context;
use report::ReportFormat;

use crate::commands::leaderboard::with_newline;
use crate::commands::{is_unfinished, load_results, open_existing, select_run, warn_if_unfinished};
use crate::exit::Exit;
use crate::output::{check_report_path, errln, out};

/// The decision report: stay with a prompt, escalate to a fine-tune, or neither — with reasons.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment whose latest run to report on (default: the latest run of any experiment).
    pub experiment: Option<String>,

    /// Report on this run instead.
    #[arg(long, value_name = "ID")]
    pub run: Option<i64>,

    /// Also write the report as a self-contained HTML page to FILE. An existing FILE is
    /// replaced only when it is an earlier report (or with --force); never the database.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Let --html replace an existing file that is not an earlier report.
    #[arg(long, requires = "html")]
    pub force: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// For CI: exit with code 4 when the recommended arm scores below QUALITY (default: the
    /// spec's `decision.quality_target`), or when no arm is recommended.
    #[arg(long, value_name = "QUALITY", num_args = 0..=1)]
    pub fail_under: Option<Option<String>>,
}

/// `--fail-under`'s optional value, read after clap. Clap gives the flag the next word even
/// when that word is the experiment (`report --fail-under movie-sentiment`): a word that is not
/// a number is then taken as the experiment, when none was given.
fn fail_under(args: &mut Args) -> anyhow::Result<Option<Option<f64>>> {
    let Some(value) = args.fail_under.take() else {
        return Ok(None);
    };
    let Some(word) = value else {
        return Ok(Some(None));
    };
    match word.parse::<f64>() {
        Ok(q) if q.is_finite() => Ok(Some(Some(q))),
        _ if args.experiment.is_none() => {
            args.experiment = Some(word);
            Ok(Some(None))
        }
        _ => Err(crate::exit::bad_input(format!(
            "--fail-under takes a quality such as 0.9 (or nothing, for the spec's quality_target), got `{word}`"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub async fn execute(mut args: Args, db: &Path) -> anyhow::Result<Exit> {
    let fail_under = fail_under(&mut args)?;
    if let Some(path) = &args.html {
        check_report_path(path, db, args.force)?;
    }
    let store = open_existing(db).await?;
    let run = select_run(&store, args.experiment.as_deref(), args.run).await?;
    let results = load_results(&store, &run).await?;
    warn_if_unfinished(&run);
    // A run stored without its settings gets the defaults; the report's warnings say so.
    let settings = report::assumed_settings(&results).settings;
    let inputs = report::ArmCostInputs::from_results(&results);
    let decided = report::decide(&results, &settings.costs, &settings.decision, &inputs);
    let format = match args.format {
        Format::Text => ReportFormat::Text,
        Format::Json => ReportFormat::Json,
        Format::Markdown => ReportFormat::Markdown,
    };
    out!("{}", with_newline(report::render_report(&decided, format)))?;
    if let Some(path) = args.html {
        std::fs::write(&path, report::render_html(&decided, &results))
            .with_context(|| format!("writing {}", path.display()))?;
        errln!("wrote {}", path.display());
    }
    if fail_under.is_some() && is_unfinished(&run) {
        errln!(
            "fail-under: run {} is {}, not finished; finish it before holding it to a bar",
            run.id,
            run.status
        );
        return Ok(Exit::NotFinished);
    }
    if let Some(threshold) = fail_under
        && report::fail_under(&decided, threshold)
    {
        errln!(
            "fail-under: the recommended arm ({}) is below {:.3}",
            decided.recommended_arm.as_deref().unwrap_or("none"),
            threshold.unwrap_or(decided.quality_target)
        );
        return Ok(Exit::BelowTarget);
    }
    Ok(Exit::Ok)
}
