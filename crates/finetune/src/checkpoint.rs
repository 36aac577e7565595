//! Resumable training checkpoints, one directory per optimizer step:
//!
//! ```text
//! out_dir/checkpoints/step-40/lora.safetensors       LoRA tensors under PEFT names
//! out_dir/checkpoints/step-40/optimizer.safetensors  AdamW moments: m.<name>, v.<name>
//! out_dir/checkpoints/step-40/state.json             step, epoch position, best validation
//!                                                     loss, loss curve, job fingerprint
//! out_dir/checkpoints/best/                           the best adapter so far (PEFT layout)
//! ```
//!
//! A checkpoint directory is written under `step-N.partial` and renamed when complete, so the
//! newest `step-N` is always whole. There is no generator state to save: shuffles derive from
//! (seed, epoch) and dropout masks from (seed, step). A checkpoint carries the fingerprint of
//! the job that wrote it, and is only resumed by the same job.
//!
//! Not here: when to checkpoint (`train.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::optim::AdamW;
use crate::{Error, files};

/// Bumped when the layout changes; other versions are not resumed.
const FORMAT: u32 = 1;
/// Step checkpoints kept on disk (older ones are deleted).
const KEEP: usize = 2;

/// Where a run stands, as saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    /// sha256 of what determines the run (training data and hyper-parameters).
    pub fingerprint: String,
    /// Optimizer steps taken.
    pub step: u64,
    /// The epoch in progress (0-based), and optimizer steps already taken within it.
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Validations since the best one (early stopping's patience counter).
    pub evals_since_best: usize,
    pub stopped_early: bool,
    /// Real tokens trained on and seconds spent, over every session of this run.
    pub tokens: u64,
    pub train_seconds: f64,
    pub curve: Vec<domain::LossPoint>,
}

impl TrainState {
    pub fn new(fingerprint: String) -> Self {
        Self {
            format: FORMAT,
            fingerprint,
            step: 0,
            epoch: 0,
            step_in_epoch: 0,
            best_val_loss: None,
            best_step: None,
            evals_since_best: 0,
            stopped_early: false,
            tokens: 0,
            train_seconds: 0.0,
            curve: Vec::new(),
        }
    }
}

/// A checkpoint read back.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainState,
    pub lora: HashMap<String, Tensor>,
    /// AdamW moments by LoRA name.
    pub m: HashMap<String, Tensor>,
    pub v: HashMap<String, Tensor>,
}

/// The directory of the checkpoint at `step`.
pub fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step}"))
}

/// The best adapter so far.
pub fn best_dir(root: &Path) -> PathBuf {
    root.join("best")
}

/// Writes a checkpoint of `vars` (PEFT names, aligned with `opt`'s parameters), the optimizer
/// and `state`, then deletes all but the newest few.
pub fn save(
    root: &Path,
    state: &TrainState,
    vars: &[(String, Var)],
    opt: &AdamW,
) -> Result<PathBuf, Error> {
    let dir = step_dir(root, state.step);
    let staged = root.join(format!("step-{}.partial", state.step));
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| files::io_error(&staged, e))?;
    }
    files::create_dir_all(&staged)?;
    let lora: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    files::write_safetensors(&staged.join("lora.safetensors"), &lora, HashMap::new())?;
    let (m, v) = opt.moments();
    let moments: Vec<(String, Tensor)> = vars
        .iter()
        .zip(m.iter().zip(v))
        .flat_map(|((name, _), (m, v))| {
            [
                (format!("m.{name}"), m.clone()),
                (format!("v.{name}"), v.clone()),
            ]
        })
        .collect();
    files::write_safetensors(
        &staged.join("optimizer.safetensors"),
        &moments,
        HashMap::new(),
    )?;
    files::write_json(&staged.join("state.json"), state)?;
    files::replace_dir(&staged, &dir)?;
    prune(root)?;
    Ok(dir)
}

/// Step checkpoints under `root`, newest first.
fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(files::io_error(root, e)),
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let step = name.to_str()?.strip_prefix("step-")?.parse::<u64>().ok()?;
            Some((step, e.path()))
        })
        .filter(|(_, p)| p.join("state.json").is_file())
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(out)
}

fn prune(root: &Path) -> Result<(), Error> {
    for (_, dir) in list(root)?.into_iter().skip(KEEP) {
        std::fs::remove_dir_all(&dir).map_err(|e| files::io_error(&dir, e))?;
    }
    Ok(())
}

/// The newest checkpoint under `root` written by the job with `fingerprint`, if any. A
/// checkpoint of another job (or layout version) is skipped with a warning.
pub fn latest(
    root: &Path,
    fingerprint: &str,
    device: &Device,
) -> Result<Option<Checkpoint>, Error> {
    for (_, dir) in list(root)? {
        let state: TrainState = files::read_json(&dir.join("state.json"))?;
        if state.format != FORMAT || state.fingerprint != fingerprint {
            tracing::warn!(
                checkpoint = %dir.display(),
                "checkpoint belongs to another job (data or settings changed); not resuming from it"
            );
            continue;
        }
        let lora = files::read_safetensors(&dir.join("lora.safetensors"), device)?;
        let moments = files::read_safetensors(&dir.join("optimizer.safetensors"), device)?;
        let mut m = HashMap::new();
        let mut v = HashMap::new();
        for (name, t) in moments {
            if let Some(n) = name.strip_prefix("m.") {
                m.insert(n.to_string(), t);
            } else if let Some(n) = name.strip_prefix("v.") {
                v.insert(n.to_string(), t);
            }
        }
        for name in lora.keys() {
            if !m.contains_key(name) || !v.contains_key(name) {
                return Err(Error::BadCheckpoint {
                    path: dir,
                    reason: format!("no optimizer moments for {name}"),
                });
            }
        }
        return Ok(Some(Checkpoint {
            dir,
            state,
            lora,
            m,
            v,
        }));
    }
    Ok(None)
}

/// Deletes every checkpoint (a fresh start that must not resume stale state).
pub fn clear(root: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(files::io_error(root, e)),
    }
}
