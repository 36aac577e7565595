//! Unit tests on a tiny random BERT: embeddings are unit vectors, and the pads of a batch (or
//! of a tokenizer that pads to a fixed length) change nothing, while leaving them unmasked does.

#![allow(clippy::unwrap_used)]

use candle_core::Tensor;

use crate::Embedder;
use crate::testing::{tiny_embedder, write_tiny_model};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn embeddings_have_unit_length() {
    let e = tiny_embedder().unwrap();
    for v in e.embed(&["a man is eating food", "the movie"]).unwrap() {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(v.len(), 16);
    }
}

#[test]
fn a_padded_text_embeds_as_it_does_alone() {
    let e = tiny_embedder().unwrap();
    let short = "the movie";
    let alone = e.embed(&[short]).unwrap().remove(0);
    let batch = e
        .embed(&[short, "a man is eating a piece of bread"])
        .unwrap();
    assert!(
        max_diff(&alone, &batch[0]) < 1e-5,
        "{alone:?} vs {:?}",
        batch[0]
    );
}

#[test]
fn unmasked_pads_would_change_the_embedding() {
    let e = tiny_embedder().unwrap();
    let ids = Tensor::new(&[[10u32, 11, 0, 0, 0, 0]], &e.device).unwrap();
    let types = ids.zeros_like().unwrap();
    let mask = Tensor::new(&[[1u32, 1, 0, 0, 0, 0]], &e.device).unwrap();
    let masked = e
        .pool(&ids, &types, Some(&mask))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let unmasked = e
        .pool(&ids, &types, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let alone = e.embed(&["the movie"]).unwrap();
    assert!(max_diff(&masked[0], &alone[0]) < 1e-5);
    assert!(max_diff(&unmasked[0], &alone[0]) > 1e-3);
}

#[test]
fn a_model_folder_with_fixed_padding_loads_and_masks_its_pads() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path()).unwrap();
    let e = Embedder::load(dir.path()).unwrap();
    let by_file = Embedder::load(&dir.path().join("model.safetensors")).unwrap();
    let texts = ["the new movie is awesome", "a man"];
    let one = e.embed(&texts).unwrap();
    assert!(max_diff(&one[1], &e.embed(&["a man"]).unwrap()[0]) < 1e-5);
    assert!(max_diff(&one[0], &by_file.embed(&texts).unwrap()[0]) < 1e-6);
}

#[test]
fn a_pooling_other_than_mean_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path()).unwrap();
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
    )
    .unwrap();
    let err = Embedder::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("the model pools with cls_token; only mean pooling is supported"),
        "{err}"
    );
}
