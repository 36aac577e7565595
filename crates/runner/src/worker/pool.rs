//! Worker processes kept between fine-tunes on one device: a `finetune-worker --serve` reads
//! job paths on its stdin and runs them one after another, so the arms after the first (a
//! learning curve's sizes, a noise sweep's levels, any fine-tunes sharing a device) skip the
//! process start, the base model's load and the first step's warm-up. The device lock already lets one job run per
//! device; the pool only remembers the idle process between them.
//!
//! A process goes back to the pool only after its job's last event (`done` or `error`) with
//! the process still running; one that crashed, was cancelled or was killed is dropped, and
//! the next job starts a fresh one. Its stderr is one log per device (`worker-cpu.log`, …
//! beside the arms' folders), of which each job reads only the part written while it ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use domain::Device;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::worker_log::WorkerLog;

/// A serving worker, idle or running one job.
pub(crate) struct Served {
    pub(crate) child: Child,
    stdin: ChildStdin,
    pub(crate) lines: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
}

/// The idle serving worker of each device.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<Device, Served>>,
}

impl Pool {
    /// Hands job `job_path` to the device's idle worker, or to a new one (started with
    /// `worker` and logging to `log_dir`); returns the worker and the log of this job's part.
    pub(crate) async fn start(
        &self,
        device: Device,
        worker: &Path,
        log_dir: &Path,
        job_path: &Path,
    ) -> Result<(Served, WorkerLog), String> {
        let idle = self.idle.lock().ok().and_then(|mut m| m.remove(&device));
        if let Some(mut served) = idle {
            // An idle worker that died meanwhile cannot take the job: start another.
            if served.child.try_wait().ok().flatten().is_none()
                && send(&mut served.stdin, job_path).await.is_ok()
            {
                let log = WorkerLog::at(&served.log);
                return Ok((served, log));
            }
        }
        let mut served = spawn(device, worker, log_dir)?;
        let log = WorkerLog::at(&served.log);
        send(&mut served.stdin, job_path)
            .await
            .map_err(|e| format!("handing the job to the worker failed: {e}"))?;
        Ok((served, log))
    }

    /// Keeps `served` for the device's next job.
    pub(crate) fn put_back(&self, device: Device, served: Served) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.insert(device, served);
        }
    }
}

async fn send(stdin: &mut ChildStdin, job_path: &Path) -> std::io::Result<()> {
    let mut line = job_path.as_os_str().as_encoded_bytes().to_vec();
    line.push(b'\n');
    stdin.write_all(&line).await?;
    stdin.flush().await
}

fn spawn(device: Device, worker: &Path, log_dir: &Path) -> Result<Served, String> {
    std::fs::create_dir_all(log_dir)
        .map_err(|e| format!("creating {} failed: {e}", log_dir.display()))?;
    let log = log_dir.join(format!("worker-{device}.log"));
    let (_, stderr) = WorkerLog::open(&log)?;
    let (child, stdin, stdout) = spawn_serving(worker, stderr, true)?;
    Ok(Served {
        child,
        stdin,
        lines: BufReader::new(stdout).lines(),
        log,
    })
}

/// Starts `worker --serve` with its stdin and stdout piped and its stderr to `stderr`. With
/// `own_group`, in a process group of its own: a Ctrl-C in the terminal then reaches only us,
/// and we forward exactly one SIGTERM (a second signal would make the worker quit without its
/// checkpoint); without, the terminal's Ctrl-C reaches it as well.
pub(crate) fn spawn_serving(
    worker: &Path,
    stderr: std::fs::File,
    own_group: bool,
) -> Result<(Child, ChildStdin, ChildStdout), String> {
    let mut command = Command::new(worker);
    command.arg("--serve").env("NO_COLOR", "1");
    #[cfg(unix)]
    if own_group {
        command.process_group(0);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {} failed: {e}", worker.display()))?;
    match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => Ok((child, stdin, stdout)),
        _ => Err("the worker's input or output could not be opened".into()),
    }
}
