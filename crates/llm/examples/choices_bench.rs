//! Label scoring against generation: SmolLM2-135M-Instruct classifies 30 short reviews as
//! `positive` / `negative` (a system prompt and two demonstrations, then the review), once by
//! `LocalModel::score_choices` over the two labels and once by greedy `generate` with
//! `max_tokens: 4`, at batch sizes 1 and 16; prints seconds per item and accuracy of each.
//! Issue 9 asks that choices scoring cost less per item than generating 4 tokens.
//!
//! `cargo run --release -p llm --example choices_bench -- [MODEL.gguf]` (default: the models
//! cache).

use std::path::PathBuf;
use std::time::Instant;

use domain::{GenerationParams, Message};
use llm::LocalModel;

/// (review, label): 15 of each.
const REVIEWS: [(&str, &str); 30] = [
    (
        "The battery lasts all day and the screen is gorgeous.",
        "positive",
    ),
    (
        "It broke after two days and support never answered.",
        "negative",
    ),
    (
        "Best pizza I have had in years, friendly staff too.",
        "positive",
    ),
    ("The food was cold and the waiter was rude.", "negative"),
    ("A moving story with wonderful acting.", "positive"),
    ("Two hours of my life I will never get back.", "negative"),
    ("Fast shipping, works exactly as described.", "positive"),
    ("The zipper fell off the first time I used it.", "negative"),
    ("My kids love this game and so do I.", "positive"),
    ("Boring, predictable and far too long.", "negative"),
    ("Comfortable shoes, I walk in them every day.", "positive"),
    (
        "The hotel room smelled of smoke and the bed was broken.",
        "negative",
    ),
    ("Great value for the price, highly recommended.", "positive"),
    ("Arrived damaged and the refund took a month.", "negative"),
    (
        "The soundtrack is beautiful and the plot keeps you guessing.",
        "positive",
    ),
    ("Cheap plastic that cracked in the cold.", "negative"),
    (
        "Lovely little cafe with the best coffee in town.",
        "positive",
    ),
    ("The app crashes every time I open it.", "negative"),
    (
        "Clear instructions and it was easy to assemble.",
        "positive",
    ),
    ("Terrible sound quality, returned it at once.", "negative"),
    ("An absolute delight from start to finish.", "positive"),
    ("Overpriced and underwhelming.", "negative"),
    ("The staff went out of their way to help us.", "positive"),
    ("It stopped charging after a week.", "negative"),
    (
        "Crisp pages and a sturdy binding, a joy to read.",
        "positive",
    ),
    (
        "The sequel ruins everything the first film built.",
        "negative",
    ),
    ("Quiet, powerful and easy to clean.", "positive"),
    ("We waited an hour for a table and left hungry.", "negative"),
    ("I would buy it again without a second thought.", "positive"),
    ("Flimsy, noisy and it leaks.", "negative"),
];

fn prompts() -> Vec<Vec<Message>> {
    let system =
        "Classify the sentiment of the review. Answer with exactly one word: positive or negative.";
    REVIEWS
        .iter()
        .map(|(review, _)| {
            vec![
                Message::system(system),
                Message::user("Review: I love it, it works perfectly."),
                Message::assistant("positive"),
                Message::user("Review: A waste of money."),
                Message::assistant("negative"),
                Message::user(format!("Review: {review}")),
            ]
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The settings the worker and `orchestrator run` use (see llm::cpu_env).
    llm::cpu_env::apply()?;
    let model_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(models::smollm2_gguf);
    let mut model = LocalModel::load(&model_path, domain::Device::Cpu)?;
    let prompts = prompts();
    let labels: Vec<String> = ["positive", "negative"].map(String::from).to_vec();
    let targets: Vec<&str> = REVIEWS.iter().map(|(_, t)| *t).collect();
    let params = GenerationParams {
        max_tokens: 4,
        ..GenerationParams::default()
    };
    let label_tokens: Vec<usize> = labels
        .iter()
        .map(|l| model.encode_label(l).map(|v| v.len()))
        .collect::<Result<_, _>>()?;
    println!(
        "{} prompts, labels {labels:?} of {label_tokens:?} tokens",
        prompts.len()
    );
    // Warm-up (allocator, thread pool).
    model.generate(&prompts[..4], &params)?;
    model.score_choices(&prompts[..4], &labels)?;

    let choices = domain::Choices {
        labels: labels.clone(),
        normalize: false,
    };
    println!("batch  method           s/item  accuracy");
    for batch in [1, 16] {
        model.set_max_batch(batch);
        let t = Instant::now();
        let scored = model.score_choices(&prompts, &labels)?;
        let choices_s = t.elapsed().as_secs_f64() / prompts.len() as f64;
        let mut picked = Vec::new();
        for s in &scored {
            let s = s.as_ref().map_err(|e| e.to_string())?;
            picked.push(domain::choose_by_likelihood(&choices, &s.logliks).label);
        }
        let accuracy = |picked: &[Option<String>]| {
            let hits = picked
                .iter()
                .zip(&targets)
                .filter(|(p, t)| p.as_deref() == Some(**t))
                .count();
            hits as f64 / targets.len() as f64
        };
        println!(
            "{batch:>5}  score_choices    {choices_s:>6.4}  {:>8.2}",
            accuracy(&picked)
        );
        let t = Instant::now();
        let gens = model.generate(&prompts, &params)?;
        let gen_s = t.elapsed().as_secs_f64() / prompts.len() as f64;
        // Generated text mapped onto the labels as hosted free-text answers are.
        let mapped: Vec<Option<String>> = gens
            .iter()
            .map(|g| domain::map_free_text(&choices, &g.text).0)
            .collect();
        println!(
            "{batch:>5}  generate(4 tok)  {gen_s:>6.4}  {:>8.2}   choices/generate {:.2}, {:.1} tokens generated per answer",
            accuracy(&mapped),
            choices_s / gen_s,
            gens.iter()
                .map(|g| f64::from(g.completion_tokens))
                .sum::<f64>()
                / gens.len() as f64
        );
        println!(
            "  first answers: {:?}",
            gens.iter().take(3).map(|g| &g.text).collect::<Vec<_>>()
        );
    }
    Ok(())
}
