//! Tests of the trainer on the tiny llama of [`llm::testing`]: the loss falls on a
//! memorisation task, every LoRA variable learns, gradients match finite differences, a
//! cancelled and resumed run ends exactly where an uninterrupted one does, early stopping keeps
//! the best adapter, and the chat-level entry point writes what the worker needs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use domain::{LoraHyper, Message};

use super::*;
use crate::data::Sample;
use crate::job::{Example, FinetuneJob};
use llm::lora::LoraTarget;
use llm::testing;

/// A memorisation task: random 6-token prompts, each answered by one of two tokens then
/// `<|im_end|>` (2).
fn memorise(n: usize, seed: u64) -> Vec<Sample> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut ids: Vec<u32> = vec![1];
            ids.extend((0..6).map(|_| rng.random_range(3..250u32)));
            let answer = if rng.random_bool(0.5) { 100 } else { 120 };
            let prompt_len = ids.len();
            ids.extend([answer, 2]);
            Sample { ids, prompt_len }
        })
        .collect()
}

fn hyper() -> LoraHyper {
    LoraHyper {
        lora_r: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.0,
        lora_target_modules: LoraTarget::ALL.to_vec(),
        learning_rate: 1e-2,
        num_epochs: 20,
        micro_batch_size: 4,
        gradient_accumulation_steps: 1,
        sequence_len: 64,
        val_set_size: 0.0,
        early_stopping_patience: None,
        eval_steps: None,
        save_steps: None,
        warmup_steps: 2,
        lr_scheduler: domain::LrScheduler::Cosine,
        weight_decay: 0.0,
        max_grad_norm: 1.0,
        seed: 7,
        merge_weights: false,
    }
}

fn run(
    samples: &[Sample],
    hyper: &LoraHyper,
    out: &Path,
    resume: bool,
    model: &mut Llama,
    cancel_after: Option<u64>,
) -> (TrainOutcome, Vec<WorkerEvent>) {
    let cancel = AtomicBool::new(false);
    let mut events = Vec::new();
    let job = SampleJob {
        samples,
        hyper,
        out_dir: out,
        resume,
        base_model: "tiny.gguf",
        base_model_name: "tiny.gguf",
        pad_id: 2,
    };
    let outcome = train_samples(
        &job,
        model,
        &mut |e| {
            if let (Some(n), WorkerEvent::Step { step, .. }) = (cancel_after, &e)
                && *step == n
            {
                cancel.store(true, Ordering::SeqCst);
            }
            events.push(e);
        },
        &cancel,
    )
    .unwrap();
    (outcome, events)
}

fn finished(outcome: TrainOutcome) -> TrainReport {
    match outcome {
        TrainOutcome::Finished(r) => r,
        other => panic!("not finished: {other:?}"),
    }
}

