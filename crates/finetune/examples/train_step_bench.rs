//! Cost of one LoRA training step through the model (forward to the answer positions, tied
//! head, cross-entropy, backward), without the optimiser: SmolLM2-135M, LoRA r = 8 on q and v,
//! at batch 4 × 128 and 1 × 64 by default. Prints wall seconds and tokens/s per step.
//!
//! `cargo run --release -p finetune --example train_step_bench -- [MODEL.gguf] [BxT,...] [targets]`

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use llm::proc_stats::cpu_seconds;
use llm::{LocalModel, LoraConfig, LoraTarget};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The settings the worker and `orchestrator run` use (see llm::cpu_env).
    llm::cpu_env::apply()?;
    eprintln!("cpu settings: {}", llm::cpu_env::describe());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).filter(|s| !s.is_empty());
    let path = arg(0)
        .map(PathBuf::from)
        .unwrap_or_else(models::smollm2_gguf);
    let shapes: Vec<(usize, usize)> = arg(1)
        .map(|s| {
            s.split(',')
                .filter_map(|bt| bt.split_once('x'))
                .filter_map(|(b, t)| Some((b.parse().ok()?, t.parse().ok()?)))
                .collect()
        })
        .unwrap_or_else(|| vec![(4, 128), (1, 64)]);
    let targets: Vec<LoraTarget> = match arg(2) {
        Some(s) => s
            .split(',')
            .map(|t| LoraTarget::parse(t).ok_or_else(|| format!("unknown LoRA target {t}")))
            .collect::<Result<_, _>>()?,
        None => vec![LoraTarget::Q, LoraTarget::V],
    };
    let mut m = LocalModel::load(&path, domain::Device::Cpu)?;
    let cfg = LoraConfig::new(8, 16.0, 0.05, &targets)?;
    m.model_mut().add_lora(&cfg, 1)?;
    m.model_mut().set_training(true, 1);
    let vars = m.model().lora_vars();
    let model = m.model();
    let vocab = model.config().vocab_size as u32;
    for (b, t) in shapes {
        // Pseudo-random ids; the loss on the last quarter of each row (the "answer").
        let ids: Vec<u32> = (0..b * t)
            .map(|i| (i as u32 * 2654435761) % vocab)
            .collect();
        let input = Tensor::from_vec(ids.clone(), (b, t), &Device::Cpu)?;
        let answer = t / 4;
        let mut rows = Vec::new();
        let mut targets_v = Vec::new();
        for r in 0..b {
            for j in (t - answer - 1)..(t - 1) {
                rows.push((r * t + j) as u32);
                targets_v.push(ids[r * t + j + 1]);
            }
        }
        let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
        let targets_t = Tensor::new(targets_v.as_slice(), &Device::Cpu)?;
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        for step in 0..4 {
            let t0 = Instant::now();
            let c0 = cpu_seconds();
            let h = model.forward_hidden(&input)?;
            let h = h
                .reshape((b * t, model.config().hidden_size))?
                .index_select(&rows, 0)?;
            let logits = model.lm_head(&h)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &targets_t)?;
            let t_fwd = t0.elapsed().as_secs_f64();
            let grads = loss.backward()?;
            let n_grads = vars
                .iter()
                .filter(|(_, v)| grads.get(v.as_tensor()).is_some())
                .count();
            let dt = t0.elapsed().as_secs_f64();
            let dc = cpu_seconds() - c0;
            println!(
                "{b}x{t} step {step}: {dt:.3}s wall, {dc:.2}s cpu (forward {t_fwd:.3}s), loss {:.3}, {n_grads}/{} grads",
                loss.to_scalar::<f32>()?,
                vars.len()
            );
            if step > 0 {
                times.push(dt);
                cpu.push(dc);
            }
        }
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let cpu_mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
        println!(
            "{b}x{t}: {mean:.3} s/step mean, {min:.3} best, {cpu_mean:.2} cpu-s/step, {:.0} tokens/s",
            (b * t) as f64 / mean
        );
    }
    Ok(())
}
