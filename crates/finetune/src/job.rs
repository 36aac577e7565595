//! The fine-tune worker's protocol: the job the runner writes to `job.json`, and the events the
//! worker prints on stdout, one JSON object per line, tagged by `"event"`.
//!
//! Both sides (the runner, which launches and reads, and `finetune-worker`, which trains and
//! writes) use these types, so the wire format lives in one place. This module is only data and
//! its (de)serialisation: it starts no process and reads no file beyond what it is handed.
//!
//! A worker's life, as its stdout shows it:
//!
//! ```text
//! {"event":"started","total_steps":40,"resumed_from_step":null}
//! {"event":"step","step":1,"total_steps":40,"epoch":0.025,"loss":3.1,"lr":0.00002,"tokens_per_second":240.0,"eta_seconds":80.0}
//! {"event":"validation","step":20,"epoch":1.0,"loss":0.4}
//! {"event":"checkpoint","step":20,"path":"out/checkpoints/step-20"}
//! {"event":"trained","train_seconds":80.0,"tokens_per_second":240.0,"peak_memory_bytes":2900000000,"adapter_path":"out/adapter","best_val_loss":0.4}
//! {"event":"answer","item_id":"7","text":"positive","prompt_tokens":54,"completion_tokens":2,"seconds":0.2}
//! {"event":"done"}
//! ```
//!
//! Exit codes are in [`exit`]. An `error` event precedes a non-zero exit when the worker can
//! still say why. A worker started with `--serve` reads job paths on stdin, one a line, and
//! runs them in turn: each job's events end with `done` or `error` (after which the worker
//! waits for the next path), and it exits 0 at the end of its input, or 130 when interrupted.

use std::path::PathBuf;

use domain::{ComputeSpec, GenerationParams, LoraHyper, LossPoint, Message};
use serde::{Deserialize, Serialize};

/// One fine-tune arm's work: train a LoRA adapter on `train`, then answer `eval` with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneJob {
    /// The fine-tune arm id; it names the job in logs only.
    pub arm: String,
    /// A `.gguf` file, or a directory (or `.safetensors` file) with `config.json` beside it.
    pub base_model: PathBuf,
    /// What the adapter records as its base model (`base_model_name_or_path`): the Hugging Face
    /// id of a known model, or the path as the spec gave it (`models::base_model_name`). None,
    /// as in job files written before it existed, records `base_model` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_name: Option<String>,
    pub hyper: LoraHyper,
    pub compute: ComputeSpec,
    /// Training examples, already rendered with the arm's prompt; the validation share is
    /// split off these by the trainer, deterministically from `hyper.seed`.
    pub train: Vec<Example>,
    /// The eval items to answer once trained.
    pub eval: Vec<EvalPrompt>,
    pub generation: GenerationParams,
    /// Where checkpoints (`checkpoints/step-N/`), the adapter (`adapter/`) and merged weights
    /// (`merged/`) go. One directory per run and arm.
    pub out_dir: PathBuf,
    /// Continue from the newest checkpoint in `out_dir/checkpoints` when there is one written
    /// for this same job (same data and hyper-parameters); otherwise start afresh. A job whose
    /// training already finished skips straight to answering. Default true, so a relaunch after
    /// a crash or Ctrl-C loses nothing.
    #[serde(default = "yes")]
    pub resume: bool,
}

fn yes() -> bool {
    true
}

/// A training example: the chat up to the answer, and the answer the model should learn.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Example {
    pub messages: Vec<Message>,
    pub answer: String,
}

/// An eval item to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalPrompt {
    pub item_id: String,
    pub messages: Vec<Message>,
}

/// What the worker reports, one JSON line each on stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// Training begins (or resumes: `resumed_from_step` is the checkpoint's step).
    Started {
        total_steps: u64,
        resumed_from_step: Option<u64>,
    },
    /// One optimizer step finished. `step` counts from 1; `epoch` is fractional.
    Step {
        step: u64,
        total_steps: u64,
        epoch: f64,
        /// Mean cross-entropy over the step's answer tokens.
        loss: f64,
        /// The learning rate this step used.
        lr: f64,
        /// Sequence tokens (padding excluded) per second since training (re)started.
        tokens_per_second: f64,
        eta_seconds: f64,
    },
    /// Validation loss (mean over the held-out answer tokens) after `step`.
    Validation { step: u64, epoch: f64, loss: f64 },
    /// A resumable checkpoint was written.
    Checkpoint { step: u64, path: PathBuf },
    /// Training finished and the adapter (the best one, when validation ran) is written.
    Trained {
        train_seconds: f64,
        tokens_per_second: f64,
        /// Peak resident memory of the worker (`VmHWM`), in bytes.
        peak_memory_bytes: u64,
        adapter_path: PathBuf,
        best_val_loss: Option<f64>,
        /// The whole loss curve of this training, the steps of earlier sessions included (a
        /// training resumed from a checkpoint, or one that had already finished and is reused
        /// by a new run), so the run that uses the adapter can store all of it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        curve: Vec<LossPoint>,
    },
    /// One eval item answered by the fine-tuned model.
    Answer {
        item_id: String,
        text: String,
        prompt_tokens: u32,
        completion_tokens: u32,
        /// Compute seconds attributed to this item (its share of its batch).
        seconds: f64,
        /// Generation stopped at `max_tokens`, not at the end of the answer.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// With `choices`: the label chosen and its confidence (`text` is the label).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        choice: Option<domain::ChoiceRecord>,
        /// Log-probability of each generated token (empty for a choice).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        token_logprobs: Vec<f32>,
    },
    /// One eval item the fine-tuned model could not answer (its prompt does not fit the
    /// context, say); the others are still answered.
    Unanswered { item_id: String, error: String },
    /// Every eval item is answered; the worker exits 0.
    Done,
    /// The job failed; the worker exits non-zero.
    Error { message: String },
}

