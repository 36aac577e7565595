//! Local eval throughput: SmolLM2-135M-Instruct answers ~50 short intent-classification prompts
//! (SNIPS, from BIG-bench; a system prompt and one demonstration per label, then the
//! utterance) greedily at batch sizes 1, 8 and 16; prints items/s, prefill and
//! decode tokens/s (prefill counts the tokens computed: the shared prefix once, then each
//! prompt's own part), and accuracy so speed never comes at the cost of answers.
//!
//! `cargo run --release -p llm --example eval_bench -- [MODEL.gguf] [task.json] [N]`
//! `[BATCHES]` (defaults: the models cache, the repo's or the shared datasets folder, 50,
//! `1,8,16`).

use std::path::PathBuf;
use std::time::Instant;

use domain::{GenerationParams, Message};
use llm::LocalModel;
use llm::proc_stats::cpu_seconds;

fn default_dataset() -> PathBuf {
    for p in [
        "datasets/snips_intent_bigbench/task.json",
        "../../datasets/snips_intent_bigbench/task.json",
        "/work/shared/datasets/snips_intent_bigbench/task.json",
    ] {
        if std::path::Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("datasets/snips_intent_bigbench/task.json")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The settings the worker and `orchestrator run` use (see llm::cpu_env).
    llm::cpu_env::apply()?;
    eprintln!("cpu settings: {}", llm::cpu_env::describe());
    let args: Vec<String> = std::env::args().skip(1).collect();
    // An empty argument (`""`) keeps the default.
    let arg = |i: usize| args.get(i).filter(|s| !s.is_empty());
    let model_path = arg(0)
        .map(PathBuf::from)
        .unwrap_or_else(models::smollm2_gguf);
    let data_path = arg(1).map(PathBuf::from).unwrap_or_else(default_dataset);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let batches: Vec<usize> = args
        .get(3)
        .map(|s| s.split(',').filter_map(|b| b.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 16]);

    let task: serde_json::Value = serde_json::from_slice(&std::fs::read(&data_path)?)?;
    let examples = task["examples"].as_array().ok_or("no examples")?;
    let labels = [
        "add_to_playlist",
        "book_restaurant",
        "get_weather",
        "play_music",
        "search_screening_event",
        "search_creative_work",
        "rate_book",
    ];
    let system = format!(
        "Classify the intent of the user's utterance. Answer with exactly one of: {}.",
        labels.join(", ")
    );
    // One demonstration per label, from items after the evaluated ones, as user/assistant
    // turns: the same few-shot prefix for every prompt, as an experiment's prompt arm builds.
    let parse = |ex: &serde_json::Value| {
        let input = ex["input"].as_str().unwrap_or_default();
        let utterance = input
            .strip_prefix("Utterance: ")
            .unwrap_or(input)
            .to_string();
        let target = ex["target_scores"]
            .as_object()
            .and_then(|m| {
                m.iter()
                    .find(|(_, v)| v.as_i64() == Some(1))
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_default();
        (utterance, target)
    };
    let mut demos: Vec<Message> = Vec::new();
    for label in labels {
        if let Some((u, t)) = examples.iter().skip(n).map(parse).find(|(_, t)| t == label) {
            demos.push(Message::user(u));
            demos.push(Message::assistant(t));
        }
    }
    let mut prompts = Vec::new();
    let mut targets = Vec::new();
    for ex in examples.iter().take(n) {
        let (utterance, target) = parse(ex);
        let mut msgs = vec![Message::system(system.clone())];
        msgs.extend(demos.iter().cloned());
        msgs.push(Message::user(utterance));
        prompts.push(msgs);
        targets.push(target);
    }

    let t0 = Instant::now();
    let mut model = LocalModel::load(&model_path, domain::Device::Cpu)?;
    println!(
        "model {} loaded in {:.2}s",
        model_path.display(),
        t0.elapsed().as_secs_f64()
    );
    let params = GenerationParams {
        max_tokens: 16,
        ..GenerationParams::default()
    };
    let prompt_tokens: usize = prompts
        .iter()
        .map(|p| model.encode_prompt(p).map(|v| v.len()).unwrap_or(0))
        .sum();
    println!(
        "{} prompts, {:.1} prompt tokens each on average, max_tokens {}",
        prompts.len(),
        prompt_tokens as f64 / prompts.len() as f64,
        params.max_tokens
    );
    // Warm-up (allocator, thread pool).
    model.set_max_batch(4);
    model.generate(&prompts[..4.min(prompts.len())], &params)?;

    println!(
        "batch  items/s  prefill tok/s  decode tok/s  gen tokens  shared prefix  accuracy  wall s  cpu s"
    );
    for &batch in &batches {
        model.set_max_batch(batch);
        let t = Instant::now();
        let c0 = cpu_seconds();
        let (gens, stats) = model.generate_with_stats(&prompts, &params)?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        let correct = gens
            .iter()
            .zip(&targets)
            .filter(|(g, t)| g.text.trim().trim_end_matches('.').eq_ignore_ascii_case(t))
            .count();
        println!(
            "{batch:>5}  {:>7.2}  {:>13.0}  {:>12.0}  {:>10}  {:>13}  {:>8.2}  {wall:>6.2}  {cpu:>5.1}",
            gens.len() as f64 / wall,
            stats.prefill_tokens as f64 / stats.prefill_seconds,
            stats.decode_tokens as f64 / stats.decode_seconds,
            stats.decode_tokens,
            stats.shared_prefix_tokens,
            correct as f64 / gens.len() as f64,
        );
        if batch == *batches.last().unwrap_or(&0) {
            for (g, t) in gens.iter().zip(&targets).take(5) {
                println!("  {t:<24} <- {:?}", g.text);
            }
        }
    }
    Ok(())
}
