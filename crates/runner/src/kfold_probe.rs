//! The strongest (and costliest) probe of label probabilities for `data check`: k-fold
//! fine-tunes. The train and eval rows are split into `k` folds by a hash of their id (the
//! folds of the kNN probe); for each fold a `finetune-worker` trains the spec's fine-tune, as
//! declared, on the rows of the other folds and answers the fold's rows with the prompt's
//! `choices`, whose label probabilities are then out of fold, as confident learning needs.
//!
//! The folds run one after another in one `finetune-worker --serve` process (one training job
//! per device), in a temporary folder removed at the end; nothing is stored. The fine-tune's
//! `train_sizes` and `label_noise` do not apply: a probe learns from every row outside its
//! fold, with the labels as given.

use std::path::{Path, PathBuf};

use experiment::{Arm, FinetuneSpec, Plan, PromptSpec, Row};
use finetune::job::{EvalPrompt, Example, FinetuneJob, WorkerEvent};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::events::{Emitter, Event};
use crate::label_probs::{LabelProbs, ProbeError, RowProbs};
use crate::worker_log::WorkerLog;

/// A row the probe scores: its split, its place in the plan, and its label's index.
struct ProbeRow<'a> {
    split: &'static str,
    row: &'a Row,
    given: usize,
    fold: usize,
}

/// Label probabilities of the train and eval rows of `plan` (at most `limit` of each) from
/// `folds` fine-tunes of fine-tune `arm`, each answering the rows it did not train on.
/// `worker` names the worker binary (else [`crate::find_worker`]'s rules).
pub async fn kfold_label_probabilities(
    plan: &Plan,
    arm: &str,
    folds: usize,
    limit: Option<usize>,
    worker: Option<&Path>,
    events: tokio::sync::mpsc::Sender<Event>,
) -> Result<LabelProbs, ProbeError> {
    let (spec, prompt, labels) = finetune_with_choices(plan, arm)?;
    let (rows, unknown_labels) = probe_rows(plan, &labels, folds, limit);
    for f in 0..folds {
        let inside = rows.iter().filter(|r| r.fold == f).count();
        if inside == 0 || inside == rows.len() {
            return Err(ProbeError::BadArm(format!(
                "{} rows cannot make {folds} folds that each hold a row and leave rows to train \
                 on; lower --folds or raise --limit",
                rows.len()
            )));
        }
    }
    let worker = crate::worker::require_worker(worker).map_err(ProbeError::Model)?;
    let emitter = Emitter::new(events);
    let base_model = crate::local::resolve_model(&spec.base_weights, &emitter)
        .await
        .map_err(ProbeError::Model)?;
    let work = tempfile::tempdir()
        .map_err(|e| ProbeError::Model(format!("creating a temporary folder failed: {e}")))?;
    let mut out = LabelProbs {
        labels,
        rows: Vec::new(),
        demos_left_out: 0,
        unknown_labels,
        failed: 0,
    };
    let mut probs: Vec<Option<Vec<f64>>> = vec![None; rows.len()];
    let mut jobs = Vec::with_capacity(folds);
    for f in 0..folds {
        let job = fold_job(plan, &spec, &prompt, &rows, f, &base_model, work.path());
        let path = write_job(&job, &job.out_dir).map_err(ProbeError::Model)?;
        let note = format!(
            "fold {}/{folds}: training `{arm}` on {} rows, answering {}",
            f + 1,
            job.train.len(),
            job.eval.len()
        );
        jobs.push((path, note));
    }
    for (index, p) in serve_jobs(&worker, &jobs, work.path(), &emitter).await? {
        if let Some(slot) = probs.get_mut(index) {
            *slot = Some(p);
        }
    }
    for (r, p) in rows.iter().zip(probs) {
        match p.filter(|p| p.len() == out.labels.len()) {
            Some(probs) => out.rows.push(RowProbs {
                split: r.split,
                id: r.row.id.clone(),
                given: r.given,
                probs,
            }),
            None => out.failed += 1,
        }
    }
    Ok(out)
}

