//! Training speed on the real SmolLM2-135M-Instruct: seconds per optimizer step, tokens per
//! second and peak memory for LoRA r = 8 on q and v, at batch 4 × sequence 128 and 1 × 64 (the
//! shapes BENCHMARKS.md reports against PyTorch + PEFT: 2.14 s and 0.49 s on 2 threads).
//!
//! ```text
//! cargo run --release -p finetune --example train_bench -- [BATCH SEQ [STEPS]]
//! ```
//!
//! Without arguments it runs both shapes in turn (peak memory is then the larger of the two).
//! The model comes from `$ORCHESTRATOR_SMOLLM2_GGUF` or the models cache
//! (`$ORCHESTRATOR_HOME/models/smollm2-135m-instruct/…`). Each step is the trainer's own
//! (`data::Batch`, `train::answer_loss`, backward, accumulation, clipping, AdamW) on random
//! token sequences of exactly SEQ tokens whose last 4 are the answer; the first step is a
//! warm-up and is not counted. Besides wall time it prints CPU seconds per step: on a shared
//! machine wall time measures the neighbours too.
//!
//! It first restarts itself with the worker's CPU settings (`llm::cpu_env`); set any of
//! those variables to measure another value. Profile notes (perf, 2-core AMD EPYC, 4 × 128):
//! gemm's f32 microkernel takes ~55% of samples, the step splits ~45/55 between forward and
//! backward, the optimizer, batching and loss gathering are under 1% (BENCHMARKS.md has the
//! history).

use std::time::Instant;

use candle_core::{DType, Device, Var};
use finetune::data::{Batch, Sample};
use finetune::optim::{AdamW, AdamWConfig, GradAccumulator, clip_grad_norm};
use finetune::train::answer_loss;
use llm::proc_stats::{cpu_seconds, peak_memory_bytes};
use llm::{LocalModel, LoraConfig, LoraTarget};
use rand::{Rng, SeedableRng};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const ANSWER_TOKENS: usize = 4;

fn bench(model: &mut LocalModel, batch: usize, seq: usize, steps: usize) -> Result<()> {
    let cfg = LoraConfig::new(8, 16.0, 0.0, &[LoraTarget::Q, LoraTarget::V])?;
    model.model_mut().add_lora(&cfg, 7)?;
    model.model_mut().set_training(true, 7);
    let vocab = model.model().config().vocab_size as u32;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let samples: Vec<Sample> = (0..batch)
        .map(|_| Sample {
            ids: (0..seq).map(|_| rng.random_range(3..vocab)).collect(),
            prompt_len: seq - ANSWER_TOKENS,
        })
        .collect();
    let refs: Vec<&Sample> = samples.iter().collect();
    let params: Vec<Var> = model
        .model()
        .lora_vars()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut opt = AdamW::new(params.clone(), AdamWConfig::default())?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for step in 0..=steps {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let b = Batch::new(&refs, 2, &Device::Cpu)?;
        let loss = answer_loss(model.model(), &b)?;
        let t_fwd = t0.elapsed().as_secs_f64();
        let grad_store = loss.backward()?;
        let t_bwd = t0.elapsed().as_secs_f64() - t_fwd;
        let mut acc = GradAccumulator::new(params.len());
        acc.add(&params, &grad_store)?;
        drop(grad_store);
        let mut grads = acc.take(&params)?;
        clip_grad_norm(&mut grads, 1.0)?;
        opt.step(&grads, 1e-4)?;
        let dt = t0.elapsed().as_secs_f64();
        eprintln!(
            "  step {step}: {dt:.3} s (forward {t_fwd:.3}, backward {t_bwd:.3}, update {:.3}), loss {:.3}",
            dt - t_fwd - t_bwd,
            loss.to_scalar::<f32>()?
        );
        if step > 0 {
            wall.push(dt);
            cpu.push(cpu_seconds() - c0);
        }
    }
    model.model_mut().remove_lora()?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut sorted = wall.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    println!(
        "batch {batch} x seq {seq}: {:.3} s/step mean, {median:.3} s/step median, {:.0} tokens/s, {:.2} CPU-s/step, peak {:.2} GB (VmHWM)",
        mean(&wall),
        (batch * seq) as f64 / mean(&wall),
        mean(&cpu),
        peak_memory_bytes() as f64 / 1e9
    );
    Ok(())
}

fn main() -> Result<()> {
    // The settings the worker and `orchestrator run` use (see llm::cpu_env).
    llm::cpu_env::apply()?;
    eprintln!("cpu settings: {}", llm::cpu_env::describe());
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<std::result::Result<_, _>>()?;
    let path = models::smollm2_gguf();
    let t0 = Instant::now();
    let mut model = LocalModel::load_on(&path, &Device::Cpu, DType::F32)?;
    eprintln!(
        "loaded {} in {:.2} s",
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "threads: {}, model load peak {:.2} GB",
        rayon::current_num_threads(),
        peak_memory_bytes() as f64 / 1e9
    );
    match args.as_slice() {
        [] => {
            bench(&mut model, 1, 64, 5)?;
            bench(&mut model, 4, 128, 5)?;
        }
        [b, s] => bench(&mut model, *b, *s, 5)?,
        [b, s, n] => bench(&mut model, *b, *s, *n)?,
        _ => return Err("usage: train_bench [BATCH SEQ [STEPS]]".into()),
    }
    Ok(())
}
