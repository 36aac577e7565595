//! `fake-finetune-worker`: a stand-in for `finetune-worker` that the runner's integration tests
//! launch (`CARGO_BIN_EXE_fake-finetune-worker`). It reads the real job file and speaks the real
//! `finetune::job` protocol on stdout, but trains nothing, so the runner's side of a fine-tune
//! (launching, reading events, storing the curve, the training record and the answers, surviving
//! a crash, being cancelled) is tested in a second. It is not part of any install.
//!
//! Usage: `fake-finetune-worker --mode MODE --job PATH`. Mode `ok` finishes the job; `crash`
//! answers two items and exits 2 without `done`, as a worker that died mid-way would; `panic`
//! and `oom` answer two items and then die as a real worker does, panicking (with the
//! backtrace footer after the message) or aborting on a failed allocation; `slow`
//! answers one item every 100 ms, so a test can cancel it mid-way; `reuse` skips the steps and
//! reports the finished training's whole curve, as a worker that finds its adapter already
//! trained does.
//!
//! `--serve` instead of `--job PATH` reads job paths from stdin, one a line, and runs each in
//! turn, as `finetune-worker --serve` does; every job it runs gets a `worker.pid` file in its
//! `out_dir` with this process's id, so a test can tell which jobs one process served.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use domain::{LossPoint, LossSplit};
use finetune::job::{FinetuneJob, WorkerEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Crash,
    Panic,
    Oom,
    Slow,
    Reuse,
    /// The third item cannot be answered; the others are.
    Unanswerable,
}

fn main() -> ExitCode {
    let (mode, job) = match args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("fake-finetune-worker: {message}");
            return ExitCode::from(64);
        }
    };
    let Some(job) = job else {
        return serve(mode);
    };
    run_or_report(mode, &job)
}

fn run_or_report(mode: Mode, job: &PathBuf) -> ExitCode {
    match run(mode, job) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fake-finetune-worker: {err}");
            ExitCode::from(1)
        }
    }
}

/// The jobs named on stdin, in turn; the first that does not finish ends the process.
fn serve(mode: Mode) -> ExitCode {
    for line in std::io::stdin().lines() {
        let Ok(line) = line else {
            return ExitCode::from(1);
        };
        let job = PathBuf::from(line.trim());
        if let Some(dir) = job.parent() {
            let _ = std::fs::write(dir.join("worker.pid"), std::process::id().to_string());
        }
        let code = run_or_report(mode, &job);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    ExitCode::SUCCESS
}

/// `--mode MODE` and `--job PATH` (or `--serve`), in any order.
fn args() -> Result<(Mode, Option<PathBuf>), String> {
    let mut mode = Mode::Ok;
    let mut job = None;
    let mut serving = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--serve" {
            serving = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--job" => job = Some(PathBuf::from(value)),
            "--mode" => {
                mode = match value.as_str() {
                    "ok" => Mode::Ok,
                    "crash" => Mode::Crash,
                    "panic" => Mode::Panic,
                    "oom" => Mode::Oom,
                    "slow" => Mode::Slow,
                    "reuse" => Mode::Reuse,
                    "unanswerable" => Mode::Unanswerable,
                    other => return Err(format!("unknown mode {other:?}")),
                }
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if serving {
        return Ok((mode, None));
    }
    Ok((mode, Some(job.ok_or("--job PATH or --serve is required")?)))
}

fn run(mode: Mode, job_path: &PathBuf) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let job: FinetuneJob = serde_json::from_slice(&std::fs::read(job_path)?)?;
    let mut out = std::io::stdout().lock();
    let mut say = |e: WorkerEvent| -> std::io::Result<()> {
        writeln!(out, "{}", e.to_json_line())?;
        out.flush()
    };
    say(WorkerEvent::Started {
        total_steps: 2,
        resumed_from_step: None,
    })?;
    if mode != Mode::Reuse {
        for step in 1..=2u64 {
            say(WorkerEvent::Step {
                step,
                total_steps: 2,
                epoch: step as f64 / 2.0,
                loss: 2.0 / step as f64,
                lr: 1e-4,
                tokens_per_second: 100.0,
                eta_seconds: 1.0,
            })?;
        }
        say(WorkerEvent::Validation {
            step: 2,
            epoch: 1.0,
            loss: 0.9,
        })?;
    }
    let point = |step: u64, split: LossSplit, loss: f64| LossPoint {
        step,
        epoch: step as f64 / 2.0,
        split,
        loss,
    };
    say(WorkerEvent::Trained {
        train_seconds: 36.0,
        tokens_per_second: 100.0,
        peak_memory_bytes: 1 << 20,
        adapter_path: job.out_dir.join("adapter"),
        best_val_loss: Some(0.9),
        curve: vec![
            point(1, LossSplit::Train, 2.0),
            point(2, LossSplit::Train, 1.0),
            point(2, LossSplit::Val, 0.9),
        ],
    })?;
    for (i, item) in job.eval.iter().enumerate() {
        if i == 2 {
            die(mode);
            if mode == Mode::Crash {
                eprintln!("simulated crash: out of memory");
                return Ok(ExitCode::from(2));
            }
        }
        if mode == Mode::Slow {
            std::thread::sleep(Duration::from_millis(100));
        }
        if mode == Mode::Unanswerable && i == 2 {
            say(WorkerEvent::Unanswered {
                item_id: item.item_id.clone(),
                error: "the prompt has 9000 tokens; with 8 new tokens it exceeds the model's \
                        context of 8192"
                    .into(),
            })?;
            continue;
        }
        say(WorkerEvent::Answer {
            item_id: item.item_id.clone(),
            text: "yes".into(),
            prompt_tokens: 10,
            completion_tokens: 1,
            seconds: 0.5,
            truncated: false,
            choice: None,
            token_logprobs: Vec::new(),
        })?;
    }
    say(WorkerEvent::Done)?;
    Ok(ExitCode::SUCCESS)
}

/// In modes `panic` and `oom`, dies the way a real worker does, after a log line of the kind
/// its tracing writes to stderr; otherwise returns.
#[allow(clippy::panic)] // Panicking is this mode's whole job.
fn die(mode: Mode) {
    if !matches!(mode, Mode::Panic | Mode::Oom) {
        return;
    }
    eprintln!("2026-05-01T10:00:00.000000Z  INFO fake_finetune_worker: answering item 3");
    if mode == Mode::Oom {
        // What a LoRA of rank 100 000 asks for; `handle_alloc_error` is what `Vec` and `Box`
        // call when the allocator says no: it prints the size and aborts.
        match std::alloc::Layout::from_size_align(230_000_000_000, 8) {
            Ok(layout) => std::alloc::handle_alloc_error(layout),
            Err(err) => panic!("{err}"),
        }
    }
    panic!("simulated panic: lora_r 100000 does not fit");
}
