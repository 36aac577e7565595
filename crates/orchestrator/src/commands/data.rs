//! `orchestrator data check FILE`: what is wrong with an experiment's data before anything is
//! spent on it. Without a model: each split's label distribution, repeated inputs (exact, or
//! the same once normalised) and those repeated with different labels, eval items whose input
//! is also in train or dev, empty and overlong inputs (`experiment::data_check`). With
//! `--arm` (a prompt arm with `choices` on a local provider, or a fine-tune with `choices`,
//! trained once per fold), or `--probe knn` (cross-validated
//! nearest neighbours of sentence embeddings): the rows whose label is probably wrong, by
//! confident learning over those label probabilities (`scoring::label_issues`), lowest
//! self-confidence first. As a table or `--format json`; `--suspects FILE` writes the
//! suspect rows as JSON lines for review. Touches no database.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use experiment::data_check::{self, DataChecks};
use serde::Serialize;

use crate::exit::{Exit, bad_input};
use crate::output::{errln, out, outln};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Check an experiment's data: label distributions, duplicates, leakage, empty and
    /// overlong inputs, and with --arm the rows whose label is probably wrong.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The experiment spec (YAML).
    pub file: PathBuf,
    /// A prompt arm with `choices` on a local provider (e.g. zero-shot-labels@smollm2), or a
    /// fine-tune whose prompt has `choices` (trained --folds times, each fold's rows answered
    /// by the fine-tune that did not see them): its label probabilities rank the rows whose
    /// label is probably wrong.
    #[arg(long, conflicts_with = "probe")]
    pub arm: Option<String>,
    /// Label probabilities from sentence embeddings instead of an arm: each row's most similar
    /// rows in the other folds vote (cross-validated kNN).
    #[arg(long, value_enum)]
    pub probe: Option<Probe>,
    /// The embedding model of `--probe knn`: a known name or a folder.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedding: String,
    /// Folds of `--probe knn`, and fine-tunes of a fine-tune `--arm`.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=100))]
    pub folds: u64,
    /// Neighbours that vote in `--probe knn`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub neighbours: u64,
    /// Score at most the first N rows of train and of eval with --arm.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Inputs estimated longer than this many tokens are reported as overlong.
    #[arg(long, default_value_t = 2048)]
    pub max_input_tokens: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the suspect rows (id, split, input, label, likely label, self-confidence) here,
    /// one JSON object per line.
    #[arg(long, value_name = "FILE")]
    pub suspects: Option<PathBuf>,
    /// Rows of each list shown in the table.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Probe {
    /// Cross-validated nearest neighbours in sentence-embedding space.
    Knn,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Serialize)]
struct Report {
    experiment: String,
    #[serde(flatten)]
    checks: DataChecks,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_issues: Option<runner::LabelIssues>,
}

pub async fn execute(args: Args) -> anyhow::Result<Exit> {
    let DataCommand::Check(args) = args.command;
    let plan = experiment::load(&args.file)?;
    let checks = data_check::check(&plan.dataset, args.max_input_tokens);
    let limit = args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let label_issues = match (&args.arm, args.probe) {
        (Some(arm), _) if is_finetune(&plan, arm) => {
            Some(kfold_issues(&plan, arm, &args, limit).await?)
        }
        (Some(arm), _) => Some(label_issues(&plan, arm, limit).await?),
        (None, Some(Probe::Knn)) => Some(knn_issues(&plan, &args, limit).await?),
        (None, None) => None,
    };
    let report = Report {
        experiment: plan.name.clone(),
        checks,
        label_issues,
    };
    if let (Some(path), Some(li)) = (&args.suspects, &report.label_issues) {
        write_suspects(path, &li.suspects)?;
    }
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Table => print_table(&report, args.top)?,
    }
    Ok(Exit::Ok)
}

/// Prints the notes of a probe's events (a model fetched) while it runs.
fn forward_notes() -> (
    tokio::sync::mpsc::Sender<runner::Event>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let notes = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let runner::Event::Note(text) = event {
                errln!("note: {text}");
            }
        }
    });
    (tx, notes)
}

fn probe_error(e: runner::ProbeError) -> anyhow::Error {
    match e {
        runner::ProbeError::BadArm(m) => bad_input(m),
        runner::ProbeError::Model(m) => anyhow::anyhow!(m),
    }
}

async fn label_issues(
    plan: &experiment::Plan,
    arm: &str,
    limit: Option<usize>,
) -> anyhow::Result<runner::LabelIssues> {
    let (tx, notes) = forward_notes();
    let found = runner::label_issues(plan, arm, limit, tx).await;
    let _ = notes.await;
    found.map_err(probe_error)
}

