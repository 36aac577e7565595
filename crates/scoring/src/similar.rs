//! The `similar` scorer's arithmetic: the cosine of two embeddings, and the stored score it
//! becomes. The embeddings themselves come from the `embed` crate, computed by the runner; this
//! crate only sees the vectors (so it stays free of Candle and of any model).

/// The cosine similarity of `a` and `b` in [−1, 1]; 0 when either is the zero vector or their
/// lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (dot / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0)
}

/// The score of a cosine `cos`: with a `threshold`, 1 when `cos >= threshold` and 0 otherwise;
/// without one, `max(0, cos)`: an unrelated text's small negative cosine scores 0, and
/// a related one keeps its cosine as the score (rather than `(cos + 1) / 2`, which would give
/// unrelated texts about 0.5).
pub fn similar_score(cos: f64, threshold: Option<f64>) -> f64 {
    match threshold {
        Some(t) => {
            if cos >= t {
                1.0
            } else {
                0.0
            }
        }
        None => cos.max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((cosine(&[1.0, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn scores_clamp_or_threshold() {
        assert_eq!(similar_score(0.7553, None), 0.7553);
        assert_eq!(similar_score(-0.0461, None), 0.0);
        assert_eq!(similar_score(0.8, Some(0.8)), 1.0);
        assert_eq!(similar_score(0.7999, Some(0.8)), 0.0);
    }
}
