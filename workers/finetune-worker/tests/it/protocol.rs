//! The worker's protocol on a tiny GGUF written by the test (`llm::testing`): the events
//! on stdout, the files it leaves, its exit codes, and resuming after SIGINT.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use domain::{GenerationParams, LoraHyper, Message};
use finetune::job::{EvalPrompt, Example, FinetuneJob, WorkerEvent};

pub(crate) fn worker() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_finetune-worker"));
    cmd.env("ORCHESTRATOR_LOG", "warn");
    cmd
}

pub(crate) fn job(dir: &Path, epochs: usize) -> FinetuneJob {
    let gguf = dir.join("tiny.gguf");
    if !gguf.exists() {
        llm::testing::write_tiny_gguf(&gguf, 1).unwrap();
    }
    let texts = [
        "good", "bad", "great", "awful", "fine", "poor", "nice", "sad",
    ];
    FinetuneJob {
        arm: "tiny-lora".into(),
        base_model: gguf,
        base_model_name: None,
        hyper: LoraHyper {
            num_epochs: epochs,
            micro_batch_size: 2,
            val_set_size: 0.25,
            learning_rate: 1e-2,
            warmup_steps: 1,
            ..LoraHyper::default()
        },
        compute: domain::ComputeSpec::default(),
        train: texts
            .iter()
            .enumerate()
            .map(|(i, t)| Example {
                messages: vec![Message::user(*t)],
                answer: if i % 2 == 0 {
                    "pos".into()
                } else {
                    "neg".into()
                },
            })
            .collect(),
        eval: (0..5)
            .map(|i| EvalPrompt {
                item_id: format!("item-{i}"),
                messages: vec![Message::user(format!("review {i}"))],
            })
            .collect(),
        generation: GenerationParams {
            max_tokens: 4,
            ..GenerationParams::default()
        },
        out_dir: dir.join("out"),
        resume: true,
    }
}

pub(crate) fn write_job(dir: &Path, job: &FinetuneJob) -> PathBuf {
    let path = dir.join("job.json");
    std::fs::write(&path, serde_json::to_vec(job).unwrap()).unwrap();
    path
}

pub(crate) fn parse_events(stdout: &[u8]) -> Vec<WorkerEvent> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| WorkerEvent::parse_line(l).unwrap_or_else(|e| panic!("not an event: {l:?}: {e}")))
        .collect()
}

/// Runs the worker on `job`, expects exit 0, and returns its events.
pub(crate) fn run_ok(dir: &Path, job: &FinetuneJob) -> Vec<WorkerEvent> {
    let out = worker()
        .arg("--job")
        .arg(write_job(dir, job))
        .output()
        .unwrap();
    ok_events(&out)
}

/// The events of a worker that exited 0 (its stderr shown when it did not).
pub(crate) fn ok_events(out: &std::process::Output) -> Vec<WorkerEvent> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_events(&out.stdout)
}

