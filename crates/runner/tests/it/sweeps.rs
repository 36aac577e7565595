//! `train_sizes` and `label_noise` through the runner and a real worker process (the fake
//! one): each point trains on its own rows (a nested subset, or the labels its level flips),
//! answers every eval item, and stores its sweep point; `--arms` with the declared id runs
//! the whole family.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::RunStatus;
use finetune::job::FinetuneJob;
use testserver::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::finetune::{spec, worker_script};
use crate::support::Bench;

/// Each fine-tune arm's folder (`ARM/KEY`), by arm.
fn arm_dirs(b: &Bench) -> BTreeMap<String, std::path::PathBuf> {
    let root = b.path(".orchestrator/finetunes/runner-test");
    std::fs::read_dir(&root)
        .unwrap()
        .map(|arm| arm.unwrap().path())
        // Beside the arms' folders: the serving worker's log.
        .filter(|arm| arm.is_dir())
        .map(|arm| {
            let key = std::fs::read_dir(&arm).unwrap().next().unwrap().unwrap();
            let name = arm.file_name().unwrap().to_string_lossy().into_owned();
            (name, key.path())
        })
        .collect()
}

/// Each fine-tune arm's job as its worker read it.
fn jobs(b: &Bench) -> BTreeMap<String, FinetuneJob> {
    arm_dirs(b)
        .into_iter()
        .map(|(name, dir)| {
            let job = std::fs::read(dir.join("job.json")).unwrap();
            (name, serde_json::from_slice(&job).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_point_trains_on_its_own_rows_and_answers_every_item() {
    let server = testserver::spawn(ServerConfig {
        latency: Duration::from_millis(1),
        default_answers: vec!["yes".into()],
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let b = Bench::new().await;
    let rows: String = (0..16)
        .map(|i| {
            let label = if i % 2 == 0 { "yes" } else { "no" };
            format!("{{\"id\":\"item-{i}\",\"text\":\"<q{i}> ?\",\"label\":\"{label}\"}}\n")
        })
        .collect();
    std::fs::write(b.path("data.jsonl"), rows).unwrap();
    let yaml = spec(&b, &server.base_url()) + "    train_sizes: [4]\n    label_noise: [0.3]\n";
    let mut opts = b.options();
    opts.worker = Some(worker_script(b.dir.path(), "ok"));
    opts.arms = Some(vec!["lora".into()]);
    let (summary, _) = b.run(&b.plan(&yaml), opts, CancellationToken::new()).await;
    assert_eq!(summary.status, RunStatus::Completed);

    let results = b.store.results(summary.run_id).await.unwrap();
    let arms: Vec<(String, usize, f64)> = results
        .arms
        .iter()
        .map(|a| {
            let s = a.sweep.as_ref().unwrap();
            (a.arm.clone(), s.examples, s.label_noise)
        })
        .collect();
    let expected = [
        ("lora".to_owned(), 10, 0.0),
        ("lora~n4".to_owned(), 4, 0.0),
        ("lora~noise0.3".to_owned(), 10, 0.3),
    ];
    assert_eq!(
        arms, expected,
        "`--arms lora` runs the family, and nothing else"
    );
    for (arm, _, _) in &expected {
        let answered = results.calls.iter().filter(|c| &c.arm == arm).count();
        assert_eq!(answered, 6, "{arm}");
    }

    // One serving worker trained every point: they share the device.
    let pids: Vec<String> = arm_dirs(&b)
        .values()
        .map(|dir| std::fs::read_to_string(dir.join("worker.pid")).unwrap())
        .collect();
    assert_eq!(pids.len(), expected.len());
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");

    let jobs = jobs(&b);
    let answers = |arm: &str| -> BTreeMap<String, String> {
        let job = &jobs[arm];
        job.train
            .iter()
            .map(|e| (e.messages.last().unwrap().content.clone(), e.answer.clone()))
            .collect()
    };
    let (full, small, noisy) = (
        answers("lora"),
        answers("lora~n4"),
        answers("lora~noise0.3"),
    );
    assert_eq!((full.len(), small.len(), noisy.len()), (10, 4, 10));
    assert!(
        small.iter().all(|(k, v)| full.get(k) == Some(v)),
        "a clean subset"
    );
    let flipped = full
        .iter()
        .filter(|(k, v)| noisy.get(*k) != Some(*v))
        .count();
    assert_eq!(flipped, 3, "30% of 10 train labels flipped");
    assert_eq!(
        jobs["lora"].eval, jobs["lora~n4"].eval,
        "the same eval prompts"
    );
}
