//! The LoRA trainer: one fine-tune job from chat examples to a PEFT adapter on disk.
//!
//! Each example is formatted with the model's chat template into prompt and answer tokens
//! (answer + end-of-turn), cut to `sequence_len` keeping the answer, and trained with the loss
//! on answer tokens only: the final hidden states are gathered at the positions that predict
//! answer tokens, and only those rows go through the tied LM head and `cross_entropy` (Candle's
//! has no ignore index, and the 49k-wide head at every position would dominate the step).
//!
//! Around that: a deterministic validation split, per-epoch shuffles grouped by length (as
//! Hugging Face's `group_by_length`, so micro-batches pad little), padded micro-batches,
//! gradient accumulation weighted by answer tokens (so a step equals one large batch), global
//! norm clipping, AdamW with warm-up and cosine/linear decay (`optim.rs`), validation each
//! epoch or every `eval_steps`, early stopping that keeps the best adapter, a checkpoint each
//! epoch and every `save_steps` (`checkpoint.rs`), resume from the newest checkpoint (at its
//! step, mid-epoch included), and cancellation between steps (checkpoint, then
//! [`TrainOutcome::Interrupted`]). Progress goes out as [`WorkerEvent`]s.
//!
//! It runs on the caller's thread and never prints. This file holds the job's setup, resume
//! and the loop over epochs and steps; one session's step, validation, checkpoint and final
//! report are `Run`'s (`train_run.rs`). Not here: the model and its forward (the `llm`
//! crate), the file formats (`adapter.rs`, `checkpoint.rs`), and answering the eval set (the
//! worker does that with [`LocalModel::generate`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Result as CResult, Tensor, Var};
use domain::{LoraHyper, LossPoint, LrScheduler};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, TrainState};
use crate::data::{self, Batch, Sample};
use crate::job::{FinetuneJob, WorkerEvent};
use crate::optim::{AdamW, AdamWConfig, LrSchedule};
use crate::{Error, adapter, files};
use llm::LocalModel;
use llm::lora::LoraConfig;
use llm::model::Llama;

/// Where the final adapter goes, under the job's `out_dir`.
pub const ADAPTER_DIR: &str = "adapter";
/// Where merged weights go (with `merge_weights`).
pub const MERGED_DIR: &str = "merged";
/// Checkpoints, under `out_dir`.
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// Written when training finished; a resumed job that finds it skips training.
pub const TRAINED_FILE: &str = "trained.json";

/// Optimizer steps per length-grouped mega-batch (see [`data::group_by_length`]): enough to
/// cut most padding, few enough that an epoch still mixes short and long examples.
const LENGTH_GROUP_STEPS: usize = 8;

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// The adapter is written (the best one, when validation ran) and loaded on the model.
    Finished(TrainReport),
    /// The cancel flag was raised; the run can resume from `checkpoint` (none when it was
    /// raised before the first step).
    Interrupted {
        step: u64,
        checkpoint: Option<PathBuf>,
    },
}

/// What a finished training run measured and wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub adapter_path: PathBuf,
    pub merged_path: Option<PathBuf>,
    pub steps: u64,
    pub total_steps: u64,
    /// Wall time spent training, over every session of a resumed run.
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    /// This process's peak resident memory (`VmHWM`).
    pub peak_memory_bytes: u64,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    pub stopped_early: bool,
    /// Train loss per step and validation loss per evaluation.
    pub curve: Vec<LossPoint>,
    pub fingerprint: String,
}

impl TrainReport {
    /// The `trained` event for this report.
    pub fn event(&self) -> WorkerEvent {
        WorkerEvent::Trained {
            train_seconds: self.train_seconds,
            tokens_per_second: self.tokens_per_second,
            peak_memory_bytes: self.peak_memory_bytes,
            adapter_path: self.adapter_path.clone(),
            best_val_loss: self.best_val_loss,
            curve: self.curve.clone(),
        }
    }
}

