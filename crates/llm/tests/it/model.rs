//! The model side on the tiny llama: both loaders agree, LoRA is exact where it must be
//! (B = 0 is the base model, merged equals unmerged), LoRA variables receive gradients that
//! match finite differences, and generation (KV cache, batching, padding, stops) matches a
//! full recompute. Plus the slow check on the real SmolLM2 when ORCHESTRATOR_SLOW_TESTS=1.

use std::collections::HashMap;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use domain::{GenerationParams, Message};
use llm::generate::FinishReason;
use llm::{LocalModel, LoraConfig, LoraTarget};

use crate::tiny::{self, max_diff};

fn ids(v: &[u32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

fn load(path: &std::path::Path) -> LocalModel {
    LocalModel::load(path, domain::Device::Cpu).unwrap()
}

const PROMPT: [u32; 9] = [1, 10, 200, 33, 264, 7, 99, 2, 150];

#[test]
fn gguf_and_safetensors_give_the_same_logits() {
    for bias in [false, true] {
        let t = tiny::build(bias, 3);
        let a = load(&t.gguf);
        let b = load(&t.hf_dir);
        let mut ca = a.model().config().clone();
        ca.rms_norm_eps = b.model().config().rms_norm_eps; // stored as f32 in GGUF
        assert_eq!(&ca, b.model().config());
        let la = a.model().forward(&ids(&PROMPT)).unwrap();
        let lb = b.model().forward(&ids(&PROMPT)).unwrap();
        assert!(max_diff(&la, &lb) < 1e-4, "bias={bias}");
        // Logits are not degenerate.
        let spread = la
            .max_keepdim(D::Minus1)
            .unwrap()
            .sub(&la.min_keepdim(D::Minus1).unwrap())
            .unwrap();
        assert!(spread.min_all().unwrap().to_scalar::<f32>().unwrap() > 1.0);
    }
}

#[test]
fn tokenizer_and_chat_template_come_from_the_gguf() {
    let t = tiny::build(false, 1);
    let m = load(&t.gguf);
    let text = m.format_chat(&[Message::user("hello world 42")], true);
    assert!(text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    let ids = m.tokenizer().encode(&text).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(m.tokenizer().decode(&ids, false).unwrap(), text);
    let (prompt, answer) = m.format_example(&[Message::user("hi")], "hello").unwrap();
    assert_eq!(
        m.tokenizer().decode(&prompt, false).unwrap(),
        m.format_chat(&[Message::user("hi")], true)
    );
    assert_eq!(answer, vec![m.tokenizer().token_id("hello").unwrap(), 2]);
    // The safetensors directory's tokenizer.json gives the same ids.
    let h = load(&t.hf_dir);
    assert_eq!(h.tokenizer().encode(&text).unwrap(), ids);
}

fn lora_cfg(r: usize) -> LoraConfig {
    LoraConfig::new(r, 2.0 * r as f64, 0.0, &LoraTarget::ALL).unwrap()
}

/// Random A and B for every target of every layer, under PEFT names.
fn random_adapter(m: &LocalModel, cfg: &LoraConfig) -> HashMap<String, Tensor> {
    let mut m2 = LocalModel::load(&tiny::build(false, 9).gguf, domain::Device::Cpu).unwrap();
    m2.model_mut().add_lora(cfg, 5).unwrap();
    let mut out = HashMap::new();
    for (name, var) in m2.model().lora_vars() {
        let t = var.as_tensor();
        let t = if name.contains("lora_B") {
            Tensor::randn(0f32, 0.3, t.shape(), &Device::Cpu).unwrap()
        } else {
            t.clone()
        };
        out.insert(name, t);
    }
    let _ = m;
    out
}

#[test]
fn fresh_lora_is_the_base_model_and_merged_equals_unmerged() {
    let t = tiny::build(true, 4);
    let mut m = load(&t.gguf);
    let base = m.model().forward(&ids(&PROMPT)).unwrap();
    let cfg = lora_cfg(4);
    m.model_mut().add_lora(&cfg, 1).unwrap();
    assert_eq!(m.model().lora_vars().len(), 2 * 7 * 2);
    assert_eq!(
        max_diff(&base, &m.model().forward(&ids(&PROMPT)).unwrap()),
        0.0
    );

    let adapter = random_adapter(&m, &cfg);
    m.model_mut().set_lora_tensors(&cfg, &adapter).unwrap();
    let unmerged = m.model().forward(&ids(&PROMPT)).unwrap();
    assert!(
        max_diff(&base, &unmerged) > 0.1,
        "the adapter changes the model"
    );
    m.model_mut().merge_lora().unwrap();
    let merged = m.model().forward(&ids(&PROMPT)).unwrap();
    assert!(max_diff(&merged, &unmerged) < 1e-4);
    // Merged weights exported in HF naming load as a plain model with the same logits.
    let w = m.model().merged_weights().unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let plain = llm::Llama::new(m.model().config(), vb).unwrap();
    assert!(max_diff(&plain.forward(&ids(&PROMPT)).unwrap(), &unmerged) < 1e-4);
    m.model_mut().unmerge_lora().unwrap();
    assert!(max_diff(&m.model().forward(&ids(&PROMPT)).unwrap(), &unmerged) < 1e-4);
}

/// Loss: cross entropy of the next token at the last 4 positions.
fn loss(m: &llm::Llama, seq: &[u32]) -> Tensor {
    let t = seq.len();
    let h = m.forward_hidden(&ids(seq)).unwrap().squeeze(0).unwrap();
    let rows = h.narrow(0, t - 5, 4).unwrap();
    let logits = m.lm_head(&rows).unwrap();
    let targets = Tensor::new(&seq[t - 4..], &Device::Cpu).unwrap();
    candle_nn::loss::cross_entropy(&logits, &targets).unwrap()
}

#[test]
fn every_lora_variable_gets_a_gradient_matching_finite_differences() {
    let t = tiny::build(true, 5);
    // In f64, so finite differences are precise.
    let mut m = LocalModel::load_on(&t.gguf, &Device::Cpu, DType::F64).unwrap();
    let cfg = lora_cfg(2);
    m.model_mut().add_lora(&cfg, 2).unwrap();
    let seq = [1u32, 40, 41, 42, 43, 44, 45, 46, 2];
    let grads = loss(m.model(), &seq).backward().unwrap();
    // At B = 0 only B's gradients are non-zero.
    for (name, var) in m.model().lora_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        if name.contains("lora_B") {
            assert!(norm > 0.0, "{name}");
        } else {
            assert_eq!(norm, 0.0, "{name}");
        }
    }
    // Move B off zero; now every variable gets a gradient, and it matches finite differences.
    for (name, var) in m.model().lora_vars() {
        if name.contains("lora_B") {
            let g = grads.get(var.as_tensor()).unwrap();
            var.set(&(var.as_tensor() - (g * 5.0).unwrap()).unwrap())
                .unwrap();
        }
    }
    let grads = loss(m.model(), &seq).backward().unwrap();
    for (name, var) in m.model().lora_vars() {
        let g = grads.get(var.as_tensor()).unwrap();
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(norm > 0.0, "{name}");
    }
    for (name, var) in m.model().lora_vars().into_iter().step_by(3) {
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
        let orig = var.as_tensor().copy().unwrap();
        let flat = orig.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // The coordinate with the largest gradient.
        let k = g
            .abs()
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap() as usize;
        let eps = 1e-5f64;
        let at = |delta: f64| {
            let mut v = flat.clone();
            v[k] += delta;
            var.set(&Tensor::from_vec(v, orig.shape(), &Device::Cpu).unwrap())
                .unwrap();
            loss(m.model(), &seq).to_scalar::<f64>().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        var.set(&orig).unwrap();
        let analytic = g.i(k).unwrap().to_scalar::<f64>().unwrap();
        assert!(
            (numeric - analytic).abs() <= 1e-5 * analytic.abs().max(1e-3),
            "{name}: numeric {numeric} vs analytic {analytic}"
        );
    }
}

#[test]
fn training_mode_dropout_is_seeded() {
    let t = tiny::build(false, 6);
    let mut m = load(&t.gguf);
    let cfg = LoraConfig::new(2, 4.0, 0.5, &[LoraTarget::Q, LoraTarget::V]).unwrap();
    m.model_mut().add_lora(&cfg, 2).unwrap();
    let adapter = random_adapter(&m, &cfg);
    m.model_mut().set_lora_tensors(&cfg, &adapter).unwrap();
    let eval = m.model().forward(&ids(&PROMPT)).unwrap();
    m.model_mut().set_training(true, 11);
    let a = m.model().forward(&ids(&PROMPT)).unwrap();
    m.model_mut().set_training(true, 11);
    let b = m.model().forward(&ids(&PROMPT)).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    assert!(max_diff(&a, &eval) > 1e-4);
    m.model_mut().set_training(false, 0);
    assert_eq!(
        max_diff(&m.model().forward(&ids(&PROMPT)).unwrap(), &eval),
        0.0
    );
}

/// Greedy decoding by recomputing the whole sequence every step.
fn greedy_recompute(m: &LocalModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let logits = m.model().forward(&ids(&seq)).unwrap().squeeze(0).unwrap();
        let next = logits
            .i(seq.len() - 1)
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        if m.stop_ids().contains(&next) {
            break;
        }
        seq.push(next);
        out.push(next);
    }
    out
}

fn greedy(max_tokens: u32) -> GenerationParams {
    GenerationParams {
        max_tokens,
        ..GenerationParams::default()
    }
}

#[test]
fn kv_cache_generation_equals_full_recompute() {
    let t = tiny::build(true, 7);
    let m = load(&t.gguf);
    let gens = m.generate_ids(&[PROMPT.to_vec()], &greedy(12)).unwrap();
    let expected = greedy_recompute(&m, &PROMPT, 12);
    let got = m.tokenizer().encode(&gens[0].text).unwrap();
    assert_eq!(gens[0].completion_tokens as usize, expected.len());
    assert_eq!(m.tokenizer().decode(&expected, true).unwrap(), gens[0].text);
    assert!(!got.is_empty());
    assert_eq!(gens[0].prompt_tokens, PROMPT.len() as u32);
}

#[test]
fn token_logprobs_equal_a_full_forward() {
    let t = tiny::build(false, 9);
    let mut m = load(&t.gguf);
    let prompts = vec![PROMPT.to_vec(), vec![1, 5, 6]];
    for max_batch in [1, 2] {
        m.set_max_batch(max_batch);
        let gens = m.generate_ids(&prompts, &greedy(10)).unwrap();
        for (p, g) in prompts.iter().zip(&gens) {
            let answer = greedy_recompute(&m, p, 10);
            assert_eq!(g.token_logprobs.len(), answer.len());
            assert_eq!(g.token_logprobs.len(), g.completion_tokens as usize);
            let seq = [p.as_slice(), &answer].concat();
            let logits = m.model().forward(&ids(&seq)).unwrap().squeeze(0).unwrap();
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
            for (j, (&tok, &got)) in answer.iter().zip(&g.token_logprobs).enumerate() {
                let want: f32 = logp
                    .i((p.len() + j - 1, tok as usize))
                    .unwrap()
                    .to_scalar()
                    .unwrap();
                assert!((got - want).abs() < 1e-4, "token {j}: {got} vs {want}");
                assert!(got <= 0.0);
            }
        }
    }
}

#[test]
fn batched_generation_equals_one_at_a_time() {
    let t = tiny::build(false, 8);
    let mut m = load(&t.gguf);
    let prompts: Vec<Vec<u32>> = vec![
        vec![1, 50, 60],
        PROMPT.to_vec(),
        vec![
            1, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190,
        ],
        vec![1, 5, 6, 7, 8],
        vec![1, 230],
    ];
    m.set_max_batch(1);
    let one: Vec<_> = m.generate_ids(&prompts, &greedy(10)).unwrap();
    m.set_max_batch(8);
    let batched = m.generate_ids(&prompts, &greedy(10)).unwrap();
    for (i, (a, b)) in one.iter().zip(&batched).enumerate() {
        assert_eq!(a.text, b.text, "prompt {i}");
        assert_eq!(a.completion_tokens, b.completion_tokens);
        assert_eq!(a.prompt_tokens as usize, prompts[i].len());
        assert!(b.seconds > 0.0);
    }
    // And each equals a full recompute.
    for (p, g) in prompts.iter().zip(&batched) {
        let expected = greedy_recompute(&m, p, 10);
        assert_eq!(m.tokenizer().decode(&expected, true).unwrap(), g.text);
    }
}

#[test]
fn a_shared_prompt_prefix_is_computed_once_and_changes_nothing() {
    let t = tiny::build(true, 13);
    let mut m = load(&t.gguf);
    let prefix: Vec<u32> = vec![1, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29];
    let prompts: Vec<Vec<u32>> = [vec![100], vec![101, 102, 103, 104], vec![105, 106], vec![]]
        .into_iter()
        .map(|rest| [prefix.clone(), rest].concat())
        .collect();
    for max_batch in [1, 3, 8] {
        m.set_max_batch(max_batch);
        let (gens, stats) = m.generate_ids_with_stats(&prompts, &greedy(8)).unwrap();
        // The last prompt is the prefix itself: one token stays its own.
        assert_eq!(stats.shared_prefix_tokens, prefix.len() - 1);
        for (p, g) in prompts.iter().zip(&gens) {
            let expected = greedy_recompute(&m, p, 8);
            assert_eq!(
                m.tokenizer().decode(&expected, true).unwrap(),
                g.text,
                "batch {max_batch}"
            );
            assert_eq!(g.prompt_tokens as usize, p.len());
        }
    }
}

/// A prompt search sends one candidate's items in several calls: the prefix they share is
/// computed by the first call and kept for the next, and forgotten when the weights change.
#[test]
fn a_kept_prefix_serves_the_next_call_until_the_weights_change() {
    let t = tiny::build(true, 17);
    let mut m = load(&t.gguf);
    let prefix: Vec<u32> = (1..=12).map(|i| 20 + i).collect();
    let call = |rests: [&[u32]; 2]| -> Vec<Vec<u32>> {
        rests.iter().map(|r| [&prefix[..], r].concat()).collect()
    };
    let first = call([&[100], &[101, 102]]);
    let second = call([&[103], &[104, 105]]);
    let (_, a) = m.generate_ids_with_stats(&first, &greedy(6)).unwrap();
    let (gens, b) = m.generate_ids_with_stats(&second, &greedy(6)).unwrap();
    assert_eq!((a.shared_prefix_tokens, b.shared_prefix_tokens), (12, 12));
    assert_eq!(
        b.prefill_tokens + 12,
        a.prefill_tokens,
        "the prefix was not computed again"
    );
    for (p, g) in second.iter().zip(&gens) {
        let expected = greedy_recompute(&m, p, 6);
        assert_eq!(m.tokenizer().decode(&expected, true).unwrap(), g.text);
    }

    let cfg = lora_cfg(2);
    m.model_mut().add_lora(&cfg, 3).unwrap();
    let adapter = random_adapter(&m, &cfg);
    m.model_mut().set_lora_tensors(&cfg, &adapter).unwrap();
    let (gens, c) = m.generate_ids_with_stats(&second, &greedy(6)).unwrap();
    assert_eq!(
        c.prefill_tokens, a.prefill_tokens,
        "new weights: the prefix is computed anew"
    );
    for (p, g) in second.iter().zip(&gens) {
        let expected = greedy_recompute(&m, p, 6);
        assert_eq!(m.tokenizer().decode(&expected, true).unwrap(), g.text);
    }
}

#[test]
fn sampling_is_seeded_and_independent_of_batching() {
    let t = tiny::build(false, 8);
    let mut m = load(&t.gguf);
    let params = GenerationParams {
        max_tokens: 8,
        temperature: 1.0,
        top_p: Some(0.9),
        seed: Some(42),
        ..GenerationParams::default()
    };
    let prompts = vec![PROMPT.to_vec(), vec![1, 5, 6]];
    let a = m.generate_ids(&prompts, &params).unwrap();
    m.set_max_batch(1);
    let b = m.generate_ids(&prompts, &params).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (&x.text, x.completion_tokens),
            (&y.text, y.completion_tokens)
        );
    }
}

