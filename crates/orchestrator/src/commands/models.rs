//! `orchestrator models list|pull`: the known local models and the weights cache
//! (`$ORCHESTRATOR_HOME`, default `~/.cache/orchestrator`).

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::exit::{Exit, bad_input};
use crate::output::outln;

/// Fetch and list local models (weights are cached outside the repository).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Fetch a known model into the cache (e.g. smollm2-135m-instruct).
    Pull {
        /// A known model name (`orchestrator models list`).
        name: String,
    },
    /// List the known models and whether each is cached.
    List,
}

pub async fn execute(args: Args, bars: MultiProgress) -> anyhow::Result<Exit> {
    match args.command {
        ModelsCommand::List => {
            outln!("cache: {}", models::home().display())?;
            for m in models::known() {
                let path = m.path();
                let state = if path.is_file() {
                    format!("cached at {}", path.display())
                } else {
                    "not cached".to_string()
                };
                outln!(
                    "{:<24} {:<12} {}  ({})",
                    m.name,
                    m.license,
                    m.description,
                    state
                )?;
            }
            Ok(Exit::Ok)
        }
        ModelsCommand::Pull { name } => {
            if models::find(&name).is_none() {
                let known: Vec<&str> = models::known().iter().map(|m| m.name).collect();
                return Err(bad_input(format!(
                    "unknown model {name:?}; known models: {}",
                    known.join(", ")
                )));
            }
            let bar = bars.add(ProgressBar::no_length());
            bar.set_style(
                ProgressStyle::with_template(
                    "fetching {prefix} [{bar:28}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(name.clone());
            let progress = bar.clone();
            let path = models::pull(&name, move |done, total| {
                if let Some(total) = total {
                    progress.set_length(total);
                }
                progress.set_position(done);
            })
            .await
            .with_context(|| format!("fetching {name}"));
            bar.finish_and_clear();
            let path = path?;
            outln!("{name}: {}", path.display())?;
            Ok(Exit::Ok)
        }
    }
}