/// Trains a LoRA adapter for `job` on `model` (which must hold no adapter of its own), writes
/// it to `out_dir/adapter` (and merged weights with `merge_weights`), emits progress to
/// `on_event`, and checks `cancel` between optimizer steps.
///
/// With `job.resume`, a run that already finished returns its report at once, and an
/// unfinished one continues from its newest checkpoint.
pub fn train(
    job: &FinetuneJob,
    model: &mut LocalModel,
    on_event: &mut dyn FnMut(WorkerEvent),
    cancel: &AtomicBool,
) -> Result<TrainOutcome, Error> {
    check_hyper(&job.hyper)?;
    let mut samples = Vec::with_capacity(job.train.len());
    let mut truncated = 0usize;
    for ex in &job.train {
        let (prompt, answer) = model.format_example(&ex.messages, &ex.answer)?;
        let (sample, cut) = Sample::new(&prompt, &answer, job.hyper.sequence_len);
        truncated += usize::from(cut);
        samples.push(sample);
    }
    if truncated > 0 {
        tracing::warn!(
            arm = %job.arm,
            truncated,
            sequence_len = job.hyper.sequence_len,
            "examples longer than sequence_len were cut (prompt start dropped, answer kept)"
        );
    }
    let base_model = job.base_model.display().to_string();
    let pad_id = model.tokenizer().pad_id();
    let spec = SampleJob {
        samples: &samples,
        hyper: &job.hyper,
        out_dir: &job.out_dir,
        resume: job.resume,
        base_model: &base_model,
        base_model_name: job.base_model_name.as_deref().unwrap_or(&base_model),
        pad_id,
    };
    let outcome = train_samples(&spec, model.model_mut(), on_event, cancel)?;
    let TrainOutcome::Finished(mut report) = outcome else {
        return Ok(outcome);
    };
    if job.hyper.merge_weights {
        let merged = job.out_dir.join(MERGED_DIR);
        if report.merged_path.is_none() || !merged.join("config.json").is_file() {
            let template = adapter::base_chat_template(&job.base_model);
            adapter::save_merged(&merged, model, template.as_deref())?;
            report.merged_path = Some(merged);
            files::write_json(&job.out_dir.join(TRAINED_FILE), &report)?;
        }
    }
    on_event(report.event());
    Ok(TrainOutcome::Finished(report))
}

/// A training job already in tokens: what [`train_samples`] needs.
#[derive(Debug, Clone, Copy)]
pub struct SampleJob<'a> {
    pub samples: &'a [Sample],
    pub hyper: &'a LoraHyper,
    pub out_dir: &'a Path,
    pub resume: bool,
    /// The weights trained on, as the job found them (part of the fingerprint).
    pub base_model: &'a str,
    /// Recorded in the adapter's `base_model_name_or_path`.
    pub base_model_name: &'a str,
    pub pad_id: u32,
}

/// [`train`] on tokenised samples and a bare model: the whole training loop, without the
/// tokenizer, the merged export or the `trained` event.
pub fn train_samples(
    job: &SampleJob,
    model: &mut Llama,
    on_event: &mut dyn FnMut(WorkerEvent),
    cancel: &AtomicBool,
) -> Result<TrainOutcome, Error> {
    let hyper = job.hyper;
    let decay = check_hyper(hyper)?;
    let lora_cfg = LoraConfig::from_hyper(hyper)?;
    let fingerprint = fingerprint(job.samples, hyper, job.base_model);
    let root = job.out_dir.join(CHECKPOINT_DIR);
    let shape = Shape::of(job)?;

    if let Some(report) = already_trained(job, model, &fingerprint)? {
        on_event(WorkerEvent::Started {
            total_steps: shape.total_steps,
            resumed_from_step: Some(report.steps),
        });
        return Ok(TrainOutcome::Finished(report));
    }

    let Start {
        state,
        vars,
        mut opt,
        last_checkpoint,
    } = start_or_resume(job, model, &lora_cfg, &root, &fingerprint)?;
    on_event(WorkerEvent::Started {
        total_steps: shape.total_steps,
        resumed_from_step: (state.step > 0).then_some(state.step),
    });
    let schedule = shape.schedule(hyper, decay);
    let mut run = Run::new(
        model,
        job,
        &vars,
        &shape.val_idx,
        &root,
        state,
        last_checkpoint,
    );
    let loop_cx = LoopContext {
        shape: &shape,
        schedule: &schedule,
        cancel,
    };
    if let Some(interrupted) = train_epochs(&mut run, &mut opt, &loop_cx, on_event)? {
        return Ok(interrupted);
    }
    if run.last_checkpoint != Some(run.state.step) {
        run.checkpoint(&opt, on_event)?;
    }

    let adapter_dir = job.out_dir.join(ADAPTER_DIR);
    let trained_file = job.out_dir.join(TRAINED_FILE);
    let report = run.finish(adapter_dir, &trained_file, shape.total_steps, fingerprint)?;
    Ok(TrainOutcome::Finished(report))
}