/// The fine-tune `arm`, its prompt, and the labels of the prompt's `choices`, which it must
/// have.
fn finetune_with_choices(
    plan: &Plan,
    arm: &str,
) -> Result<(FinetuneSpec, PromptSpec, Vec<String>), ProbeError> {
    match plan.arms().into_iter().find(|a| a.id() == arm) {
        Some(Arm::Finetune { spec, prompt }) if prompt.choices.is_some() => {
            let labels = prompt.choices.as_ref().map(|c| c.labels.clone());
            Ok((spec, prompt, labels.unwrap_or_default()))
        }
        Some(Arm::Finetune { spec, .. }) => Err(ProbeError::BadArm(format!(
            "fine-tune `{arm}` answers with prompt `{}`, which has no `choices`: k-fold label \
             probabilities need a probability for every label",
            spec.prompt
        ))),
        _ => Err(ProbeError::BadArm(format!(
            "`{arm}` is not a fine-tune of this spec"
        ))),
    }
}

/// The rows to score (the first `limit` of train, then of eval) with their folds, and how many
/// were left out for a label outside the choices.
fn probe_rows<'a>(
    plan: &'a Plan,
    labels: &[String],
    folds: usize,
    limit: Option<usize>,
) -> (Vec<ProbeRow<'a>>, usize) {
    let take = limit.unwrap_or(usize::MAX);
    let mut unknown = 0;
    let mut rows = Vec::new();
    for (split, split_rows) in [("train", &plan.dataset.train), ("eval", &plan.dataset.eval)] {
        for row in split_rows.iter().take(take) {
            match labels.iter().position(|l| *l == row.target) {
                Some(given) => rows.push(ProbeRow {
                    split,
                    row,
                    given,
                    fold: crate::knn_probe::fold(&row.id, folds),
                }),
                None => unknown += 1,
            }
        }
    }
    (rows, unknown)
}

/// Fold `f`'s job: train on every row outside it, answer the rows inside it (their item ids
/// are their indices in `rows`, since a train row and an eval row may share an id).
fn fold_job(
    plan: &Plan,
    spec: &FinetuneSpec,
    prompt: &PromptSpec,
    rows: &[ProbeRow<'_>],
    f: usize,
    base_model: &Path,
    work: &Path,
) -> FinetuneJob {
    let render = |r: &ProbeRow<'_>| plan.render_finetune(spec, prompt, r.row);
    FinetuneJob {
        arm: format!("{}~fold{f}", spec.id),
        base_model: base_model.to_path_buf(),
        base_model_name: Some(models::base_model_name(&spec.base_model)),
        hyper: spec.hyper.clone(),
        compute: spec.compute.clone(),
        train: rows
            .iter()
            .filter(|r| r.fold != f)
            .map(|r| Example {
                messages: render(r),
                answer: r.row.target.clone(),
            })
            .collect(),
        eval: rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.fold == f)
            .map(|(i, r)| EvalPrompt {
                item_id: i.to_string(),
                messages: render(r),
            })
            .collect(),
        generation: crate::arm_params(&plan.generation, prompt),
        out_dir: work.join(format!("fold-{f}")),
        resume: false,
    }
}

