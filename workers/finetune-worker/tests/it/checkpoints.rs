//! `save_steps` on the real worker: a job killed with SIGKILL in the middle of an epoch, right
//! after a step checkpoint, and run again resumes from the newest checkpoint on disk, redoes no
//! step before it, loses at most `save_steps` steps, and then takes exactly the steps (same
//! learning rates, same losses) and writes exactly the adapter of a run that was never killed,
//! which shows the optimizer state, the data order and position within the epoch, and the
//! learning-rate schedule were all restored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use finetune::job::{FinetuneJob, WorkerEvent};

use crate::protocol::{job, ok_events, parse_events, worker, write_job};

/// 6 training examples at micro-batch 1: 6 steps an epoch.
const STEPS_PER_EPOCH: u64 = 6;
const EPOCHS: usize = 50;
const SAVE_STEPS: u64 = 4;

fn save_steps_job(dir: &Path) -> FinetuneJob {
    let mut job = job(dir, EPOCHS);
    job.hyper.micro_batch_size = 1;
    job.hyper.save_steps = Some(SAVE_STEPS as usize);
    job
}

/// (lr, loss) of every step event, by step.
fn steps(events: &[WorkerEvent]) -> BTreeMap<u64, (f64, f64)> {
    let mut out = BTreeMap::new();
    for e in events {
        if let WorkerEvent::Step { step, lr, loss, .. } = e {
            assert!(
                out.insert(*step, (*lr, *loss)).is_none(),
                "step {step} taken twice"
            );
        }
    }
    out
}

/// The complete step checkpoints under `out_dir`, by step.
fn checkpoints_on_disk(out_dir: &Path) -> Vec<u64> {
    let mut steps: Vec<u64> = std::fs::read_dir(out_dir.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let step = e
                .file_name()
                .to_str()?
                .strip_prefix("step-")?
                .parse()
                .ok()?;
            e.path().join("state.json").is_file().then_some(step)
        })
        .collect();
    steps.sort_unstable();
    steps
}

#[test]
fn sigkill_mid_epoch_resumes_from_the_last_step_checkpoint() {
    let total = STEPS_PER_EPOCH * EPOCHS as u64;

    // The reference: the same job, never interrupted.
    let ref_dir = tempfile::tempdir().unwrap();
    let reference = worker()
        .arg("--job")
        .arg(write_job(ref_dir.path(), &save_steps_job(ref_dir.path())))
        .output()
        .unwrap();
    assert_eq!(reference.status.code(), Some(0));
    let ref_events = parse_events(&reference.stdout);
    let ref_steps = steps(&ref_events);
    assert_eq!(ref_steps.len() as u64, total);
    // A checkpoint every 4 steps and at each epoch's end: 4, 6, 8, 12, 16, 18, ...
    let written: Vec<u64> = ref_events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Checkpoint { step, .. } => Some(*step),
            _ => None,
        })
        .take(6)
        .collect();
    assert_eq!(written, [4, 6, 8, 12, 16, 18]);

    // Killed at once after the first step checkpoint in the middle of an epoch.
    let dir = tempfile::tempdir().unwrap();
    let job = save_steps_job(dir.path());
    let path = write_job(dir.path(), &job);
    let mut child = worker()
        .arg("--job")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut killed_events = Vec::new();
    let mut seen_checkpoint = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let event = WorkerEvent::parse_line(&line.unwrap()).unwrap();
        if seen_checkpoint.is_none()
            && let WorkerEvent::Checkpoint { step, .. } = event
            && !step.is_multiple_of(STEPS_PER_EPOCH)
        {
            child.kill().unwrap();
            seen_checkpoint = Some(step);
        }
        killed_events.push(event);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let seen = seen_checkpoint.expect("no mid-epoch checkpoint before the end");
    assert!(
        !killed_events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Trained { .. })),
        "the worker finished before the kill"
    );
    // The kill is asynchronous, so the worker may have gone a little further than the event
    // that triggered it: the newest whole checkpoint on disk is what a rerun must use.
    let resumed = *checkpoints_on_disk(&job.out_dir).last().unwrap();
    assert!(resumed >= seen, "{resumed} < {seen}");
    let killed_steps = steps(&killed_events);
    let last_done = *killed_steps.keys().last().unwrap();
    assert!(
        last_done - resumed <= SAVE_STEPS,
        "lost {} steps",
        last_done - resumed
    );

    let events = ok_events(&worker().arg("--job").arg(&path).output().unwrap());
    assert_eq!(
        events.first(),
        Some(&WorkerEvent::Started {
            total_steps: total,
            resumed_from_step: Some(resumed)
        })
    );
    let rerun_steps = steps(&events);
    assert_eq!(
        rerun_steps.keys().copied().collect::<Vec<_>>(),
        (resumed + 1..=total).collect::<Vec<_>>(),
        "steps up to the checkpoint are not redone, and the run ends at the same total"
    );
    for (step, got) in &rerun_steps {
        assert_eq!(Some(got), ref_steps.get(step), "step {step} (lr, loss)");
    }
    for (step, got) in killed_steps.range(..=resumed) {
        assert_eq!(
            Some(got),
            ref_steps.get(step),
            "step {step} before the kill"
        );
    }
    let adapter =
        |d: &Path| std::fs::read(d.join("out/adapter/adapter_model.safetensors")).unwrap();
    assert!(
        adapter(dir.path()) == adapter(ref_dir.path()),
        "the adapters differ"
    );
    assert_eq!(events.last(), Some(&WorkerEvent::Done));
}
