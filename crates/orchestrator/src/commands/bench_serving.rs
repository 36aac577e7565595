//! `orchestrator bench-serving FILE --arm A`: a local arm's items per second and p50/p95
//! latency at several batch sizes on the experiment's eval prompts, stored with its latest run
//! so the report's serving cost uses the measured throughput (at the batch size that meets
//! `costs.serving.latency_slo_ms`, when declared).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::commands::{load_results, open_store, select_run};
use crate::exit::{Exit, bad_input};
use crate::output::{errln, out, outln};

/// Measure a local arm's throughput and latency at several batch sizes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment spec (YAML).
    pub file: PathBuf,

    /// The local arm: `prompt@provider` on a `type: local` provider, or a trained fine-tune.
    #[arg(long)]
    pub arm: String,

    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 4, 16, 64])]
    pub sizes: Vec<usize>,

    /// Eval prompts answered at each batch size (the first ones).
    #[arg(long, default_value_t = 64)]
    pub items: usize,
}

pub async fn execute(args: Args, db: &Path) -> anyhow::Result<Exit> {
    let plan = experiment::load(&args.file)?;
    if args.sizes.is_empty() || args.sizes.iter().any(|&s| s == 0 || s > 1024) {
        return Err(bad_input("--sizes: each batch size must be 1 to 1024"));
    }
    if args.items == 0 {
        return Err(bad_input("--items must be at least 1"));
    }
    let store = open_store(db).await?;
    let run = select_run(&store, Some(&plan.name), None)
        .await
        .map_err(|_| {
            bad_input(format!(
                "no run of `{}` in {}: run the experiment first (bench-serving stores its figures \
                 with the latest run)",
                plan.name,
                db.display()
            ))
        })?;
    let results = load_results(&store, &run).await?;
    let adapter = results
        .training
        .iter()
        .find(|t| t.arm == args.arm)
        .and_then(|t| t.adapter_path.as_deref())
        .map(PathBuf::from);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let notes = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let runner::Event::Note(text) = event {
                errln!("note: {text}");
            }
        }
    });
    let request = runner::BenchRequest {
        sizes: args.sizes,
        items: args.items,
    };
    let measured = runner::bench_serving(&plan, &args.arm, adapter.as_deref(), &request, tx).await;
    let _ = notes.await;
    let rows = measured.map_err(|e| match e {
        runner::BenchError::BadArm(m) => bad_input(m),
        runner::BenchError::Model(m) => anyhow::anyhow!(m),
    })?;
    store
        .put_serving_bench(run.id, &rows)
        .await
        .context("storing the measurements")?;
    out!("{}", report::render_serving_bench(&rows))?;
    outln!("stored with run {} of `{}`", run.id, plan.name)?;
    Ok(Exit::Ok)
}
