//! Training data as the trainer consumes it: token sequences with the position where the
//! answer starts, the deterministic train/validation split, per-epoch shuffles, and padded
//! micro-batches that carry exactly which rows of the hidden states the loss reads.
//!
//! Everything random here is derived from the job's seed and the epoch number, never from
//! mutable generator state, so a resumed run replays the same order without saving a
//! generator. Not here: tokenisation (the chat template lives in `generate.rs`/`chat.rs`) and
//! the loss itself (`train.rs`).

use candle_core::{Device, Result as CResult, Tensor};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

/// One training example as tokens: `ids[..prompt_len]` is the prompt, the rest the answer
/// (ending with the end-of-turn token). The loss covers the answer tokens only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Sample {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

impl Sample {
    /// Joins a prompt and an answer, cutting to `max_len` tokens: the answer is kept (up to
    /// `max_len - 1` tokens, since the first answer token is predicted from the last prompt
    /// token), and the prompt loses tokens from its start. Returns the sample and whether it
    /// was cut.
    pub fn new(prompt: &[u32], answer: &[u32], max_len: usize) -> (Sample, bool) {
        let max_len = max_len.max(2);
        let kept_answer = &answer[..answer.len().min(max_len - 1)];
        let keep_prompt = prompt.len().min(max_len - kept_answer.len());
        let prompt_cut = &prompt[prompt.len() - keep_prompt..];
        let truncated = keep_prompt < prompt.len() || kept_answer.len() < answer.len();
        let mut ids = prompt_cut.to_vec();
        ids.extend_from_slice(kept_answer);
        (
            Sample {
                prompt_len: prompt_cut.len(),
                ids,
            },
            truncated,
        )
    }

    /// Answer tokens (the loss's targets).
    pub fn answer_tokens(&self) -> usize {
        self.ids.len().saturating_sub(self.prompt_len)
    }
}

