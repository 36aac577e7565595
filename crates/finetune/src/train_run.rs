//! One training session's moving parts ([`Run`]): an optimizer step over its micro-batches
//! with gradient accumulation and clipping, what follows each step (loss point, `step` event,
//! validation every `eval_steps`, checkpoint every `save_steps`), validation with early
//! stopping, checkpoints, and the final adapter and report. A child of `train.rs`, which owns
//! the loop over epochs and steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Var;
use domain::{LossPoint, LossSplit};

use super::{SampleJob, TrainReport, answer_loss, validation_loss};
use crate::checkpoint::{self, TrainState};
use crate::data::{Batch, Sample};
use crate::job::WorkerEvent;
use crate::optim::{AdamW, GradAccumulator, clip_grad_norm};
use crate::{Error, adapter, files};
use llm::model::Llama;

/// Where an optimizer step fell: epoch, index within it, and the run's shape.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepAt {
    pub(super) epoch: usize,
    pub(super) k: usize,
    pub(super) steps_per_epoch: usize,
    pub(super) total_steps: u64,
}

/// The training loop's moving parts.
pub(super) struct Run<'a> {
    pub(super) model: &'a mut Llama,
    pub(super) job: &'a SampleJob<'a>,
    pub(super) vars: &'a [(String, Var)],
    pub(super) val_idx: &'a [usize],
    pub(super) root: &'a Path,
    pub(super) state: TrainState,
    pub(super) session_start: Instant,
    pub(super) session_steps: u64,
    pub(super) session_tokens: u64,
    /// Training seconds of earlier sessions of this run.
    pub(super) prior_seconds: f64,
    pub(super) last_checkpoint: Option<u64>,
}

impl<'a> Run<'a> {
    /// A session starting now at `state`, after the training seconds of earlier sessions.
    pub(super) fn new(
        model: &'a mut Llama,
        job: &'a SampleJob<'a>,
        vars: &'a [(String, Var)],
        val_idx: &'a [usize],
        root: &'a Path,
        state: TrainState,
        last_checkpoint: Option<u64>,
    ) -> Self {
        Run {
            model,
            job,
            vars,
            val_idx,
            root,
            prior_seconds: state.train_seconds,
            state,
            session_start: Instant::now(),
            session_steps: 0,
            session_tokens: 0,
            last_checkpoint,
        }
    }

    /// One optimizer step over the micro-batches `batches`; returns the step's mean loss over
    /// its answer tokens.
    pub(super) fn optimizer_step(
        &mut self,
        batches: &[&[usize]],
        opt: &mut AdamW,
        lr: f64,
    ) -> Result<f64, Error> {
        let hyper = self.job.hyper;
        // Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
        self.model.set_training(
            true,
            hyper.seed ^ self.state.step.wrapping_mul(0x2545_f491_4f6c_dd1d),
        );
        let samples: Vec<Vec<&Sample>> = batches
            .iter()
            .map(|b| b.iter().filter_map(|&i| self.job.samples.get(i)).collect())
            .collect();
        let step_answer_tokens: usize = samples.iter().flatten().map(|s| s.answer_tokens()).sum();
        let params: Vec<Var> = self.vars.iter().map(|(_, v)| v.clone()).collect();
        let mut acc = GradAccumulator::new(params.len());
        let mut loss_sum = 0.0;
        for micro in &samples {
            let batch = Batch::new(micro, self.job.pad_id, self.model.device())?;
            self.session_tokens += batch.tokens as u64;
            self.state.tokens += batch.tokens as u64;
            if batch.answer_tokens == 0 {
                continue;
            }
            let loss = answer_loss(self.model, &batch)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * batch.answer_tokens as f64;
            // Weighted by this micro-batch's share of the step's answer tokens, the summed
            // gradients are those of the mean loss over the whole step.
            let share = batch.answer_tokens as f64 / step_answer_tokens.max(1) as f64;
            let grads = (loss * share)?.backward()?;
            acc.add(&params, &grads)?;
        }
        let mut grads = acc.take(&params)?;
        clip_grad_norm(&mut grads, hyper.max_grad_norm)?;
        opt.step(&grads, lr)?;
        self.state.step += 1;
        self.session_steps += 1;
        Ok(loss_sum / step_answer_tokens.max(1) as f64)
    }