#[test]
fn a_job_trains_writes_the_adapter_and_answers_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job(dir.path(), 2);
    job.base_model_name = Some("HuggingFaceTB/SmolLM2-135M-Instruct".into());
    let events = run_ok(dir.path(), &job);
    // 6 train examples, micro-batch 2: 3 steps an epoch.
    assert_eq!(
        events.first(),
        Some(&WorkerEvent::Started {
            total_steps: 6,
            resumed_from_step: None
        })
    );
    let steps = events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::Step { .. }))
        .count();
    let vals = events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::Validation { .. }))
        .count();
    let checkpoints = events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::Checkpoint { .. }))
        .count();
    assert_eq!((steps, vals, checkpoints), (6, 2, 2));
    let Some(WorkerEvent::Trained {
        adapter_path,
        best_val_loss,
        peak_memory_bytes,
        ..
    }) = events
        .iter()
        .find(|e| matches!(e, WorkerEvent::Trained { .. }))
    else {
        panic!("no trained event: {events:?}")
    };
    assert_eq!(adapter_path, &dir.path().join("out/adapter"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(adapter_path.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["base_model_name_or_path"], "HuggingFaceTB/SmolLM2-135M-Instruct",
        "the adapter names the base model as the job does, not by a path of this machine"
    );
    assert!(adapter_path.join("adapter_model.safetensors").is_file());
    assert!(best_val_loss.is_some() && *peak_memory_bytes > 0);
    let answered: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Answer {
                item_id,
                completion_tokens,
                ..
            } => {
                assert!(*completion_tokens >= 1);
                Some(item_id.as_str())
            }
            _ => None,
        })
        .collect();
    let mut sorted = answered.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["item-0", "item-1", "item-2", "item-3", "item-4"]);
    assert_eq!(events.last(), Some(&WorkerEvent::Done));
    let copies = std::fs::read_to_string(dir.path().join("out/answers.jsonl")).unwrap();
    assert_eq!(copies.lines().count(), 5);

    // Rerun: training is skipped, the answers come again.
    let again = worker()
        .arg("--job")
        .arg(dir.path().join("job.json"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    let events = parse_events(&again.stdout);
    assert_eq!(
        events.first(),
        Some(&WorkerEvent::Started {
            total_steps: 6,
            resumed_from_step: Some(6)
        })
    );
    assert!(!events.iter().any(|e| matches!(e, WorkerEvent::Step { .. })));
    assert_eq!(events.last(), Some(&WorkerEvent::Done));
}

/// An eval prompt too long for the model's context fails alone (an `unanswered` event naming
/// it and the context); the other items are answered and the job succeeds.
#[test]
fn an_eval_item_that_does_not_fit_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job(dir.path(), 1);
    job.eval[2].messages = vec![Message::user("word ".repeat(4000))];
    let events = run_ok(dir.path(), &job);
    let answered: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Answer { item_id, .. } => Some(item_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(answered, ["item-0", "item-1", "item-3", "item-4"]);
    let failed: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Unanswered { item_id, error } => Some((item_id.as_str(), error.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].0, "item-2");
    assert!(failed[0].1.contains("context of"), "{}", failed[0].1);
    assert_eq!(events.last(), Some(&WorkerEvent::Done));
}

/// With `choices`, the fine-tuned model answers every item with one of the labels, chosen by
/// likelihood, and says how confident it is.
#[test]
fn with_choices_every_answer_is_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job(dir.path(), 1);
    job.generation.choices = Some(domain::Choices {
        labels: vec!["pos".into(), "neg".into()],
        normalize: false,
    });
    let events = run_ok(dir.path(), &job);
    let answers: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Answer { text, choice, .. } => Some((text, choice.as_ref().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 5);
    for (text, choice) in answers {
        assert_eq!(choice.label.as_ref(), Some(text));
        assert!(text == "pos" || text == "neg", "{text}");
        assert_eq!(choice.via, domain::ChoiceVia::Likelihood);
        assert!(choice.confidence.unwrap() >= 0.5);
    }
}

#[test]
fn a_bad_job_exits_1_with_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.json");
    std::fs::write(&path, b"{\"arm\": 3}").unwrap();
    let out = worker().arg("--job").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let events = parse_events(&out.stdout);
    assert!(
        matches!(events.as_slice(), [WorkerEvent::Error { message }] if message.contains("parsing job")),
        "{events:?}"
    );

    // A scheduler the trainer does not know: the job file itself is refused.
    let mut bad = serde_json::to_value(job(dir.path(), 1)).unwrap();
    bad["hyper"]["lr_scheduler"] = "constant".into();
    std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = worker().arg("--job").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let events = parse_events(&out.stdout);
    assert!(
        matches!(events.as_slice(), [WorkerEvent::Error { message }] if message.contains("lr_scheduler")),
        "{events:?}"
    );

    let out = worker()
        .arg("--job")
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sigint_checkpoints_exits_130_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), 400);
    let path = write_job(dir.path(), &job);
    let mut child = worker()
        .arg("--job")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let event = WorkerEvent::parse_line(&line.unwrap()).unwrap();
        let first_step = matches!(event, WorkerEvent::Step { step: 5, .. });
        seen.push(event);
        if first_step {
            let status = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            break;
        }
    }
    seen.extend(lines.map(|l| WorkerEvent::parse_line(&l.unwrap()).unwrap()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let Some(WorkerEvent::Checkpoint { step, .. }) = seen.last() else {
        panic!("the last event is not a checkpoint: {:?}", seen.last())
    };
    let step = *step;
    assert!((5..1200).contains(&step), "{step}");

    // The same job again resumes where it stopped.
    let mut child = worker()
        .arg("--job")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        WorkerEvent::parse_line(&first).unwrap(),
        WorkerEvent::Started {
            total_steps: 1200,
            resumed_from_step: Some(step)
        }
    );
}

/// What the worker logs about its CPU settings when started with `env` (and nothing else of
/// them set).
fn cpu_settings_line(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = worker();
    for (name, _) in llm::cpu_env::CPU_ENV {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied())
        .env("ORCHESTRATOR_LOG", "debug")
        .arg("--job")
        .arg(dir.path().join("missing.json"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    stderr
        .lines()
        .find(|l| l.contains("cpu settings:"))
        .unwrap_or_else(|| panic!("no cpu settings line in {stderr}"))
        .to_owned()
}

#[test]
fn the_worker_restarts_itself_with_the_cpu_settings_and_keeps_the_users() {
    let line = cpu_settings_line(&[]);
    for (name, value) in llm::cpu_env::CPU_ENV {
        assert!(line.contains(&format!("{name}={value}")), "{line}");
    }
    let line = cpu_settings_line(&[("CANDLE_NUM_THREADS", "3")]);
    assert!(line.contains("CANDLE_NUM_THREADS=3"), "{line}");
    assert!(line.contains("MALLOC_TOP_PAD_=67108864"), "{line}");
}