/// How a job's samples divide, and how many optimizer steps that makes.
struct Shape {
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
    steps_per_epoch: usize,
    total_steps: u64,
}

impl Shape {
    /// The deterministic validation split of `job`'s samples; an error when no example is
    /// left to train on.
    fn of(job: &SampleJob) -> Result<Shape, Error> {
        let hyper = job.hyper;
        let (train_idx, val_idx) = data::split(job.samples.len(), hyper.val_set_size, hyper.seed);
        if train_idx.is_empty() {
            return Err(Error::NoTrainingExamples {
                examples: job.samples.len(),
                held_out: val_idx.len(),
            });
        }
        let steps_per_epoch = train_idx
            .len()
            .div_ceil(hyper.micro_batch_size)
            .div_ceil(hyper.gradient_accumulation_steps);
        Ok(Shape {
            train_idx,
            val_idx,
            steps_per_epoch,
            total_steps: (steps_per_epoch * hyper.num_epochs) as u64,
        })
    }

    /// The learning rate over the run's steps: warm-up, then `decay`.
    fn schedule(&self, hyper: &LoraHyper, decay: LrScheduler) -> LrSchedule {
        LrSchedule {
            peak: hyper.learning_rate,
            warmup_steps: hyper.warmup_steps as u64,
            total_steps: self.total_steps,
            decay,
        }
    }
}

/// With `job.resume`, a finished run of this same job: its adapter put back on `model`, and
/// its report. `None` when there is none, or its adapter file is gone (then it trains again).
fn already_trained(
    job: &SampleJob,
    model: &mut Llama,
    fingerprint: &str,
) -> Result<Option<TrainReport>, Error> {
    if !job.resume {
        return Ok(None);
    }
    let Some(report) = finished_report(&job.out_dir.join(TRAINED_FILE), fingerprint) else {
        return Ok(None);
    };
    let adapter_dir = job.out_dir.join(ADAPTER_DIR);
    if !adapter_dir.join(adapter::WEIGHTS_FILE).is_file() {
        return Ok(None);
    }
    adapter::load_adapter(&adapter_dir, model.device())?.apply_to(model)?;
    Ok(Some(report))
}

/// What the loop over epochs reads and never changes.
struct LoopContext<'a> {
    shape: &'a Shape,
    schedule: &'a LrSchedule,
    cancel: &'a AtomicBool,
}

/// How one epoch's steps ended.
enum EpochEnd {
    /// Every step of the epoch ran.
    Done,
    /// Early stopping ended training at a step inside the epoch.
    StoppedEarly,
    /// The cancel flag was raised; a checkpoint is written.
    Interrupted(TrainOutcome),
}

/// The epochs left, from where `run`'s state stands: after each epoch, validation (unless it
/// runs every `eval_steps`) and a checkpoint. `Some` when the cancel flag stopped it.
fn train_epochs(
    run: &mut Run<'_>,
    opt: &mut AdamW,
    cx: &LoopContext<'_>,
    on_event: &mut dyn FnMut(WorkerEvent),
) -> Result<Option<TrainOutcome>, Error> {
    let hyper = run.job.hyper;
    while run.state.epoch < hyper.num_epochs && !run.state.stopped_early {
        let end = train_epoch(run, opt, cx, on_event)?;
        if let EpochEnd::Interrupted(outcome) = end {
            return Ok(Some(outcome));
        }
        run.state.epoch += 1;
        run.state.step_in_epoch = 0;
        // An early stop has just validated; the final checkpoint follows in `train_samples`.
        if matches!(end, EpochEnd::StoppedEarly) {
            break;
        }
        if hyper.eval_steps.is_none() {
            run.validate(run.state.epoch as f64, on_event)?;
        }
        run.checkpoint(opt, on_event)?;
    }
    Ok(None)
}

