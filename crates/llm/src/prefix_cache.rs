//! The KV cache of a shared prompt prefix, kept from one call to the next. Generation and label
//! scoring compute the prefix a call's prompts share (system prompt, instructions, few-shot
//! demonstrations) once; a caller that sends one candidate prompt's items in several calls (the
//! runner sends `batch_size` at a time, a prompt search sends each rung's items) would compute
//! it again for every call. [`LocalModel::shared_prefix`] keeps the last prefix it computed and
//! hands it out again while the calls' prompts still start with it.
//!
//! The kept prefix is only valid for the weights it was computed with: [`LocalModel::model_mut`]
//! (the one way to change them: training, loading or merging an adapter) forgets it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::Error;
use crate::generate::{MIN_SHARED_PREFIX, common_prefix_len};
use crate::local_model::LocalModel;
use crate::model::KvCache;

/// A kept prefix may leave at most this many tokens of a call's longer shared prefix to each
/// row, instead of that call computing its own.
const REUSE_SLACK: usize = 64;

/// The last prefix computed, with its token ids.
#[derive(Default)]
pub(crate) struct PrefixCache(Mutex<Option<Kept>>);

struct Kept {
    ids: Vec<u32>,
    cache: Arc<KvCache>,
}

impl PrefixCache {
    fn lock(&self) -> MutexGuard<'_, Option<Kept>> {
        // Every update is one assignment: a poisoned lock still holds a whole value.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the kept prefix (the weights changed).
    pub(crate) fn clear(&self) {
        *self.lock() = None;
    }
}

/// The prefix one call's prompts share: its keys and values (None when it is not worth
/// computing apart), and what computing it cost this call (nothing when it was kept).
pub(crate) struct Prefix {
    pub cache: Option<Arc<KvCache>>,
    /// Tokens computed now (0 when kept or absent).
    pub computed: usize,
    pub seconds: f64,
}

impl Prefix {
    /// Its length in tokens (0 without one).
    pub(crate) fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }
}

impl LocalModel {
    /// The shared prefix of `prompts` (each keeps at least one token of its own): the kept one
    /// when every prompt starts with it and it is at most [`REUSE_SLACK`] tokens shorter than
    /// theirs, else, for two or more prompts sharing [`MIN_SHARED_PREFIX`] tokens, computed now
    /// and kept.
    pub(crate) fn shared_prefix(&self, prompts: &[Vec<u32>]) -> Result<Prefix, Error> {
        let min_len = prompts.iter().map(Vec::len).min().unwrap_or(0);
        let shared = common_prefix_len(prompts).min(min_len.saturating_sub(1));
        let first = prompts.first().map(Vec::as_slice).unwrap_or_default();
        let mut kept = self.prefix.lock();
        if let Some(k) = kept.as_ref()
            && k.ids.len() <= shared
            && shared - k.ids.len() <= REUSE_SLACK
            && first.starts_with(&k.ids)
        {
            return Ok(Prefix {
                cache: Some(k.cache.clone()),
                computed: 0,
                seconds: 0.0,
            });
        }
        if prompts.len() < 2 || shared < MIN_SHARED_PREFIX {
            return Ok(Prefix {
                cache: None,
                computed: 0,
                seconds: 0.0,
            });
        }
        let started = Instant::now();
        let ids = first.get(..shared).unwrap_or_default().to_vec();
        let cache = Arc::new(self.prefill_prefix(&ids)?);
        *kept = Some(Kept {
            ids,
            cache: cache.clone(),
        });
        Ok(Prefix {
            cache: Some(cache),
            computed: shared,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
