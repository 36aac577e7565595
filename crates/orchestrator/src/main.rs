//! `orchestrator`: compare prompt engineering with LoRA fine-tuning on one eval set.
//!
//! This is the thin edge of the program: it parses the command line (one file per subcommand in
//! `commands/`), installs logging, draws progress, handles Ctrl-C, and turns every outcome into
//! one of the documented exit codes. It holds no domain logic: specs are the `experiment`
//! crate's, runs the `runner`'s, results the `store`'s, and every table the `report`'s.
//!
//! Exit codes: 0 success; 1 bad input (spec, dataset, flags); 2 internal error; 3 the run
//! finished with failed items; 4 and 5 `report --fail-under` (below the bar, run not finished);
//! 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

mod commands;
mod db_url;
mod exit;
mod logging;
mod output;
mod progress;

use exit::Exit;

/// Compare prompt engineering with LoRA fine-tuning on one eval set: run every prompt ×
/// provider arm and every fine-tune on the same items, score them alike, and decide with data.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, propagate_version = true)]
struct Cli {
    /// The SQLite database that holds runs and results: a path, or a `sqlite:` URL.
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATOR_DB",
        default_value = "orchestrator.db",
        value_name = "PATH"
    )]
    db: PathBuf,

    /// Log more: -v for progress details, -vv for debugging (ORCHESTRATOR_LOG takes a full
    /// tracing filter, e.g. `runner=debug`).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(commands::validate::Args),
    Run(commands::run::Args),
    Runs(commands::runs::Args),
    Leaderboard(commands::leaderboard::Args),
    Compare(commands::compare::Args),
    Report(commands::report::Args),
    Models(commands::models::Args),
    BenchServing(commands::bench_serving::Args),
    /// Check an experiment's data (`data check FILE`).
    Data(commands::data::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; a usage error is bad input (1), not clap's 2.
            let code = if err.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Ok
            };
            let _ = err.print();
            return code.into();
        }
    };
    // Local models run in this process (and in fine-tune workers, which inherit it): restart
    // with the CPU settings they need before any thread exists. Returns only when nothing was
    // missing or the restart failed.
    let cpu_env = match cli.command {
        Command::Run(_) | Command::BenchServing(_) | Command::Data(_) => runner::cpu_env::apply(),
        _ => Ok(()),
    };
    let bars = indicatif::MultiProgress::with_draw_target(
        indicatif::ProgressDrawTarget::stderr_with_hz(8),
    );
    logging::init(cli.verbose, bars.clone());
    if let Err(err) = cpu_env {
        tracing::warn!(error = %err, "could not restart with the CPU settings for local models; going on without them");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            output::errln!("error: starting the async runtime failed: {err}");
            return Exit::Internal.into();
        }
    };
    // The command runs as a task on the worker threads rather than on this thread: the hosted
    // scheduler is woken by every finished call, and waking a task on a worker is cheaper than
    // unparking the thread inside `block_on` (measured in BENCHMARKS.md).
    let outcome = runtime.block_on(async {
        match tokio::spawn(dispatch(cli, bars)).await {
            Ok(outcome) => outcome,
            Err(join) => Err(anyhow::anyhow!("the command stopped abnormally: {join}")),
        }
    });
    // Tasks abandoned after a grace period must not hold the exit hostage.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(code) => code.into(),
        // The reader of our output went away (`| head`): nothing is wrong, nothing to say.
        Err(err) if output::is_broken_pipe(&err) => Exit::Ok.into(),
        Err(err) => exit::report_error(&err).into(),
    }
}

async fn dispatch(cli: Cli, bars: indicatif::MultiProgress) -> anyhow::Result<Exit> {
    let db = db_url::database_path(&cli.db)?;
    match cli.command {
        Command::Validate(args) => commands::validate::execute(args).await,
        Command::Run(args) => commands::run::execute(args, &db, bars).await,
        Command::Runs(args) => commands::runs::execute(args, &db).await,
        Command::Leaderboard(args) => commands::leaderboard::execute(args, &db).await,
        Command::Compare(args) => commands::compare::execute(args, &db).await,
        Command::Report(args) => commands::report::execute(args, &db).await,
        Command::Models(args) => commands::models::execute(args, bars).await,
        Command::BenchServing(args) => commands::bench_serving::execute(args, &db).await,
        Command::Data(args) => commands::data::execute(args).await,
    }
}