#[test]
fn max_tokens_and_stop_strings_end_answers() {
    let t = tiny::build(false, 10);
    let m = load(&t.gguf);
    let none = &m.generate_ids(&[PROMPT.to_vec()], &greedy(0)).unwrap()[0];
    assert_eq!((none.completion_tokens, none.text.as_str()), (0, ""));
    let g = &m.generate_ids(&[PROMPT.to_vec()], &greedy(5)).unwrap()[0];
    if g.finish_reason == FinishReason::Length {
        assert_eq!(g.completion_tokens, 5);
    }
    // Stop at the second character the model produces.
    let long = &m.generate_ids(&[PROMPT.to_vec()], &greedy(20)).unwrap()[0];
    let mut chars = long.text.chars();
    if let (Some(_), Some(c)) = (chars.next(), chars.next()) {
        let params = GenerationParams {
            stop: vec![c.to_string()],
            ..greedy(20)
        };
        let s = &m.generate_ids(&[PROMPT.to_vec()], &params).unwrap()[0];
        assert_eq!(s.finish_reason, FinishReason::Stop);
        assert!(!s.text.contains(c));
        assert!(long.text.starts_with(&s.text));
    }
}

#[test]
fn messages_are_formatted_and_answered() {
    let t = tiny::build(false, 12);
    let m = load(&t.hf_dir);
    let out = m
        .generate(
            &[
                vec![Message::user("hello")],
                vec![Message::system("S"), Message::user("12")],
            ],
            &greedy(4),
        )
        .unwrap();
    assert_eq!(out.len(), 2);
    let p0 = m.encode_prompt(&[Message::user("hello")]).unwrap();
    assert_eq!(out[0].prompt_tokens as usize, p0.len());
}

