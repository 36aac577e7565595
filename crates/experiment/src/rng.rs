//! The one pseudo-random generator behind splits and few-shot draws: SplitMix64, written out here
//! so that a seed gives the same split on every platform, compiler and dependency version.
//!
//! Not for statistics (the scoring crate bootstraps with its own generator) and not for anything
//! that needs to be unpredictable.

use sha2::{Digest, Sha256};

/// SplitMix64 (Steele, Lea and Flood, 2014), as in `java.util.SplittableRandom`.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from a seed and a label (an item id, say), through SHA-256 so that
    /// nearby labels give unrelated streams.
    pub(crate) fn from_label(seed: u64, domain: &str, label: &str) -> Self {
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update([0]);
        h.update(seed.to_le_bytes());
        h.update(label.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Self::new(u64::from_le_bytes(first))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        if n <= 1 {
            return 0;
        }
        // Reject the top partial block of the u64 range so every residue is equally likely.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Puts the first `k` positions of `items` into a uniformly random order drawn from all of
    /// `items` (a partial Fisher–Yates shuffle); `k = items.len()` shuffles everything.
    pub(crate) fn shuffle_prefix<T>(&mut self, items: &mut [T], k: usize) {
        let n = items.len();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0, as printed by the reference C implementation
        // (Vigna, prng.di.unimi.it/splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..100).collect();
        SplitMix64::new(7).shuffle_prefix(&mut v, 100);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}