/// The current epoch's optimizer steps from `step_in_epoch` on, over micro-batches of the
/// epoch's length-grouped shuffle; the cancel flag is checked before each step.
fn train_epoch(
    run: &mut Run<'_>,
    opt: &mut AdamW,
    cx: &LoopContext<'_>,
    on_event: &mut dyn FnMut(WorkerEvent),
) -> Result<EpochEnd, Error> {
    let job = run.job;
    let hyper = job.hyper;
    let epoch = run.state.epoch;
    let (mbs, accum) = (hyper.micro_batch_size, hyper.gradient_accumulation_steps);
    let order = data::group_by_length(
        &data::epoch_order(&cx.shape.train_idx, hyper.seed, epoch),
        |i| job.samples.get(i).map_or(0, |s| s.ids.len()),
        mbs * accum * LENGTH_GROUP_STEPS,
    );
    let micro: Vec<&[usize]> = order.chunks(mbs).collect();
    for (k, step_batches) in micro
        .chunks(accum)
        .enumerate()
        .skip(run.state.step_in_epoch)
    {
        if cx.cancel.load(Ordering::SeqCst) {
            let checkpoint = run.checkpoint(opt, on_event)?;
            return Ok(EpochEnd::Interrupted(TrainOutcome::Interrupted {
                step: run.state.step,
                checkpoint,
            }));
        }
        let lr = cx.schedule.lr(run.state.step);
        let loss = run.optimizer_step(step_batches, opt, lr)?;
        run.state.step_in_epoch = k + 1;
        let at = StepAt {
            epoch,
            k,
            steps_per_epoch: cx.shape.steps_per_epoch,
            total_steps: cx.shape.total_steps,
        };
        if run.after_step(at, loss, lr, opt, on_event)? {
            return Ok(EpochEnd::StoppedEarly);
        }
    }
    Ok(EpochEnd::Done)
}

/// Where a training session begins: the state, LoRA variables and optimizer, fresh or restored
/// from the newest checkpoint of this same job.
struct Start {
    state: TrainState,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    last_checkpoint: Option<u64>,
}

/// A fresh adapter on `model`, or the newest checkpoint of this same job (its LoRA tensors,
/// optimizer moments and position); a directory holding another job's checkpoints is cleared.
fn start_or_resume(
    job: &SampleJob,
    model: &mut Llama,
    lora_cfg: &LoraConfig,
    root: &Path,
    fingerprint: &str,
) -> Result<Start, Error> {
    // Fresh adapter, or the newest checkpoint of this same job.
    let resumed = if job.resume {
        checkpoint::latest(root, fingerprint, model.device())?
    } else {
        None
    };
    if resumed.is_none() {
        // Nothing of this job to resume: whatever is there belongs to another one.
        checkpoint::clear(root)?;
    }
    let last_checkpoint = resumed.as_ref().map(|ck| ck.state.step);
    let mut state = TrainState::new(fingerprint.to_string());
    match &resumed {
        Some(ck) => {
            model.set_lora_tensors(lora_cfg, &ck.lora)?;
            state = ck.state.clone();
            tracing::info!(step = state.step, checkpoint = %ck.dir.display(), "resuming");
        }
        None => model.add_lora(lora_cfg, job.hyper.seed)?,
    }
    let vars = model.lora_vars();
    let mut opt = AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        AdamWConfig {
            weight_decay: job.hyper.weight_decay,
            ..AdamWConfig::default()
        },
    )?;
    if let Some(ck) = resumed {
        let moment =
            |map: &std::collections::HashMap<String, Tensor>| -> Result<Vec<Tensor>, Error> {
                vars.iter()
                    .map(|(name, _)| {
                        map.get(name).cloned().ok_or_else(|| Error::BadCheckpoint {
                            path: ck.dir.clone(),
                            reason: format!("no optimizer moment for {name}"),
                        })
                    })
                    .collect()
            };
        opt.restore(state.step, moment(&ck.m)?, moment(&ck.v)?)?;
    }
    Ok(Start {
        state,
        vars,
        opt,
        last_checkpoint,
    })
}