    /// What follows an optimizer step: the loss point, the `step` event, validation every
    /// `eval_steps` and a checkpoint every `save_steps`. Returns whether training stopped early.
    pub(super) fn after_step(
        &mut self,
        at: StepAt,
        loss: f64,
        lr: f64,
        opt: &AdamW,
        on_event: &mut dyn FnMut(WorkerEvent),
    ) -> Result<bool, Error> {
        let StepAt {
            epoch,
            k,
            steps_per_epoch,
            total_steps,
        } = at;
        let epoch_f = epoch as f64 + (k + 1) as f64 / steps_per_epoch as f64;
        self.state.curve.push(LossPoint {
            step: self.state.step,
            epoch: epoch_f,
            split: LossSplit::Train,
            loss,
        });
        let elapsed = self.session_start.elapsed().as_secs_f64();
        let per_step = elapsed / self.session_steps.max(1) as f64;
        on_event(WorkerEvent::Step {
            step: self.state.step,
            total_steps,
            epoch: epoch_f,
            loss,
            lr,
            tokens_per_second: self.session_tokens as f64 / elapsed.max(1e-9),
            eta_seconds: per_step * total_steps.saturating_sub(self.state.step) as f64,
        });
        if let Some(every) = self.job.hyper.eval_steps
            && every > 0
            && self.state.step.is_multiple_of(every as u64)
        {
            self.validate(epoch_f, on_event)?;
            if self.state.stopped_early {
                return Ok(true);
            }
        }
        // The epoch's last step is checkpointed below, after the epoch's validation, so
        // that checkpoint holds the finished epoch.
        if let Some(every) = self.job.hyper.save_steps
            && every > 0
            && self.state.step.is_multiple_of(every as u64)
            && k + 1 < steps_per_epoch
        {
            self.checkpoint(opt, on_event)?;
        }
        Ok(false)
    }

    /// Puts the best adapter (when validation ran, else the last one) on the model, writes it
    /// and `trained.json`, and returns the report.
    pub(super) fn finish(
        &mut self,
        adapter_dir: PathBuf,
        trained_file: &Path,
        total_steps: u64,
        fingerprint: String,
    ) -> Result<TrainReport, Error> {
        // The best adapter when validation ran, else the last one.
        let best = checkpoint::best_dir(self.root);
        if self.state.best_step.is_some() && best.join(adapter::WEIGHTS_FILE).is_file() {
            adapter::load_adapter(&best, self.model.device())?.apply_to(self.model)?;
        }
        adapter::save_adapter(&adapter_dir, self.model, self.job.base_model_name)?;
        self.sync_time();
        let state = &self.state;
        let report = TrainReport {
            adapter_path: adapter_dir,
            merged_path: None,
            steps: state.step,
            total_steps,
            train_seconds: state.train_seconds,
            tokens_per_second: state.tokens as f64 / state.train_seconds.max(1e-9),
            peak_memory_bytes: llm::proc_stats::peak_memory_bytes(),
            best_val_loss: state.best_val_loss,
            best_step: state.best_step,
            stopped_early: state.stopped_early,
            curve: state.curve.clone(),
            fingerprint,
        };
        files::write_json(trained_file, &report)?;
        tracing::info!(
            steps = report.steps,
            seconds = report.train_seconds,
            best_val_loss = ?report.best_val_loss,
            "training finished"
        );
        Ok(report)
    }

    /// Validation loss, early-stopping bookkeeping, and the best adapter on disk.
    pub(super) fn validate(
        &mut self,
        epoch: f64,
        on_event: &mut dyn FnMut(WorkerEvent),
    ) -> Result<(), Error> {
        if self.val_idx.is_empty() {
            return Ok(());
        }
        let loss = validation_loss(
            self.model,
            self.job.samples,
            self.val_idx,
            self.job.hyper.micro_batch_size,
            self.job.pad_id,
        )?;
        let step = self.state.step;
        self.state.curve.push(LossPoint {
            step,
            epoch,
            split: LossSplit::Val,
            loss,
        });
        on_event(WorkerEvent::Validation { step, epoch, loss });
        if self.state.best_val_loss.is_none_or(|best| loss < best) {
            self.state.best_val_loss = Some(loss);
            self.state.best_step = Some(step);
            self.state.evals_since_best = 0;
            adapter::save_adapter(
                &checkpoint::best_dir(self.root),
                self.model,
                self.job.base_model_name,
            )?;
        } else {
            self.state.evals_since_best += 1;
            if let Some(patience) = self.job.hyper.early_stopping_patience
                && self.state.evals_since_best >= patience
            {
                tracing::info!(
                    step,
                    patience,
                    "early stopping: validation loss stopped improving"
                );
                self.state.stopped_early = true;
            }
        }
        Ok(())
    }

    pub(super) fn sync_time(&mut self) {
        self.state.train_seconds = self.prior_seconds + self.session_start.elapsed().as_secs_f64();
    }

    /// Writes a checkpoint of the current step (once per step).
    pub(super) fn checkpoint(
        &mut self,
        opt: &AdamW,
        on_event: &mut dyn FnMut(WorkerEvent),
    ) -> Result<Option<PathBuf>, Error> {
        if self.state.step == 0 {
            return Ok(None);
        }
        let dir = checkpoint::step_dir(self.root, self.state.step);
        if self.last_checkpoint == Some(self.state.step) && dir.is_dir() {
            return Ok(Some(dir));
        }
        self.sync_time();
        let dir = checkpoint::save(self.root, &self.state, self.vars, opt)?;
        self.last_checkpoint = Some(self.state.step);
        on_event(WorkerEvent::Checkpoint {
            step: self.state.step,
            path: dir.clone(),
        });
        Ok(Some(dir))
    }
}