fn is_finetune(plan: &experiment::Plan, arm: &str) -> bool {
    plan.finetunes.iter().any(|f| f.id == arm)
}

async fn kfold_issues(
    plan: &experiment::Plan,
    arm: &str,
    args: &CheckArgs,
    limit: Option<usize>,
) -> anyhow::Result<runner::LabelIssues> {
    let folds = usize::try_from(args.folds).unwrap_or(5);
    let (tx, notes) = forward_notes();
    let found = runner::kfold_label_probabilities(plan, arm, folds, limit, None, tx).await;
    let _ = notes.await;
    let name = format!("{arm} ({folds}-fold fine-tunes)");
    Ok(runner::issues_from(
        plan,
        &name,
        found.map_err(probe_error)?,
    ))
}

async fn knn_issues(
    plan: &experiment::Plan,
    args: &CheckArgs,
    limit: Option<usize>,
) -> anyhow::Result<runner::LabelIssues> {
    let path = PathBuf::from(&args.embedding);
    let model = if path.exists() {
        domain::ModelSource::Path(path)
    } else {
        domain::ModelSource::Named(args.embedding.clone())
    };
    let probe = runner::KnnProbe {
        model,
        folds: usize::try_from(args.folds).unwrap_or(5),
        neighbours: usize::try_from(args.neighbours).unwrap_or(10),
    };
    let (tx, notes) = forward_notes();
    let found = runner::knn_label_probabilities(plan, &probe, limit, tx).await;
    let _ = notes.await;
    let name = format!(
        "knn({}, {} folds, k = {})",
        args.embedding, probe.folds, probe.neighbours
    );
    Ok(runner::issues_from(
        plan,
        &name,
        found.map_err(probe_error)?,
    ))
}

fn write_suspects(path: &std::path::Path, suspects: &[runner::Suspect]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    for s in suspects {
        writeln!(file, "{}", serde_json::to_string(s)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    errln!(
        "wrote {} suspect row(s) to {}",
        suspects.len(),
        path.display()
    );
    Ok(())
}

fn print_table(r: &Report, top: usize) -> std::io::Result<()> {
    let c = &r.checks;
    outln!("data check of `{}`", r.experiment)?;
    for s in &c.splits {
        let labels: Vec<String> = s.labels.iter().map(|(l, n)| format!("{l} {n}")).collect();
        outln!("  {:<5} {:>6} rows: {}", s.split, s.rows, labels.join(", "))?;
    }
    let conflicting = c.duplicates.iter().filter(|d| d.labels.len() > 1).count();
    outln!(
        "repeated inputs: {} group(s) ({} exact, {} only once normalised), {conflicting} with \
         different labels",
        c.duplicates.len(),
        c.duplicates.iter().filter(|d| d.exact).count(),
        c.duplicates.iter().filter(|d| !d.exact).count(),
    )?;
    for d in c.duplicates.iter().take(top) {
        let rows: Vec<String> = d
            .rows
            .iter()
            .map(|x| format!("{}:{}", x.split, x.id))
            .collect();
        outln!(
            "  {:?}: {} [{}]",
            clip(&d.text),
            rows.join(" "),
            d.labels.join(", ")
        )?;
    }
    outln!(
        "eval items also in train or dev (leakage): {}",
        c.leaks.len()
    )?;
    for l in c.leaks.iter().take(top) {
        let seen: Vec<String> = l
            .seen_in
            .iter()
            .map(|x| format!("{}:{}", x.split, x.id))
            .collect();
        outln!("  eval:{} = {}", l.eval_id, seen.join(" "))?;
    }
    outln!(
        "empty inputs: {}; over {} tokens: {}",
        c.empty.len(),
        c.max_input_tokens,
        c.overlong.len()
    )?;
    if let Some(li) = &r.label_issues {
        print_label_issues(li, top)?;
    }
    Ok(())
}

fn print_label_issues(li: &runner::LabelIssues, top: usize) -> std::io::Result<()> {
    outln!(
        "label issues by `{}`: {} of {} scored rows (confident learning; {} fixed demos left \
         out, {} labels outside the choices, {} unscored)",
        li.arm,
        li.suspects.len(),
        li.scored,
        li.left_out_demos,
        li.unknown_labels,
        li.failed
    )?;
    for s in li.suspects.iter().take(top) {
        out!(
            "  {}:{} labelled {} but likely {} (p = {:.3}): {:?}\n",
            s.split,
            s.id,
            s.label,
            s.likely,
            s.self_confidence,
            clip(&s.input)
        )?;
    }
    Ok(())
}

/// At most 60 characters of `text`, marked when cut.
fn clip(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}
