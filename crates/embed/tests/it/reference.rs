//! The real all-MiniLM-L6-v2 (from the cache that `models pull all-minilm-l6-v2` and `.ci/run`
//! fill, or `$ORCHESTRATOR_MINILM_DIR`) reproduces the cosine similarities that
//! sentence-transformers gives for these pairs (issue 13's reference values, the ones of the
//! sentence-transformers documentation's semantic-similarity example), within 1e-3.
//! Runs when `ORCHESTRATOR_SLOW_TESTS=1`.

#![allow(clippy::unwrap_used)]

use embed::Embedder;

#[test]
fn all_minilm_reproduces_the_reference_similarities() {
    if std::env::var("ORCHESTRATOR_SLOW_TESTS").as_deref() != Ok("1") {
        return;
    }
    let dir = models::all_minilm_l6_v2_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `orchestrator models pull all-minilm-l6-v2`",
        dir.display()
    );
    let e = Embedder::load(&dir).unwrap();
    let anchor = "A man is eating food.";
    let cases = [
        ("A man is eating a piece of bread.", 0.7553),
        ("A man is riding a horse.", 0.2474),
        ("The new movie is awesome.", -0.0461),
    ];
    let mut texts = vec![anchor];
    texts.extend(cases.iter().map(|(t, _)| *t));
    let batch = e.embed(&texts).unwrap();
    for (i, (text, expected)) in cases.iter().enumerate() {
        let alone = e.embed(&[anchor, text]).unwrap();
        for (a, b) in [(&batch[0], &batch[i + 1]), (&alone[0], &alone[1])] {
            let cos = scoring::cosine(a, b);
            eprintln!("cos({anchor:?}, {text:?}) = {cos:.4}");
            assert!((cos - expected).abs() < 1e-3, "{text}: {cos} vs {expected}");
        }
    }
}
