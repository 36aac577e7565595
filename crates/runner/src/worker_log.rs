//! The fine-tune worker's stderr log (a serving worker's `worker-DEVICE.log` beside the arms'
//! folders, or `worker.log` in a probe's folder) and what it says when
//! the worker dies without a word on its protocol: the reason stored for the failed arm is the
//! first panic (`thread '…' panicked at …` and its message line) or allocation failure
//! (`memory allocation of N bytes failed`) this invocation wrote, else its last non-empty line;
//! never the backtrace's footer that a crash ends with.
//!
//! The log is appended to across reruns and served jobs, so only the part written since this
//! job began is read.
//! Nothing here starts or reads the worker's stdout (`worker.rs` does).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Longest reason kept, in characters (a panic message can be a whole data dump).
const MAX_REASON: usize = 400;
/// Most of the log read back: enough for any crash's first lines after a long training.
const MAX_READ: u64 = 4 << 20;

/// The worker's log and where this invocation's part of it begins.
pub(crate) struct WorkerLog {
    path: PathBuf,
    start: u64,
}

impl WorkerLog {
    /// Opens the log at `path` for appending (the worker's stderr), noting its length.
    pub(crate) fn open(path: &Path) -> Result<(Self, File), String> {
        let path = path.to_path_buf();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("opening {} failed: {e}", path.display()))?;
        let start = file.metadata().map_or(0, |m| m.len());
        Ok((WorkerLog { path, start }, file))
    }

    /// The log at `path` (the stderr of a serving worker) from its present end on.
    pub(crate) fn at(path: &Path) -> Self {
        let start = std::fs::metadata(path).map_or(0, |m| m.len());
        WorkerLog {
            path: path.to_path_buf(),
            start,
        }
    }

    /// The reason in what the worker wrote since it was launched; empty when it wrote nothing.
    pub(crate) fn crash_reason(&self) -> String {
        crash_reason(&self.read_own_part())
    }

    fn read_own_part(&self) -> String {
        let Ok(mut file) = File::open(&self.path) else {
            return String::new();
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.start)).is_err()
            || file.take(MAX_READ).read_to_end(&mut bytes).is_err()
        {
            return String::new();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The line that says why a process died, from its stderr: the first panic (with the message
/// line that follows its location) or allocation failure, else the last non-empty line.
pub(crate) fn crash_reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim_end).collect();
    let first = lines.iter().enumerate().find_map(|(i, line)| {
        if is_allocation_failure(line) {
            Some((*line).to_string())
        } else if is_panic(line) {
            Some(panic_with_message(line, lines.get(i + 1).copied()))
        } else {
            None
        }
    });
    let reason = first.unwrap_or_else(|| {
        let last = lines.iter().rev().find(|l| !l.trim().is_empty());
        last.map_or_else(String::new, |l| l.trim().to_string())
    });
    reason.chars().take(MAX_REASON).collect()
}

/// `thread 'main' panicked at FILE:LINE:COL:`, with or without the thread id Rust 1.9x adds
/// (`thread 'main' (4711) panicked at`).
fn is_panic(line: &str) -> bool {
    line.starts_with("thread '") && line.contains(" panicked at ")
}

/// What `handle_alloc_error` prints before it aborts.
fn is_allocation_failure(line: &str) -> bool {
    line.starts_with("memory allocation of ") && line.ends_with(" bytes failed")
}

/// Since Rust 1.73 the location line ends with `:` and the message follows on the next line;
/// before, the message was quoted inside the location line.
fn panic_with_message(line: &str, next: Option<&str>) -> String {
    match next {
        Some(message) if line.ends_with(':') && !message.trim().is_empty() => {
            format!("{line} {}", message.trim())
        }
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::crash_reason;

    fn check(stderr: &str, expected: &str) {
        assert_eq!(crash_reason(stderr), expected);
    }

    #[test]
    fn a_panic_is_its_location_and_message_not_the_backtrace_footer() {
        check(
            "2026-05-01T10:00:00Z  INFO finetune_worker: training 120 steps\n\
             thread 'main' (4711) panicked at workers/finetune-worker/src/main.rs:88:9:\n\
             lora_r 100000 does not fit\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
            "thread 'main' (4711) panicked at workers/finetune-worker/src/main.rs:88:9: lora_r 100000 does not fit",
        );
    }

    #[test]
    fn the_first_panic_wins_over_the_ones_it_caused() {
        check(
            "thread 'train' (12) panicked at crates/llm/src/ops.rs:5:73:\n\
             shape mismatch\n\
             stack backtrace:\n   0: std::panicking::begin_panic\n\
             note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\n\n\
             thread 'main' (11) panicked at workers/finetune-worker/src/main.rs:7:5:\n\
             the training thread panicked\n",
            "thread 'train' (12) panicked at crates/llm/src/ops.rs:5:73: shape mismatch",
        );
    }

    #[test]
    fn an_old_style_panic_keeps_its_quoted_message() {
        check(
            "thread '<unnamed>' panicked at 'index out of bounds', src/lib.rs:3:5\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
            "thread '<unnamed>' panicked at 'index out of bounds', src/lib.rs:3:5",
        );
    }

    #[test]
    fn an_allocation_failure_is_its_own_line() {
        check(
            "2026-05-01T10:00:00Z  INFO finetune_worker: adding LoRA (r = 100000)\n\
             memory allocation of 230000000000 bytes failed\n\
             stack backtrace:\n   0: std::alloc::rust_oom\n\
             note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\n",
            "memory allocation of 230000000000 bytes failed",
        );
    }

    #[test]
    fn otherwise_the_last_non_empty_line() {
        check(
            "loading\nfake-finetune-worker: job.json: no such file\n\n",
            "fake-finetune-worker: job.json: no such file",
        );
        check("", "");
    }

    #[test]
    fn a_long_reason_is_shortened() {
        let message = "x".repeat(1000);
        let reason = crash_reason(&format!("thread 'main' panicked at a.rs:1:1:\n{message}\n"));
        assert_eq!(reason.chars().count(), 400);
    }
}
