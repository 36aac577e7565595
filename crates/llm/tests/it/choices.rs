//! Label scoring on the tiny llama: `LocalModel::score_choices` (one pass over prompt and all
//! labels, shared prefix, batching, padding) equals a hand computation of each label's
//! log-likelihood, and an over-long prompt fails alone.
//!
//! The reference is the plain definition: a full-sequence `forward` over prompt + label tokens,
//! `log_softmax` over the vocabulary, the label tokens' log-probabilities gathered (token `j` at
//! position `prompt_len + j - 1`) and summed.

use candle_core::{D, Device, IndexOp, Tensor};
use domain::Message;
use llm::LocalModel;

use crate::tiny;

fn load() -> (tiny::Tiny, LocalModel) {
    let t = tiny::build(true, 21);
    let m = LocalModel::load(&t.gguf, domain::Device::Cpu).unwrap();
    (t, m)
}

/// Summed log-probability of `label` after `prompt`, from one full forward pass.
fn reference(m: &LocalModel, prompt: &[u32], label: &[u32]) -> f64 {
    let seq = [prompt, label].concat();
    let input = Tensor::new(seq.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = m.model().forward(&input).unwrap().squeeze(0).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    label
        .iter()
        .enumerate()
        .map(|(j, &tok)| {
            let v: f32 = logp
                .i((prompt.len() + j - 1, tok as usize))
                .unwrap()
                .to_scalar()
                .unwrap();
            f64::from(v)
        })
        .sum()
}

fn prompts() -> Vec<Vec<Message>> {
    vec![
        vec![Message::user("hi")],
        // Its own system prompt: the three share only `<|im_start|>system\n` (8 tokens).
        vec![
            Message::system("Answer briefly."),
            Message::user("is this a longer question?"),
        ],
        vec![Message::user("x".repeat(40))],
    ]
}

/// Labels of 1, 2 and 5 tokens.
fn labels() -> Vec<String> {
    ["hello", "no", "maybe"].map(String::from).to_vec()
}

fn check_against_reference(m: &LocalModel, prompts: &[Vec<Message>], labels: &[String]) {
    let out = m.score_choices(prompts, labels).unwrap();
    assert_eq!(out.len(), prompts.len());
    for (msgs, scores) in prompts.iter().zip(out) {
        let scores = scores.unwrap();
        let prompt = m.encode_prompt(msgs).unwrap();
        assert_eq!(scores.prompt_tokens as usize, prompt.len());
        assert!(scores.seconds > 0.0);
        for (j, label) in labels.iter().enumerate() {
            let ids = m.encode_label(label).unwrap();
            assert_eq!(scores.label_tokens[j] as usize, ids.len());
            let want = reference(m, &prompt, &ids);
            let got = scores.logliks[j];
            assert!((got - want).abs() < 1e-4, "{label:?}: {got} vs {want}");
            assert!(got < 0.0);
        }
    }
}

#[test]
fn label_logliks_equal_a_full_forward_in_every_batching() {
    let (_t, mut m) = load();
    let labels = labels();
    let lens: Vec<usize> = labels
        .iter()
        .map(|l| m.encode_label(l).unwrap().len())
        .collect();
    assert_eq!(lens, [1, 2, 5]);
    // 1: each prompt alone; 2: padding within a batch; 8: all three, over the shared prefix.
    for max_batch in [1, 2, 8] {
        m.set_max_batch(max_batch);
        check_against_reference(&m, &prompts(), &labels);
    }
    // A shared prefix long enough to be computed once: the default system prompt.
    let same_system: Vec<Vec<Message>> = ["a", "bb", "what is it"]
        .iter()
        .map(|q| vec![Message::user(*q)])
        .collect();
    check_against_reference(&m, &same_system, &labels);
}

#[test]
fn labels_are_the_tokens_they_have_after_the_assistant_header() {
    let (_t, m) = load();
    for msgs in prompts() {
        let text = m.format_chat(&msgs, true);
        for label in labels() {
            let whole = m.tokenizer().encode(&format!("{text}{label}")).unwrap();
            let parts = [
                m.encode_prompt(&msgs).unwrap(),
                m.encode_label(&label).unwrap(),
            ]
            .concat();
            assert_eq!(whole, parts, "{label:?}");
        }
    }
}

#[test]
fn an_over_long_prompt_fails_alone() {
    let (_t, m) = load();
    let mut ps = prompts();
    ps.insert(1, vec![Message::user("y".repeat(300))]);
    let labels = labels();
    let out = m.score_choices(&ps, &labels).unwrap();
    let err = out[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("256"), "{err}");
    assert!(err.contains("5 tokens"), "{err}");
    let rest: Vec<Vec<Message>> = [0, 2, 3].map(|i| ps[i].clone()).to_vec();
    for (msgs, got) in rest.iter().zip([&out[0], &out[2], &out[3]]) {
        let want = m
            .score_choices(std::slice::from_ref(msgs), &labels)
            .unwrap();
        let (got, want) = (got.as_ref().unwrap(), want[0].as_ref().unwrap());
        for (a, b) in got.logliks.iter().zip(&want.logliks) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

#[test]
fn empty_or_missing_labels_fail_the_call() {
    let (_t, m) = load();
    let ps = prompts();
    assert!(m.score_choices(&ps, &[]).is_err());
    let err = m
        .score_choices(&ps, &["yes".into(), String::new()])
        .unwrap_err();
    assert!(err.to_string().contains("label 1"), "{err}");
}