fn finished_report(path: &Path, fingerprint: &str) -> Option<TrainReport> {
    let report: TrainReport = files::read_json(path).ok()?;
    (report.fingerprint == fingerprint).then_some(report)
}

/// Mean cross-entropy over the batch's answer tokens: hidden states at the predicting
/// positions only, through the tied head.
pub fn answer_loss(model: &Llama, batch: &Batch) -> CResult<Tensor> {
    let hidden = model.forward_hidden(&batch.ids)?;
    let (b, t, h) = hidden.dims3()?;
    let rows = hidden.reshape((b * t, h))?.index_select(&batch.rows, 0)?;
    let logits = model.lm_head(&rows)?.to_dtype(DType::F32)?;
    candle_nn::loss::cross_entropy(&logits, &batch.targets)
}

/// Mean loss over the answer tokens of samples `idx`, without dropout.
pub fn validation_loss(
    model: &mut Llama,
    samples: &[Sample],
    idx: &[usize],
    micro_batch_size: usize,
    pad_id: u32,
) -> Result<f64, Error> {
    model.set_training(false, 0);
    let mut sum = 0.0;
    let mut n = 0usize;
    for chunk in idx.chunks(micro_batch_size.max(1)) {
        let refs: Vec<&Sample> = chunk.iter().filter_map(|&i| samples.get(i)).collect();
        let batch = Batch::new(&refs, pad_id, model.device())?;
        if batch.answer_tokens == 0 {
            continue;
        }
        let loss = answer_loss(model, &batch)?.to_scalar::<f32>()?;
        sum += f64::from(loss) * batch.answer_tokens as f64;
        n += batch.answer_tokens;
    }
    Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
}

/// Checks what the trainer itself relies on (the experiment spec is validated earlier; a job
/// file may come from elsewhere). Returns the decay schedule.
pub fn check_hyper(h: &LoraHyper) -> Result<LrScheduler, Error> {
    let bad = |field: &'static str, value: String, expected: &'static str| {
        Err(Error::InvalidHyper {
            field,
            value,
            expected,
        })
    };
    if h.num_epochs == 0 {
        return bad("num_epochs", h.num_epochs.to_string(), "at least 1");
    }
    if h.micro_batch_size == 0 {
        return bad("micro_batch_size", "0".into(), "at least 1");
    }
    if h.gradient_accumulation_steps == 0 {
        return bad("gradient_accumulation_steps", "0".into(), "at least 1");
    }
    if h.sequence_len < 2 {
        return bad("sequence_len", h.sequence_len.to_string(), "at least 2");
    }
    if !(h.learning_rate.is_finite() && h.learning_rate > 0.0) {
        return bad(
            "learning_rate",
            h.learning_rate.to_string(),
            "a positive number",
        );
    }
    if !(0.0..1.0).contains(&h.val_set_size) {
        return bad(
            "val_set_size",
            h.val_set_size.to_string(),
            "a share in [0, 1)",
        );
    }
    if !(h.weight_decay.is_finite() && h.weight_decay >= 0.0) {
        return bad("weight_decay", h.weight_decay.to_string(), "zero or more");
    }
    if h.max_grad_norm.is_nan() {
        return bad(
            "max_grad_norm",
            "NaN".into(),
            "a number (0 disables clipping)",
        );
    }
    Ok(h.lr_scheduler)
}

/// sha256 of everything that determines a run's result: the samples, the hyper-parameters
/// (merge_weights excepted: it only adds an export) and the base model.
fn fingerprint(samples: &[Sample], hyper: &LoraHyper, base_model: &str) -> String {
    let mut hyper = hyper.clone();
    hyper.merge_weights = false;
    // How often checkpoints are written does not change the result, and a run resumed with
    // another `save_steps` should continue from its checkpoints.
    hyper.save_steps = None;
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&(&hyper, base_model)).unwrap_or_default());
    for s in samples {
        h.update((s.prompt_len as u64).to_le_bytes());
        h.update((s.ids.len() as u64).to_le_bytes());
        for id in &s.ids {
            h.update(id.to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

#[path = "train_run.rs"]
mod run;
use run::{Run, StepAt};

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