/// The real SmolLM2-135M-Instruct GGUF: tokenizer ids as Hugging Face's, and a coherent answer.
#[test]
fn smollm2_real_model() {
    if std::env::var("ORCHESTRATOR_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping smollm2_real_model: set ORCHESTRATOR_SLOW_TESTS=1 to run it");
        return;
    }
    let path = crate::tiny::smollm2_path();
    let m = load(&path);
    let tok = m.tokenizer();
    assert_eq!(
        tok.encode("<|im_start|>system\n").unwrap(),
        vec![1, 9690, 198]
    );
    for text in [
        "Hello, world! 12345 + 678 = 13023",
        "naïve café — 日本語 🎉\n\ttabs and  double  spaces\n\n",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
    ] {
        assert_eq!(tok.decode(&tok.encode(text).unwrap(), false).unwrap(), text);
    }
    let out = m
        .generate(
            &[
                vec![Message::user("What is the capital of France?")],
                vec![Message::user("What is 2 + 2? Answer with a number.")],
            ],
            &greedy(32),
        )
        .unwrap();
    assert!(out[0].text.contains("Paris"), "{:?}", out[0].text);
    assert_eq!(
        out[0].finish_reason,
        FinishReason::Stop,
        "{:?}",
        out[0].text
    );
    assert!(out[1].text.contains('4'), "{:?}", out[1].text);
}

#[test]
fn models_can_move_to_worker_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LocalModel>();
    send_sync::<llm::Llama>();
}