/// Runs the folds' jobs in turn in one `finetune-worker --serve` (so each fold after the
/// first skips the process start and the first step's warm-up), noting each fold as it starts;
/// returns each answered row's index and probabilities.
async fn serve_jobs(
    worker: &Path,
    jobs: &[(PathBuf, String)],
    work: &Path,
    emitter: &Emitter,
) -> Result<Vec<(usize, Vec<f64>)>, ProbeError> {
    let fail = |m: String| ProbeError::Model(m);
    let (log, stderr) = WorkerLog::open(&work.join("worker.log")).map_err(fail)?;
    // Not in a group of its own: `data check` has no Ctrl-C handling, so the terminal's
    // Ctrl-C must stop the worker too.
    let (mut child, mut stdin, stdout) =
        crate::worker::spawn_serving(worker, stderr, false).map_err(fail)?;
    let mut input = String::new();
    for (path, _) in jobs {
        input.push_str(&format!("{}\n", path.display()));
    }
    stdin
        .write_all(input.as_bytes())
        .await
        .map_err(|e| fail(format!("handing the jobs to the worker failed: {e}")))?;
    // End of input: the worker exits after the last job.
    drop(stdin);
    let mut lines = BufReader::new(stdout).lines();
    let (mut answers, mut fold, mut error) = (Vec::new(), 0, None);
    while let Ok(Some(line)) = lines.next_line().await {
        match WorkerEvent::parse_line(&line) {
            Ok(WorkerEvent::Started { .. }) => {
                if let Some((_, note)) = jobs.get(fold) {
                    emitter.note(note.clone()).await;
                }
            }
            Ok(WorkerEvent::Answer {
                item_id, choice, ..
            }) => {
                if let (Ok(index), Some(choice)) = (item_id.parse::<usize>(), choice) {
                    answers.push((index, choice.probabilities));
                }
            }
            Ok(WorkerEvent::Done) => fold += 1,
            Ok(WorkerEvent::Error { message }) => {
                error.get_or_insert(format!("fold {}: {message}", fold + 1));
                fold += 1;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(fold, error = %e, "unreadable worker line"),
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| fail(format!("waiting for the worker failed: {e}")))?;
    match error {
        Some(message) => Err(fail(message)),
        None if status.success() && fold == jobs.len() => Ok(answers),
        None => Err(fail(format!(
            "fold {}: the fine-tune worker failed ({status}): {}",
            fold + 1,
            log.crash_reason()
        ))),
    }
}

fn write_job(job: &FinetuneJob, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {} failed: {e}", dir.display()))?;
    let path = dir.join("job.json");
    let json = serde_json::to_vec(job).map_err(|e| format!("encoding the job failed: {e}"))?;
    std::fs::write(&path, json).map_err(|e| format!("writing {} failed: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SPEC: &str = "name: folds
dataset: { path: data.jsonl, input: text, target: label, split: { eval: 6, train: 14, seed: 1 } }
providers: [{ id: api, type: openai, model: gpt-4o-mini }]
prompts:
  - { id: labels, template: \"Q: {{text}}\", choices: [yes, no] }
  - { id: free, template: \"Q: {{text}}\" }
finetunes:
  - { id: lora, base_model: ./base.gguf, prompt: labels, compute: { device: cpu } }
  - { id: loose, base_model: ./base.gguf, prompt: free, compute: { device: cpu } }
generation: { max_tokens: 4, temperature: 0 }
scorers: [{ type: equals }]
";

    fn plan() -> (tempfile::TempDir, Plan) {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..20)
            .map(|i| {
                let label = if i == 4 {
                    "maybe"
                } else if i % 2 == 0 {
                    "yes"
                } else {
                    "no"
                };
                format!("{{\"id\":\"r{i}\",\"text\":\"row {i}\",\"label\":\"{label}\"}}\n")
            })
            .collect();
        std::fs::write(dir.path().join("data.jsonl"), rows).unwrap();
        std::fs::write(dir.path().join("base.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("spec.yaml"), SPEC).unwrap();
        let plan = experiment::load(&dir.path().join("spec.yaml")).unwrap();
        (dir, plan)
    }

    #[test]
    fn each_fold_trains_on_every_other_fold_and_answers_its_own_rows() {
        let (dir, plan) = plan();
        let (spec, prompt, labels) = finetune_with_choices(&plan, "lora").unwrap();
        assert_eq!(labels, ["yes", "no"]);
        let (rows, unknown) = probe_rows(&plan, &labels, 3, None);
        assert_eq!(
            (rows.len(), unknown),
            (19, 1),
            "the `maybe` row is left out"
        );
        let mut answered = vec![0; rows.len()];
        for f in 0..3 {
            let job = fold_job(&plan, &spec, &prompt, &rows, f, Path::new("b"), dir.path());
            let inside: Vec<usize> = job
                .eval
                .iter()
                .map(|e| e.item_id.parse().unwrap())
                .collect();
            assert!(inside.iter().all(|&i| rows[i].fold == f));
            assert_eq!(job.train.len() + inside.len(), rows.len());
            for i in inside {
                answered[i] += 1;
            }
            assert!(
                job.generation.choices.is_some(),
                "answers carry probabilities"
            );
            assert!(!job.resume);
        }
        assert!(answered.iter().all(|&n| n == 1), "{answered:?}");
    }

    #[test]
    fn a_fine_tune_without_choices_or_an_unknown_arm_is_refused() {
        let (_dir, plan) = plan();
        let err = finetune_with_choices(&plan, "loose")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no `choices`"), "{err}");
        let err = finetune_with_choices(&plan, "labels@x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a fine-tune"), "{err}");
    }
}
