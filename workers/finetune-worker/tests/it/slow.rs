//! The fine-tune arm's reason to exist, measured on the real thing: a short LoRA fine-tune of
//! SmolLM2-135M-Instruct on movie-review sentiment (datasets/vader-movie) must label held-out
//! reviews better than the same model prompted zero-shot with the same prompt.
//!
//! Runs only with `ORCHESTRATOR_SLOW_TESTS=1` (a few minutes on 2 cores) and needs the model in
//! the cache (`orchestrator models pull smollm2-135m-instruct`; `.ci/run` fetches it).

use std::path::{Path, PathBuf};

use domain::{GenerationParams, LoraHyper, Message};
use finetune::job::{EvalPrompt, Example, FinetuneJob, WorkerEvent};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::protocol::worker;

const TRAIN: usize = 240;
const EVAL: usize = 100;

struct Review {
    id: String,
    text: String,
    label: String,
}

fn reviews() -> Vec<Review> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/vader-movie/movie_snippets.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<Review> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Review {
                id: v["id"].as_str().unwrap().to_string(),
                text: v["text"].as_str().unwrap().to_string(),
                label: v["label"].as_str().unwrap().to_string(),
            }
        })
        .collect();
    // The file is sorted by id, positives first: shuffle before splitting.
    rows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    rows.truncate(TRAIN + EVAL);
    rows
}

/// The quickstart's zero-shot prompt.
fn prompt(text: &str) -> Vec<Message> {
    vec![
        Message::system("You label the sentiment of movie reviews."),
        Message::user(format!(
            "Review: {text}\nIs this review positive or negative? Answer with one word: positive or negative."
        )),
    ]
}

/// The `equals` scorer: first word, trimmed and lowercased.
fn correct(answer: &str, label: &str) -> bool {
    answer
        .split_whitespace()
        .next()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .as_deref()
        == Some(label)
}

#[test]
fn a_short_finetune_beats_zero_shot_on_held_out_reviews() {
    if std::env::var("ORCHESTRATOR_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set ORCHESTRATOR_SLOW_TESTS=1 to run the SmolLM2 fine-tune test");
        return;
    }
    let model: PathBuf = models::resolve("smollm2-135m-instruct")
        .unwrap_or_else(|e| panic!("{e}"))
        .path;
    let rows = reviews();
    let (train, eval) = rows.split_at(TRAIN);
    let generation = GenerationParams {
        max_tokens: 4,
        ..GenerationParams::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let job = FinetuneJob {
        arm: "smollm2-lora".into(),
        base_model: model.clone(),
        base_model_name: Some(models::base_model_name("smollm2-135m-instruct")),
        hyper: LoraHyper {
            lora_r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            learning_rate: 1e-3,
            num_epochs: 1,
            micro_batch_size: 8,
            sequence_len: 128,
            val_set_size: 0.1,
            warmup_steps: 4,
            ..LoraHyper::default()
        },
        compute: domain::ComputeSpec::default(),
        train: train
            .iter()
            .map(|r| Example {
                messages: prompt(&r.text),
                answer: r.label.clone(),
            })
            .collect(),
        eval: eval
            .iter()
            .map(|r| EvalPrompt {
                item_id: r.id.clone(),
                messages: prompt(&r.text),
            })
            .collect(),
        generation: generation.clone(),
        out_dir: dir.path().join("out"),
        resume: true,
    };
    let job_path = dir.path().join("job.json");
    std::fs::write(&job_path, serde_json::to_vec(&job).unwrap()).unwrap();
    let out = worker().arg("--job").arg(&job_path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<WorkerEvent> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| WorkerEvent::parse_line(l).unwrap())
        .collect();
    let label_of = |id: &str| {
        eval.iter()
            .find(|r| r.id == id)
            .map(|r| r.label.as_str())
            .unwrap()
    };
    let tuned_correct = events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::Answer { item_id, text, .. } if correct(text, label_of(item_id))))
        .count();

    let base = llm::LocalModel::load(&model, domain::Device::Cpu).unwrap();
    let prompts: Vec<Vec<Message>> = eval.iter().map(|r| prompt(&r.text)).collect();
    let answers = base.generate(&prompts, &generation).unwrap();
    let zero_shot_correct = answers
        .iter()
        .zip(eval)
        .filter(|(a, r)| correct(&a.text, &r.label))
        .count();

    if let Some(WorkerEvent::Trained {
        train_seconds,
        tokens_per_second,
        peak_memory_bytes,
        best_val_loss,
        ..
    }) = events
        .iter()
        .find(|e| matches!(e, WorkerEvent::Trained { .. }))
    {
        eprintln!(
            "fine-tune: {train_seconds:.0} s, {tokens_per_second:.0} tokens/s, peak {:.2} GB, best val loss {best_val_loss:?}",
            *peak_memory_bytes as f64 / 1e9
        );
    }
    eprintln!(
        "held-out accuracy: fine-tuned {tuned_correct}/{EVAL}, zero-shot {zero_shot_correct}/{EVAL}"
    );
    assert!(
        tuned_correct > zero_shot_correct,
        "fine-tuned {tuned_correct}/{EVAL} does not beat zero-shot {zero_shot_correct}/{EVAL}"
    );
}
