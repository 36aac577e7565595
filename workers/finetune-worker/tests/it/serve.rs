//! `finetune-worker --serve`: job paths on stdin, run in turn by one process. Each job's
//! events end with `done` (or `error`, after which the next job still runs), and a job served
//! after others trains and answers as it does alone in its own process: the base model it
//! shares with them has had their adapters taken out, back to its exact weights.

use std::io::Write;
use std::process::Stdio;

use finetune::job::WorkerEvent;

use crate::protocol::{job, ok_events, run_ok, worker, write_job};

/// The per-step losses and the answers of one job's events.
fn losses_and_answers(events: &[WorkerEvent]) -> (Vec<f64>, Vec<String>) {
    let losses = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Step { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect();
    let answers = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Answer { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    (losses, answers)
}

#[test]
fn one_process_serves_jobs_in_turn_each_as_if_alone() {
    let dir = tempfile::tempdir().unwrap();
    let alone_dir = dir.path().join("alone");
    let served_dir = dir.path().join("served");
    let bad_dir = dir.path().join("bad");
    for d in [&alone_dir, &served_dir, &bad_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut alone = job(dir.path(), 1);
    alone.out_dir = alone_dir.join("out");
    let expected = losses_and_answers(&run_ok(&alone_dir, &alone));

    let mut first = job(dir.path(), 2);
    first.out_dir = served_dir.join("first");
    let first_path = write_job(dir.path(), &first);
    let mut bad = job(dir.path(), 1);
    bad.base_model = dir.path().join("missing.gguf");
    let bad_path = write_job(&bad_dir, &bad);
    let mut again = alone.clone();
    again.out_dir = served_dir.join("again");
    let again_path = write_job(&served_dir, &again);

    let mut child = worker()
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for p in [&first_path, &bad_path, &again_path] {
        writeln!(stdin, "{}", p.display()).unwrap();
    }
    drop(stdin);
    let events = ok_events(&child.wait_with_output().unwrap());
    let ends: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, WorkerEvent::Done | WorkerEvent::Error { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ends.len(), 3, "one last event per job: {events:?}");
    assert!(matches!(events[ends[0]], WorkerEvent::Done));
    let WorkerEvent::Error { message } = &events[ends[1]] else {
        panic!("the bad job ends in an error: {:?}", events[ends[1]]);
    };
    assert!(message.contains("missing.gguf"), "{message}");
    assert!(matches!(events[ends[2]], WorkerEvent::Done));
    // Served third, after a longer job and a failed one: the same steps and answers as alone.
    let third = losses_and_answers(&events[ends[1] + 1..=ends[2]]);
    assert_eq!(third.1, expected.1);
    assert_eq!(third.0.len(), expected.0.len());
    for (a, b) in third.0.iter().zip(&expected.0) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} against {b}");
    }
    assert!(again.out_dir.join("adapter").exists());
}