/// Splits `n` examples into (train, validation) index lists: a share `val_share` of them,
/// at least one when the share is positive and there are two or more examples, chosen by a
/// shuffle seeded with `seed`. Both lists come back in ascending order.
pub fn split(n: usize, val_share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_val = if val_share > 0.0 && n >= 2 {
        ((n as f64 * val_share).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut SmallRng::seed_from_u64(seed ^ 0x7661_6c5f_7370_6c74));
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// The order in which epoch `epoch` visits `train` (a permutation fixed by seed and epoch).
pub fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    let stream = seed.wrapping_add((epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut SmallRng::seed_from_u64(stream));
    order
}

/// Reorders `order` so that micro-batches hold examples of similar length, as Hugging Face's
/// `LengthGroupedSampler` does: the shuffled order is cut into mega-batches of `mega` examples
/// and each is sorted by length, longest first. Batches still mix the whole training set from
/// epoch to epoch, but pad far less (padding is computed like real tokens).
pub fn group_by_length(order: &[usize], len: impl Fn(usize) -> usize, mega: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(order.len());
    for chunk in order.chunks(mega.max(1)) {
        let mut chunk = chunk.to_vec();
        // Stable, so equal lengths keep their shuffled order.
        chunk.sort_by_key(|&i| std::cmp::Reverse(len(i)));
        out.extend(chunk);
    }
    out
}

/// A padded micro-batch and the rows the loss reads.
#[derive(Debug)]
pub struct Batch {
    /// `[B, T]` u32, right-padded.
    pub ids: Tensor,
    /// Indices into the flattened `[B·T]` positions whose hidden state predicts an answer token.
    pub rows: Tensor,
    /// The answer token each row predicts.
    pub targets: Tensor,
    /// Answer tokens (= rows).
    pub answer_tokens: usize,
    /// Real (unpadded) tokens.
    pub tokens: usize,
}

impl Batch {
    /// Pads `samples` on the right with `pad_id` to the longest one. Right padding keeps every
    /// real position's causal context free of padding, so no attention mask beyond the causal
    /// one is needed.
    pub fn new(samples: &[&Sample], pad_id: u32, device: &Device) -> CResult<Batch> {
        let t = samples
            .iter()
            .map(|s| s.ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut ids = Vec::with_capacity(samples.len() * t);
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut tokens = 0;
        for (b, s) in samples.iter().enumerate() {
            ids.extend_from_slice(&s.ids);
            ids.extend(std::iter::repeat_n(pad_id, t - s.ids.len()));
            tokens += s.ids.len();
            for pos in s.prompt_len.max(1)..s.ids.len() {
                rows.push((b * t + pos - 1) as u32);
                targets.push(s.ids[pos]);
            }
        }
        let answer_tokens = rows.len();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (samples.len(), t), device)?,
            rows: Tensor::from_vec(rows, answer_tokens, device)?,
            targets: Tensor::from_vec(targets, answer_tokens, device)?,
            answer_tokens,
            tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn truncation_keeps_the_answer() {
        let (s, cut) = Sample::new(&[1, 2, 3], &[7, 8], 16);
        assert_eq!(
            (s.ids.clone(), s.prompt_len, cut),
            (vec![1, 2, 3, 7, 8], 3, false)
        );
        let (s, cut) = Sample::new(&[1, 2, 3, 4, 5], &[7, 8], 4);
        assert_eq!(
            (s.ids.clone(), s.prompt_len, cut),
            (vec![4, 5, 7, 8], 2, true)
        );
        // An answer longer than the window keeps its start and one prompt token.
        let (s, _) = Sample::new(&[1, 2], &[7, 8, 9, 10], 3);
        assert_eq!((s.ids.clone(), s.prompt_len), (vec![2, 7, 8], 1));
        assert_eq!(s.answer_tokens(), 2);
    }

    #[test]
    fn split_is_deterministic_and_disjoint() {
        let (train, val) = split(10, 0.2, 7);
        assert_eq!((train.len(), val.len()), (8, 2));
        assert_eq!(split(10, 0.2, 7), (train.clone(), val.clone()));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_ne!(split(10, 0.2, 8).1, val, "another seed, another split");
        assert_eq!(
            split(3, 0.01, 7).1.len(),
            1,
            "a positive share holds out at least one"
        );
        assert_eq!(
            split(1, 0.5, 7),
            (vec![0], vec![]),
            "never the only example"
        );
        assert_eq!(split(5, 0.0, 7).1.len(), 0);
    }

    #[test]
    fn epochs_shuffle_differently_but_reproducibly() {
        let train: Vec<usize> = (0..20).collect();
        let (a, b) = (epoch_order(&train, 7, 0), epoch_order(&train, 7, 1));
        assert_ne!(a, b);
        assert_eq!(a, epoch_order(&train, 7, 0));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, train);
    }

    #[test]
    fn length_grouping_sorts_within_mega_batches_only() {
        let lens = [5, 1, 9, 3, 7, 2];
        let grouped = group_by_length(&[0, 1, 2, 3, 4, 5], |i| lens[i], 3);
        assert_eq!(grouped, vec![2, 0, 1, 4, 3, 5]);
    }

    #[test]
    fn batches_pad_right_and_select_answer_rows() {
        let s1 = Sample {
            ids: vec![1, 5, 6, 9, 2],
            prompt_len: 3,
        };
        let s2 = Sample {
            ids: vec![1, 5, 8, 2],
            prompt_len: 3,
        };
        let b = Batch::new(&[&s1, &s2], 0, &Device::Cpu).unwrap();
        assert_eq!(
            b.ids.to_vec2::<u32>().unwrap(),
            vec![vec![1, 5, 6, 9, 2], vec![1, 5, 8, 2, 0]]
        );
        // Row 0 predicts 9 from position 2 and 2 from position 3; row 1 predicts 2 from
        // position 2 (flat index 5 + 2).
        assert_eq!(b.rows.to_vec1::<u32>().unwrap(), vec![2, 3, 7]);
        assert_eq!(b.targets.to_vec1::<u32>().unwrap(), vec![9, 2, 2]);
        assert_eq!((b.answer_tokens, b.tokens), (3, 9));
    }
}
