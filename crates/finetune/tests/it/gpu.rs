//! The tiny llama on a CUDA GPU, for builds with the `cuda` feature on a machine with a GPU:
//!
//! ```text
//! ORCHESTRATOR_GPU_TESTS=1 cargo test -p finetune --features cuda --test it gpu
//! ```
//!
//! Loaded with `device: cuda:0` it runs in bf16 and must give the CPU's f32 logits within
//! bf16's precision; its LoRA variables get finite gradients; a few AdamW steps lower the loss;
//! and generation with the KV cache works there. Without the feature or the variable the test
//! says it skipped.

use candle_core::{DType, Device, Tensor};
use domain::GenerationParams;
use finetune::optim::{AdamW, AdamWConfig, GradAccumulator};
use llm::{LocalModel, LoraConfig, LoraTarget};

use llm::testing::max_diff;

const SEQ: [u32; 12] = [1, 10, 200, 33, 264, 7, 99, 2, 150, 41, 42, 43];

fn enabled() -> bool {
    cfg!(feature = "cuda") && std::env::var_os("ORCHESTRATOR_GPU_TESTS").is_some()
}

/// Cross entropy of the next token at the last 4 positions, on the model's device.
fn loss(m: &llm::Llama, seq: &[u32]) -> Tensor {
    let dev = m.device();
    let t = seq.len();
    let ids = Tensor::new(seq, dev).unwrap().unsqueeze(0).unwrap();
    let h = m.forward_hidden(&ids).unwrap().squeeze(0).unwrap();
    let logits = m
        .lm_head(&h.narrow(0, t - 5, 4).unwrap())
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let targets = Tensor::new(&seq[t - 4..], dev).unwrap();
    candle_nn::loss::cross_entropy(&logits, &targets).unwrap()
}

#[test]
fn tiny_llama_on_cuda_matches_the_cpu_trains_and_generates() {
    if !enabled() {
        eprintln!(
            "skipped: build with --features cuda and set ORCHESTRATOR_GPU_TESTS=1 on a GPU machine"
        );
        return;
    }
    same_as_cpu_trains_and_generates(domain::Device::Cuda(0));
}

/// The same checks on the CPU, so they hold where they can always run.
#[test]
fn the_device_checks_hold_on_the_cpu() {
    same_as_cpu_trains_and_generates(domain::Device::Cpu);
}

fn same_as_cpu_trains_and_generates(device: domain::Device) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    llm::testing::write_tiny_gguf(&gguf, 11).unwrap();
    let cpu = LocalModel::load(&gguf, domain::Device::Cpu).unwrap();
    let mut gpu = LocalModel::load(&gguf, device).unwrap();
    if device != domain::Device::Cpu {
        assert!(gpu.model().device().is_cuda());
        assert_eq!(gpu.model().dtype(), DType::BF16);
    }

    let ids = Tensor::new(&SEQ[..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let on_cpu = cpu.model().forward(&ids).unwrap();
    let on_gpu = gpu
        .model()
        .forward(&ids.to_device(gpu.model().device()).unwrap())
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap();
    let scale = on_cpu
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let diff = max_diff(&on_cpu, &on_gpu);
    assert!(
        diff <= 0.05 * f64::from(scale),
        "logits differ by {diff} (scale {scale})"
    );

    let cfg = LoraConfig::new(4, 8.0, 0.0, &[LoraTarget::Q, LoraTarget::V]).unwrap();
    gpu.model_mut().add_lora(&cfg, 3).unwrap();
    gpu.model_mut().set_training(true, 3);
    let params: Vec<_> = gpu
        .model()
        .lora_vars()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
    let first = loss(gpu.model(), &SEQ).to_scalar::<f32>().unwrap();
    let mut last = first;
    for _ in 0..30 {
        let l = loss(gpu.model(), &SEQ);
        last = l.to_scalar::<f32>().unwrap();
        let store = l.backward().unwrap();
        let mut acc = GradAccumulator::new(params.len());
        acc.add(&params, &store).unwrap();
        let grads = acc.take(&params).unwrap();
        for g in &grads {
            let norm = g
                .to_dtype(DType::F32)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm.is_finite());
        }
        opt.step(&grads, 1e-2).unwrap();
    }
    assert!(last < 0.8 * first, "loss {first} -> {last}");

    gpu.model_mut().set_training(false, 0);
    let params = GenerationParams {
        max_tokens: 6,
        ..GenerationParams::default()
    };
    let gens = gpu.generate_ids(&[SEQ[..6].to_vec()], &params).unwrap();
    assert_eq!(gens.len(), 1);
    assert_eq!(gens[0].prompt_tokens, 6);
    assert!(gens[0].completion_tokens <= 6);
}
