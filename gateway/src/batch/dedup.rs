//! Events stored once by id, decided where they reach storage.
//!
//! An event that carries an id (`_id`: Segment's `messageId`, PostHog's
//! `uuid`, Snowplow's `eid`, or any client's own) is stored once per
//! project and collection within the window. The master remembers the keys
//! of the ids it loaded, leaves out of each load the records whose key it
//! has seen or that repeat within the load, and commits the load's new keys
//! in the load's own transaction. Stored rows and remembered keys thus move
//! together: a load that did not commit left neither, and a master reads
//! the committed keys again before its first load (and after any commit it
//! cannot be sure of). Re-sent events may meanwhile sit in the log, and in
//! the event stream that reads it, more than once.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::metadata::{self, MetadataStore};

/// The field that holds an event's id.
pub const ID_FIELD: &str = "_id";

/// An id as remembered: 128 bits of the SHA-256 of collection and id.
pub type Key = u128;

/// The key of `id` in `collection`.
pub fn key(collection: &str, id: &str) -> Key {
    let mut hash = Sha256::new();
    hash.update(collection.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Key::from_be_bytes(first)
}

/// Keys as committed: 16 bytes each, one after another.
pub fn encode_keys(keys: &[Key]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_be_bytes()).collect()
}

/// Keys as [`encode_keys`] wrote them.
pub fn decode_keys(bytes: &[u8]) -> impl Iterator<Item = Key> + '_ {
    bytes.chunks_exact(16).map(|c| Key::from_be_bytes(c.try_into().unwrap_or([0; 16])))
}

/// A map by key, hashed fast with a random seed, so that ids chosen to
/// collide slow no one down.
type KeyMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;
type KeySet = HashSet<Key, foldhash::fast::RandomState>;

/// The keys the master has loaded within the window.
pub struct Dedup {
    window_ms: i64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The epoch the keys were read under; `None` until read, and after a
    /// commit whose outcome is unknown.
    epoch: Option<i64>,
    /// Per project, each key and when it was loaded.
    seen: HashMap<String, KeyMap<i64>>,
    /// When keys past the window were last let go.
    pruned_ms: i64,
}

impl Dedup {
    /// Remembers ids for `window_ms` after their event was loaded; 0 turns
    /// deduplication off.
    pub fn new(window_ms: u64) -> Self {
        Dedup { window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX), state: Mutex::new(State::default()) }
    }

    pub fn enabled(&self) -> bool {
        self.window_ms > 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the remembered keys the committed ones before a load under
    /// `epoch`, and lets go of those past the window now and then.
    pub async fn prepare(&self, store: &dyn MetadataStore, epoch: i64, now_ms: i64) -> metadata::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let cutoff = now_ms.saturating_sub(self.window_ms);
        let (current, pruned_ms) = {
            let state = self.state();
            (state.epoch == Some(epoch), state.pruned_ms)
        };
        if !current {
            let mut seen: HashMap<String, KeyMap<i64>> = HashMap::new();
            for load in store.loaded_event_ids(cutoff).await? {
                let keys = seen.entry(load.project).or_default();
                keys.extend(decode_keys(&load.keys).map(|k| (k, load.loaded_ms)));
            }
            *self.state() = State { epoch: Some(epoch), seen, pruned_ms: now_ms };
            return Ok(());
        }
        // A sixtieth of the window, at most every ten minutes.
        let every = (self.window_ms / 60).min(600_000);
        if now_ms.saturating_sub(pruned_ms) >= every {
            {
                let mut state = self.state();
                for keys in state.seen.values_mut() {
                    keys.retain(|_, loaded| *loaded >= cutoff);
                }
                state.seen.retain(|_, keys| !keys.is_empty());
                state.pruned_ms = now_ms;
            }
            store.forget_event_ids(cutoff).await?;
        }
        Ok(())
    }

    /// Which of a load's records to store, in order (the first of each id
    /// not seen before), and the keys of the stored ones.
    pub fn select(&self, project: &str, keys: &[Option<Key>]) -> (Vec<bool>, Vec<Key>) {
        let state = self.state();
        let seen = state.seen.get(project);
        let mut in_load = KeySet::with_capacity_and_hasher(keys.len(), Default::default());
        let mut new_keys = Vec::new();
        let keep = keys
            .iter()
            .map(|key| match key {
                None => true,
                Some(k) if seen.is_some_and(|s| s.contains_key(k)) || !in_load.insert(*k) => false,
                Some(k) => {
                    new_keys.push(*k);
                    true
                }
            })
            .collect();
        (keep, new_keys)
    }

    /// Remembers the keys of a load that committed.
    pub fn remember(&self, project: &str, keys: &[Key], now_ms: i64) {
        if keys.is_empty() {
            return;
        }
        let mut state = self.state();
        let seen = state.seen.entry(project.to_owned()).or_default();
        seen.reserve(keys.len());
        seen.extend(keys.iter().map(|k| (*k, now_ms)));
    }

    /// Reads the committed keys again before the next load (a commit's
    /// outcome is unknown).
    pub fn forget(&self) {
        self.state().epoch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_collection_and_id() {
        assert_eq!(key("a", "1"), key("a", "1"));
        assert_ne!(key("a", "1"), key("b", "1"));
        assert_ne!(key("a", "b1"), key("ab", "1"));
        let keys = [key("a", "1"), key("a", "2")];
        assert_eq!(decode_keys(&encode_keys(&keys)).collect::<Vec<_>>(), keys);
    }

    #[test]
    fn a_load_keeps_the_first_of_each_new_id() {
        let dedup = Dedup::new(1000);
        dedup.remember("p", &[key("c", "old")], 0);
        let keys = [Some(key("c", "old")), Some(key("c", "x")), None, Some(key("c", "x")), None];
        let (keep, new) = dedup.select("p", &keys);
        assert_eq!(keep, [false, true, true, false, true]);
        assert_eq!(new, [key("c", "x")]);
        let (keep, _) = dedup.select("q", &keys[..1]);
        assert_eq!(keep, [true], "another project's ids are its own");
    }
}
