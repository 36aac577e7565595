//! The response-cache look-ahead of hosted prompt arms: pending items are rendered and looked up
//! in the cache a chunk at a time ([`LOOKAHEAD`] items, one `Store::cache_get_many` query),
//! ahead of their turn, instead of one lookup per call on the hot path.
//!
//! It keeps "no paid call is made twice" (for the same cache key, in this invocation or any
//! earlier one) even though a lookup can now run before this run's own answers are committed:
//! - the first occurrence of a key in this invocation is its *leader*; a later item with the
//!   same key while the leader is unresolved (being looked up, waiting or in flight) is parked
//!   behind it ([`Leaders`]) and takes the leader's answer as a cache hit, or, if the leader's
//!   call fails, the next parked item becomes the leader and is asked instead;
//! - an answer that is resolved but still on its way to the database sits in [`Unwritten`]
//!   until the writer has committed it, and is served from there;
//! - anything else was committed before its lookup began, so the lookup sees it.
//!
//! Duplicate prompts inside one run are rare (two items with the same text, or two prompts that
//! render the same), so the bookkeeping is a map of the keys in the look-ahead window, not of
//! every key of the run. This module decides nothing about scheduling or budgets; `hosted` does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::Message;
use store::{CachedAnswer, Store};
use tokio::task::JoinSet;

/// Items per lane rendered and looked up together. The scheduler starts the next chunk's lookup
/// while fewer than this many looked-up items wait for a slot, so a lookup is always running
/// ahead of the calls.
pub(crate) const LOOKAHEAD: usize = 512;

/// An item prepared ahead of its turn: its messages and its cache key (None with `--no-cache`).
pub(crate) struct Prepared {
    pub arm: usize,
    pub item: usize,
    pub messages: Vec<Message>,
    pub key: Option<String>,
}

/// A chunk of one lane's items with what the cache holds for them.
pub(crate) struct Lookup {
    pub lane: usize,
    pub chunk: Vec<Prepared>,
    pub found: HashMap<String, CachedAnswer>,
}

/// Looks up every key of `chunk` in one query, on its own task so the scheduler keeps going.
/// A failed lookup finds nothing (the items are asked of the provider), as a failed single
/// lookup did before.
pub(crate) fn spawn_lookup(
    set: &mut JoinSet<Lookup>,
    store: Store,
    lane: usize,
    chunk: Vec<Prepared>,
) {
    set.spawn(async move {
        let keys: Vec<String> = chunk.iter().filter_map(|p| p.key.clone()).collect();
        let found = match store.cache_get_many(&keys).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, items = keys.len(), "cache lookup failed; calling the provider");
                HashMap::new()
            }
        };
        Lookup { lane, chunk, found }
    });
}

/// Keys whose first occurrence in this invocation is not resolved yet, each with the items
/// (arm, item) parked behind it.
#[derive(Default)]
pub(crate) struct Leaders {
    waiting: HashMap<String, Vec<(usize, usize)>>,
}

impl Leaders {
    /// Parks (`arm`, `item`) behind the unresolved leader of `key`; false when there is none.
    pub(crate) fn park(&mut self, key: &str, arm: usize, item: usize) -> bool {
        match self.waiting.get_mut(key) {
            Some(parked) => {
                parked.push((arm, item));
                true
            }
            None => false,
        }
    }

    /// Makes the item being prepared with `key` its leader.
    pub(crate) fn lead(&mut self, key: String) {
        self.waiting.entry(key).or_default();
    }

    /// The leader of `key` has its answer: the items parked behind it, which share it.
    pub(crate) fn resolve(&mut self, key: &str) -> Vec<(usize, usize)> {
        self.waiting.remove(key).unwrap_or_default()
    }

    /// The leader of `key` failed: the parked item that leads now and is asked instead, if any.
    pub(crate) fn promote(&mut self, key: &str) -> Option<(usize, usize)> {
        let parked = self.waiting.get_mut(key)?;
        if parked.is_empty() {
            self.waiting.remove(key);
            return None;
        }
        Some(parked.remove(0))
    }
}

/// Answers handed to the writer whose batch is not committed yet, by cache key. The scheduler
/// adds an answer before sending it to the writer; the writer removes it once committed. Shared
/// by the two tasks; each lock is held for a map operation, never across an await.
#[derive(Clone, Default)]
pub(crate) struct Unwritten(Arc<Mutex<HashMap<String, CachedAnswer>>>);

impl Unwritten {
    fn map(&self) -> MutexGuard<'_, HashMap<String, CachedAnswer>> {
        // A panic while holding the lock cannot leave a half-updated map (every operation is a
        // single insert, get or remove), so a poisoned lock is still safe to use.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn insert(&self, key: String, answer: CachedAnswer) {
        self.map().insert(key, answer);
    }

    pub(crate) fn get(&self, key: &str) -> Option<CachedAnswer> {
        self.map().get(key).cloned()
    }

    /// Forgets `keys`: their answers are committed, and lookups from now on find them.
    pub(crate) fn committed<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut map = self.map();
        for key in keys {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_items_follow_their_leader_and_one_takes_over_on_failure() {
        let mut l = Leaders::default();
        assert!(!l.park("k", 0, 1), "no leader yet");
        l.lead("k".into());
        assert!(l.park("k", 0, 2));
        assert!(l.park("k", 1, 2));
        assert_eq!(l.promote("k"), Some((0, 2)));
        assert_eq!(l.resolve("k"), vec![(1, 2)]);
        assert!(!l.park("k", 0, 3), "resolved keys have no leader");
        l.lead("j".into());
        assert_eq!(l.promote("j"), None);
        assert!(
            !l.park("j", 0, 4),
            "a failed leader with no one parked is forgotten"
        );
    }

    #[test]
    fn unwritten_answers_are_kept_until_committed() {
        let u = Unwritten::default();
        let a = CachedAnswer {
            text: "yes".into(),
            prompt_tokens: 3,
            completion_tokens: 1,
            truncated: false,
            choice: None,
            token_logprobs: None,
        };
        u.insert("k".into(), a.clone());
        assert_eq!(u.clone().get("k"), Some(a));
        u.committed(["k"]);
        assert_eq!(u.get("k"), None);
    }
}
