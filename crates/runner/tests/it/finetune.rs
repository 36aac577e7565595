//! Fine-tune arms through a real child process. The worker here is the runner's
//! `fake-finetune-worker` binary (`src/bin/`): it speaks the real `finetune::job` protocol without
//! training anything, so the runner's side — launching, reading events, storing the curve, the
//! training record and the answers, and surviving a crash — is tested in a second.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::{RunStatus, TrainingStatus};
use finetune::job::FinetuneJob;
use testserver::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::support::{Bench, hosted_spec};

/// A shell script that runs the `fake-finetune-worker` binary in `mode` (the runner passes
/// only `--job PATH`, and tests running at once need different modes).
pub(crate) fn worker_script(dir: &Path, mode: &str) -> PathBuf {
    let fake = env!("CARGO_BIN_EXE_fake-finetune-worker");
    let path = dir.join(format!("fake-worker-{mode}"));
    let script = format!("#!/bin/sh\nexec '{fake}' --mode {mode} \"$@\"\n");
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

pub(crate) fn spec(b: &Bench, url: &str) -> String {
    let model = b.path("base.gguf");
    // The GGUF magic passes `validate`; the fake worker never reads further.
    std::fs::write(&model, b"GGUF, but not really a model").unwrap();
    let hosted = hosted_spec(url, 4, "");
    let hosted = hosted.replace(
        "dataset: { path: data.jsonl, input: text, target: label }",
        "dataset: { path: data.jsonl, input: text, target: label, split: { eval: 6, train: 10 } }",
    );
    format!(
        "{hosted}finetunes:\n  - id: lora\n    base_model: {}\n    prompt: plain\n    compute: {{ device: cpu, cost_per_hour: 3.6 }}\n",
        model.display()
    )
}

/// A bench with a dataset of 16 rows, the test server its hosted arm calls, the spec (YAML),
/// and run options whose worker acts in `mode`.
async fn setup(mode: &str) -> (Bench, String, runner::RunOptions, testserver::TestServer) {
    let server = testserver::spawn(ServerConfig {
        latency: Duration::from_millis(1),
        default_answers: vec!["yes".into()],
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let b = Bench::new().await;
    b.dataset(16);
    let yaml = spec(&b, &server.base_url());
    let mut opts = b.options();
    opts.worker = Some(worker_script(b.dir.path(), mode));
    (b, yaml, opts, server)
}

async fn run_with_worker(mode: &str) -> (Bench, runner::RunSummary, testserver::TestServer) {
    let (b, yaml, opts, server) = setup(mode).await;
    let (summary, _) = b.run(&b.plan(&yaml), opts, CancellationToken::new()).await;
    (b, summary, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finetune_arm_stores_its_curve_training_record_and_answers() {
    let (b, summary, _server) = run_with_worker("ok").await;
    let results = b.store.results(summary.run_id).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(
        summary.failed_items, 0,
        "{summary:?} {:?}",
        results.training
    );
    let calls: Vec<_> = results.calls.iter().filter(|c| c.arm == "lora").collect();
    assert_eq!(calls.len(), 6);
    // 0.5 s at $3.60/h.
    assert!(
        calls
            .iter()
            .all(|c| (c.cost_usd - 0.0005).abs() < 1e-12 && c.compute_seconds == 0.5)
    );
    let training = results.training.iter().find(|t| t.arm == "lora").unwrap();
    assert_eq!(training.status, TrainingStatus::Completed);
    assert_eq!(training.train_seconds, 36.0);
    assert!(
        training
            .adapter_path
            .as_deref()
            .unwrap()
            .ends_with("adapter")
    );
    let splits: Vec<&str> = training.curve.iter().map(|p| p.split.as_str()).collect();
    assert_eq!(splits, ["train", "train", "val"]);
    let dir = std::path::Path::new(training.checkpoint_dir.as_deref().unwrap());
    assert!(
        dir.starts_with(b.path(".orchestrator/finetunes/runner-test/lora")),
        "{dir:?}"
    );
    let job: FinetuneJob =
        serde_json::from_slice(&std::fs::read(dir.join("job.json")).unwrap()).unwrap();
    assert_eq!(job.train.len(), 10);
    assert_eq!(job.eval.len(), 6);
    assert!(job.resume);
    // A base model given as a path is recorded in the adapter as the spec wrote it.
    assert_eq!(
        job.base_model_name,
        Some(b.path("base.gguf").display().to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_worker_fails_its_arm_and_keeps_the_rest() {
    let (b, summary, server) = run_with_worker("crash").await;
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(
        summary.failed_items, 4,
        "6 items, 2 answered before the crash: {summary:?}"
    );
    assert_eq!(server.requests(), 12, "the prompt arms ran to the end");
    let results = b.store.results(summary.run_id).await.unwrap();
    assert_eq!(results.calls.iter().filter(|c| c.arm == "lora").count(), 2);
    let training = results.training.iter().find(|t| t.arm == "lora").unwrap();
    assert_eq!(training.status, TrainingStatus::Failed);
    let error = training.error.as_deref().unwrap();
    assert!(error.contains("simulated crash"), "{error}");
    assert!(training.checkpoint_dir.is_some());
}

/// An item the fine-tuned model cannot answer fails alone, its reason stored; the arm and its
/// training are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_the_worker_cannot_answer_fails_alone() {
    let (b, summary, _server) = run_with_worker("unanswerable").await;
    assert_eq!(summary.failed_items, 1, "{summary:?}");
    let results = b.store.results(summary.run_id).await.unwrap();
    let lora: Vec<_> = results.calls.iter().filter(|c| c.arm == "lora").collect();
    assert_eq!(lora.len(), 6);
    let failed: Vec<_> = lora.iter().filter(|c| c.error.is_some()).collect();
    assert_eq!(failed.len(), 1);
    let error = failed[0].error.as_deref().unwrap();
    assert!(
        error.starts_with(&format!(
            "item {:?}: the prompt has 9000 tokens",
            failed[0].item_id
        )),
        "{error}"
    );
    let training = results.training.iter().find(|t| t.arm == "lora").unwrap();
    assert_eq!(training.status, TrainingStatus::Completed);
}

/// The stored reason of a worker that died in `mode` after two answers.
async fn crash_reason(mode: &str) -> String {
    let (b, summary, _server) = run_with_worker(mode).await;
    assert_eq!(summary.failed_items, 4, "{summary:?}");
    training(&b, summary.run_id).await.error.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_worker_is_remembered_by_its_panic_not_its_backtrace_footer() {
    let error = crash_reason("panic").await;
    let (status, panic) = error.split_once(" before finishing: ").unwrap();
    assert_eq!(status, "the worker exited (exit status: 101)");
    assert!(panic.starts_with("thread 'main'"), "{error}");
    assert!(
        panic.contains(" panicked at crates/runner/src/bin/fake-finetune-worker.rs:"),
        "{error}"
    );
    assert!(
        panic.ends_with(": simulated panic: lora_r 100000 does not fit"),
        "{error}"
    );
    assert!(!error.contains("RUST_BACKTRACE"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_aborted_by_a_failed_allocation_is_remembered_by_its_size() {
    let error = crash_reason("oom").await;
    assert!(
        error.starts_with("the worker exited (signal: 6 (SIGABRT)"),
        "{error}"
    );
    assert!(
        error.ends_with("before finishing: memory allocation of 230000000000 bytes failed"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_worker_is_stopped_and_the_rerun_finishes_the_arm() {
    let (b, yaml, mut opts, _server) = setup("slow").await;
    let plan = b.plan(&yaml);

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let store = b.store.clone();
    let watcher = async move {
        // Cancel once the worker has visibly answered something (bounded: 30 s).
        for _ in 0..3000 {
            let done = store.completed_items(1, "lora").await.unwrap_or_default();
            if !done.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        trigger.cancel();
    };
    let ((first, _), ()) = tokio::join!(b.run(&plan, opts.clone(), cancel), watcher);
    assert_eq!(first.status, RunStatus::Interrupted);
    let results = b.store.results(first.run_id).await.unwrap();
    let training = results.training.iter().find(|t| t.arm == "lora").unwrap();
    assert_eq!(training.status, TrainingStatus::Interrupted);
    let answered = results.calls.iter().filter(|c| c.arm == "lora").count();
    assert!((1..6).contains(&answered), "{answered}");

    opts.worker = Some(worker_script(b.dir.path(), "ok"));
    let (second, _) = b.run(&plan, opts, CancellationToken::new()).await;
    assert!(second.resumed);
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(second.failed_items, 0);
    let results = b.store.results(second.run_id).await.unwrap();
    assert_eq!(results.calls.iter().filter(|c| c.arm == "lora").count(), 6);
    let training = results.training.iter().find(|t| t.arm == "lora").unwrap();
    assert_eq!(training.status, TrainingStatus::Completed);
}

/// The training record of `arm` in `run`.
async fn training(b: &Bench, run: i64) -> domain::TrainingRecord {
    let results = b.store.results(run).await.unwrap();
    results
        .training
        .into_iter()
        .find(|t| t.arm == "lora")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_edited_elsewhere_reuses_the_trained_adapter_and_its_curve() {
    let (b, yaml, mut opts, _server) = setup("ok").await;
    let (first, _) = b
        .run(&b.plan(&yaml), opts.clone(), CancellationToken::new())
        .await;
    let trained = training(&b, first.run_id).await;

    // Another description: another spec, so a new run, but the same training.
    let edited = format!("{yaml}description: the same fine-tune\n");
    opts.worker = Some(worker_script(b.dir.path(), "reuse"));
    let (second, _) = b
        .run(&b.plan(&edited), opts.clone(), CancellationToken::new())
        .await;
    assert_ne!(second.run_id, first.run_id);
    assert_eq!(second.status, RunStatus::Completed);
    let reused = training(&b, second.run_id).await;
    assert_eq!(reused.checkpoint_dir, trained.checkpoint_dir);
    assert_eq!(reused.adapter_path, trained.adapter_path);
    // The worker trained nothing this time; the curve came with its `trained` event.
    assert_eq!(reused.curve, trained.curve);

    // Another rank: another training, in its own directory.
    let rank = yaml.replace("    prompt: plain\n", "    prompt: plain\n    lora_r: 4\n");
    assert_ne!(rank, yaml);
    let (third, _) = b.run(&b.plan(&rank), opts, CancellationToken::new()).await;
    let other = training(&b, third.run_id).await;
    assert_ne!(other.checkpoint_dir, trained.checkpoint_dir);
}