fn lora_values(model: &Llama) -> Vec<(String, Vec<f32>)> {
    model
        .lora_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn train_losses(events: &[WorkerEvent]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Step { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect()
}

#[test]
fn loss_falls_on_a_memorisation_task() {
    let dir = tempfile::tempdir().unwrap();
    let samples = memorise(16, 1);
    let mut model = testing::tiny_llama(1).unwrap();
    let (outcome, events) = run(&samples, &hyper(), dir.path(), false, &mut model, None);
    let report = finished(outcome);
    let losses = train_losses(&events);
    assert_eq!(losses.len() as u64, report.total_steps);
    assert_eq!(report.total_steps, 20 * 4);
    let first = losses[..4].iter().sum::<f64>() / 4.0;
    let last = losses[losses.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(last < 0.1 * first, "loss {first} → {last}");
    // The adapter on disk is the trained one, and the model holds it.
    let loaded = adapter::load_adapter(&report.adapter_path, &Device::Cpu).unwrap();
    let mut fresh = testing::tiny_llama(1).unwrap();
    loaded.apply_to(&mut fresh).unwrap();
    assert_eq!(lora_values(&fresh), lora_values(&model));
    assert!(matches!(
        events.first(),
        Some(WorkerEvent::Started {
            total_steps: 80,
            resumed_from_step: None
        })
    ));
    assert!(report.peak_memory_bytes > 0);
}

#[test]
fn every_lora_variable_learns() {
    let samples = memorise(4, 2);
    let mut model = testing::tiny_llama(2).unwrap();
    let cfg = LoraConfig::new(4, 8.0, 0.0, &LoraTarget::ALL).unwrap();
    model.add_lora(&cfg, 3).unwrap();
    let vars = model.lora_vars();
    let mut opt = AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        AdamWConfig::default(),
    )
    .unwrap();
    let refs: Vec<&Sample> = samples.iter().collect();
    let batch = Batch::new(&refs, 2, &Device::Cpu).unwrap();
    let grad_norms = |model: &Llama| -> Vec<(String, f32)> {
        let grads = answer_loss(model, &batch).unwrap().backward().unwrap();
        model
            .lora_vars()
            .into_iter()
            .map(|(n, v)| {
                let g = grads.get(v.as_tensor()).map_or(0.0, |g| {
                    g.sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                });
                (n, g)
            })
            .collect()
    };
    // At step 0, B = 0: only B has a gradient.
    for (name, g) in grad_norms(&model) {
        assert_eq!(g > 0.0, name.contains("lora_B"), "{name}: {g}");
    }
    let grads: Vec<Tensor> = {
        let g = answer_loss(&model, &batch).unwrap().backward().unwrap();
        vars.iter()
            .map(|(_, v)| g.get(v.as_tensor()).unwrap().clone())
            .collect()
    };
    opt.step(&grads, 1e-2).unwrap();
    for (name, g) in grad_norms(&model) {
        assert!(g > 0.0, "{name} gets no gradient after a step");
    }
}

/// d loss / d A and d B against central differences (L(w+h) − L(w−h)) / 2h, in f32 with
/// h = 1e-2, for the largest-gradient entries of a few tensors.
#[test]
fn lora_gradients_match_finite_differences() {
    let samples = memorise(3, 4);
    let mut model = testing::tiny_llama(4).unwrap();
    let cfg =
        LoraConfig::new(4, 8.0, 0.0, &[LoraTarget::Q, LoraTarget::V, LoraTarget::Up]).unwrap();
    model.add_lora(&cfg, 5).unwrap();
    // Non-zero B, so A's gradient is non-zero too.
    for (name, var) in model.lora_vars() {
        if name.contains("lora_B") {
            let t = Tensor::randn(0f32, 0.3, var.as_tensor().shape(), &Device::Cpu).unwrap();
            var.set(&t).unwrap();
        }
    }
    let refs: Vec<&Sample> = samples.iter().collect();
    let batch = Batch::new(&refs, 2, &Device::Cpu).unwrap();
    let loss = |model: &Llama| -> f64 {
        f64::from(
            answer_loss(model, &batch)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    let grads = answer_loss(&model, &batch).unwrap().backward().unwrap();
    let h = 1e-2f32;
    let mut checked = 0;
    for (name, var) in model.lora_vars() {
        if !(name.contains("layers.0.self_attn.q_proj")
            || name.contains("layers.1.mlp.up_proj")
            || name.contains("layers.1.self_attn.v_proj"))
        {
            continue;
        }
        let shape = var.as_tensor().shape().clone();
        let values: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let grad: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut order: Vec<usize> = (0..grad.len()).collect();
        order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
        for &i in order.iter().take(3) {
            let at = |delta: f32| {
                let mut v = values.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
                loss(&model)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
            var.set(&Tensor::from_vec(values.clone(), shape.clone(), &Device::Cpu).unwrap())
                .unwrap();
            let analytic = f64::from(grad[i]);
            let tol = 2e-3 + 0.03 * analytic.abs();
            assert!(
                (numeric - analytic).abs() < tol,
                "{name}[{i}]: analytic {analytic}, numeric {numeric}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * 6);
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let samples = memorise(8, 5);
    let mut h = hyper();
    h.num_epochs = 4;
    h.micro_batch_size = 2;
    h.gradient_accumulation_steps = 2;
    h.val_set_size = 0.25;
    h.lora_dropout = 0.1;
    h.lora_target_modules = vec![LoraTarget::Q, LoraTarget::V];
    // 6 train examples: 3 micro-batches, 2 optimizer steps an epoch, 8 in all.

    let a_dir = tempfile::tempdir().unwrap();
    let mut a = testing::tiny_llama(5).unwrap();
    let (outcome, a_events) = run(&samples, &h, a_dir.path(), true, &mut a, None);
    let a_report = finished(outcome);
    assert_eq!(a_report.total_steps, 8);

    let b_dir = tempfile::tempdir().unwrap();
    let mut b = testing::tiny_llama(5).unwrap();
    let (outcome, b1_events) = run(&samples, &h, b_dir.path(), true, &mut b, Some(3));
    let TrainOutcome::Interrupted {
        step: 3,
        checkpoint: Some(ck),
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(ck, b_dir.path().join("checkpoints/step-3"));
    assert!(
        b1_events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Checkpoint { step: 3, .. }))
    );

    // A new process: a fresh model, the same job.
    let mut b = testing::tiny_llama(5).unwrap();
    let (outcome, b2_events) = run(&samples, &h, b_dir.path(), true, &mut b, None);
    let b_report = finished(outcome);
    assert!(matches!(
        b2_events.first(),
        Some(WorkerEvent::Started {
            total_steps: 8,
            resumed_from_step: Some(3)
        })
    ));
    let mut b_losses = train_losses(&b1_events);
    b_losses.extend(train_losses(&b2_events));
    assert_eq!(b_losses, train_losses(&a_events));
    assert_eq!(lora_values(&b), lora_values(&a));
    assert_eq!(b_report.best_val_loss, a_report.best_val_loss);
    assert_eq!(b_report.curve, a_report.curve);

    // Finished: a third call trains nothing and returns the same report.
    let mut c = testing::tiny_llama(5).unwrap();
    let (outcome, c_events) = run(&samples, &h, b_dir.path(), true, &mut c, None);
    // trained.json round-trips floats through JSON, exact to the last bit or two.
    let c_report = finished(outcome);
    assert_eq!(
        (c_report.steps, c_report.best_step),
        (b_report.steps, b_report.best_step)
    );
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(1.0);
    assert!(close(
        c_report.best_val_loss.unwrap(),
        b_report.best_val_loss.unwrap()
    ));
    assert_eq!(c_report.curve.len(), b_report.curve.len());
    for (c, b) in c_report.curve.iter().zip(&b_report.curve) {
        assert_eq!((c.step, &c.split), (b.step, &b.split));
        assert!(
            close(c.loss, b.loss) && close(c.epoch, b.epoch),
            "{c:?} vs {b:?}"
        );
    }
    assert!(train_losses(&c_events).is_empty());
    assert_eq!(lora_values(&c), lora_values(&a));

    // Another job in the same directory does not resume this one's checkpoints.
    let mut other = h.clone();
    other.learning_rate = 5e-3;
    let mut d = testing::tiny_llama(5).unwrap();
    let (outcome, d_events) = run(&samples, &other, b_dir.path(), true, &mut d, None);
    finished(outcome);
    assert!(matches!(
        d_events.first(),
        Some(WorkerEvent::Started {
            resumed_from_step: None,
            ..
        })
    ));
}

#[test]
fn early_stopping_keeps_the_best_adapter() {
    // Every example has the same prompt; the held-out ones expect another answer, so the
    // validation loss gets worse the better the training examples are learnt.
    let (_, val_idx) = data::split(10, 0.2, 7);
    let samples: Vec<Sample> = (0..10)
        .map(|i| {
            let answer = if val_idx.contains(&i) { 60 } else { 50 };
            Sample {
                ids: vec![1, 30, 31, 32, answer, 2],
                prompt_len: 4,
            }
        })
        .collect();
    let mut h = hyper();
    h.val_set_size = 0.2;
    h.num_epochs = 10;
    h.early_stopping_patience = Some(2);
    h.warmup_steps = 0;
    let dir = tempfile::tempdir().unwrap();
    let mut model = testing::tiny_llama(6).unwrap();
    let (outcome, events) = run(&samples, &h, dir.path(), false, &mut model, None);
    let report = finished(outcome);
    let vals: Vec<(u64, f64)> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Validation { step, loss, .. } => Some((*step, *loss)),
            _ => None,
        })
        .collect();
    assert!(report.stopped_early, "{vals:?}");
    assert!(report.steps < report.total_steps);
    // Stopped after exactly `patience` evaluations that did not beat the best one.
    let best = vals.len() - 3;
    assert!(
        vals[best + 1..].iter().all(|v| v.1 >= vals[best].1),
        "{vals:?}"
    );
    assert!(vals[..best].iter().all(|v| v.1 > vals[best].1), "{vals:?}");
    assert_eq!(report.best_step, Some(vals[best].0));
    assert_eq!(report.best_val_loss, Some(vals[best].1));
    // The model (and the adapter written) hold the best weights, not the last ones.
    let again = validation_loss(&mut model, &samples, &val_idx, 4, 2).unwrap();
    assert!(
        (again - vals[best].1).abs() < 1e-6,
        "{again} vs {:?}",
        vals[best]
    );
    let last = vals[vals.len() - 1].1;
    assert!(
        (again - last).abs() > 1e-3,
        "the last weights differ from the best"
    );
}

#[test]
fn a_cancel_before_the_first_step_writes_nothing() {
    let samples = memorise(4, 7);
    let dir = tempfile::tempdir().unwrap();
    let mut model = testing::tiny_llama(7).unwrap();
    let cancel = AtomicBool::new(true);
    let h = hyper();
    let job = SampleJob {
        samples: &samples,
        hyper: &h,
        out_dir: dir.path(),
        resume: true,
        base_model: "tiny.gguf",
        base_model_name: "tiny.gguf",
        pad_id: 2,
    };
    let outcome = train_samples(&job, &mut model, &mut |_| {}, &cancel).unwrap();
    assert_eq!(
        outcome,
        TrainOutcome::Interrupted {
            step: 0,
            checkpoint: None
        }
    );
}

#[test]
fn invalid_settings_are_refused() {
    // An unknown scheduler cannot reach the trainer: a job file naming one is refused when
    // it is read, with the field named.
    let mut json = serde_json::to_value(hyper()).unwrap();
    json["lr_scheduler"] = "constant".into();
    let err = serde_json::from_value::<LoraHyper>(json).unwrap_err();
    assert!(err.to_string().contains("lr_scheduler"), "{err}");
    let mut h = hyper();
    h.micro_batch_size = 0;
    assert!(matches!(
        check_hyper(&h),
        Err(Error::InvalidHyper {
            field: "micro_batch_size",
            ..
        })
    ));
    let samples: Vec<Sample> = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let job = SampleJob {
        samples: &samples,
        hyper: &hyper(),
        out_dir: dir.path(),
        resume: false,
        base_model: "x",
        base_model_name: "x",
        pad_id: 2,
    };
    let err = train_samples(
        &job,
        &mut testing::tiny_llama(1).unwrap(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::NoTrainingExamples { examples: 0, .. }),
        "{err}"
    );
}

#[test]
fn train_formats_chats_and_writes_adapter_and_merged_weights() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    testing::write_tiny_gguf(&gguf, 8).unwrap();
    let mut model = LocalModel::load_on(&gguf, &Device::Cpu, candle_core::DType::F32).unwrap();
    let examples: Vec<Example> = ["good film", "bad film", "great", "awful", "nice", "poor"]
        .iter()
        .enumerate()
        .map(|(i, text)| Example {
            messages: vec![Message::system("Label it."), Message::user(*text)],
            answer: if i % 2 == 0 {
                "pos".into()
            } else {
                "neg".into()
            },
        })
        .collect();
    let mut h = hyper();
    h.num_epochs = 2;
    h.val_set_size = 0.34;
    h.merge_weights = true;
    let job = FinetuneJob {
        arm: "tiny-lora".into(),
        base_model: gguf.clone(),
        base_model_name: None,
        hyper: h,
        compute: domain::ComputeSpec::default(),
        train: examples,
        eval: Vec::new(),
        generation: domain::GenerationParams::default(),
        out_dir: dir.path().join("out"),
        resume: true,
    };
    let mut events = Vec::new();
    let outcome = train(
        &job,
        &mut model,
        &mut |e| events.push(e),
        &AtomicBool::new(false),
    )
    .unwrap();
    let report = finished(outcome);
    assert_eq!(report.adapter_path, dir.path().join("out/adapter"));
    assert_eq!(report.merged_path, Some(dir.path().join("out/merged")));
    assert!(report.best_val_loss.is_some());
    assert_eq!(events.last(), Some(&report.event()));
    let merged = LocalModel::load_on(
        &dir.path().join("out/merged"),
        &Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    let ids = Tensor::new(&[[1u32, 40, 50, 60]], &Device::Cpu).unwrap();
    let diff: f32 = (model.model().forward(&ids).unwrap() - merged.model().forward(&ids).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-4, "{diff}");
    let peft: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    // A job that does not name its base model records the path it trained on.
    assert_eq!(peft["base_model_name_or_path"], gguf.display().to_string());
}