impl WorkerEvent {
    /// The event as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        // Serialising this enum cannot fail: every field is a plain number, string or path,
        // and a non-UTF-8 path is the only error serde_json could raise, which we render lossily.
        serde_json::to_string(self).unwrap_or_else(|e| {
            let message = format!("unserialisable event: {e}");
            format!(
                "{{\"event\":\"error\",\"message\":{}}}",
                serde_json::Value::String(message)
            )
        })
    }

    /// Parses one line the worker printed.
    pub fn parse_line(line: &str) -> Result<WorkerEvent, serde_json::Error> {
        serde_json::from_str(line.trim())
    }
}

/// The worker's exit codes, as the runner interprets them.
pub mod exit {
    /// The job finished: adapter written and every eval item answered.
    pub const OK: i32 = 0;
    /// The job file was missing, unreadable or invalid; rerunning will not help.
    pub const BAD_JOB: i32 = 1;
    /// Training or generation failed; a checkpoint may allow a resume.
    pub const FAILURE: i32 = 2;
    /// SIGINT or SIGTERM: a checkpoint was written; rerun the job to resume.
    pub const INTERRUPTED: i32 = 130;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use domain::Message;

    fn check(event: WorkerEvent, expected: &str) {
        let line = event.to_json_line();
        assert_eq!(line, expected);
        assert_eq!(WorkerEvent::parse_line(&line).unwrap(), event);
    }

    #[test]
    fn events_are_tagged_json_lines() {
        check(
            WorkerEvent::Started {
                total_steps: 40,
                resumed_from_step: None,
            },
            r#"{"event":"started","total_steps":40,"resumed_from_step":null}"#,
        );
        check(
            WorkerEvent::Step {
                step: 1,
                total_steps: 40,
                epoch: 0.025,
                loss: 3.5,
                lr: 2e-5,
                tokens_per_second: 240.0,
                eta_seconds: 80.0,
            },
            r#"{"event":"step","step":1,"total_steps":40,"epoch":0.025,"loss":3.5,"lr":0.00002,"tokens_per_second":240.0,"eta_seconds":80.0}"#,
        );
        check(
            WorkerEvent::Validation {
                step: 20,
                epoch: 1.0,
                loss: 0.25,
            },
            r#"{"event":"validation","step":20,"epoch":1.0,"loss":0.25}"#,
        );
        check(
            WorkerEvent::Checkpoint {
                step: 20,
                path: "out/checkpoints/step-20".into(),
            },
            r#"{"event":"checkpoint","step":20,"path":"out/checkpoints/step-20"}"#,
        );
        check(
            WorkerEvent::Trained {
                train_seconds: 80.0,
                tokens_per_second: 240.0,
                peak_memory_bytes: 2_900_000_000,
                adapter_path: "out/adapter".into(),
                best_val_loss: Some(0.25),
                curve: Vec::new(),
            },
            r#"{"event":"trained","train_seconds":80.0,"tokens_per_second":240.0,"peak_memory_bytes":2900000000,"adapter_path":"out/adapter","best_val_loss":0.25}"#,
        );
        check(
            WorkerEvent::Answer {
                item_id: "7".into(),
                text: "positive".into(),
                prompt_tokens: 54,
                completion_tokens: 2,
                seconds: 0.5,
                truncated: false,
                choice: None,
                token_logprobs: Vec::new(),
            },
            r#"{"event":"answer","item_id":"7","text":"positive","prompt_tokens":54,"completion_tokens":2,"seconds":0.5}"#,
        );
        check(WorkerEvent::Done, r#"{"event":"done"}"#);
        check(
            WorkerEvent::Error {
                message: "boom".into(),
            },
            r#"{"event":"error","message":"boom"}"#,
        );
    }

    #[test]
    fn job_round_trips_and_resume_defaults_to_true() {
        let job = FinetuneJob {
            arm: "smollm2-lora".into(),
            base_model: "model.gguf".into(),
            base_model_name: Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
            hyper: LoraHyper::default(),
            compute: ComputeSpec::default(),
            train: vec![Example {
                messages: vec![Message::user("2+2?")],
                answer: "4".into(),
            }],
            eval: vec![EvalPrompt {
                item_id: "a".into(),
                messages: vec![Message::user("3+3?")],
            }],
            generation: GenerationParams::default(),
            out_dir: "out".into(),
            resume: false,
        };
        let json = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<FinetuneJob>(&json).unwrap(), job);

        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value.as_object_mut().unwrap().remove("resume");
        let job: FinetuneJob = serde_json::from_value(value).unwrap();
        assert!(job.resume);
    }
}
