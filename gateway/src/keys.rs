//! Project API keys: generated with 285 bits of entropy, stored as SHA-256
//! hashes, looked up strictly by kind through a short-lived cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::Rng as _;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use crate::metadata::{self, KeyKind, MetadataStore, StoredKey};

const KEY_LEN: usize = 48;

/// A new key set, shown once to whoever asked for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectKeys {
    pub master_key: String,
    pub read_key: String,
    pub write_key: String,
}

pub fn generate_key() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(KEY_LEN).map(char::from).collect()
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub struct KeyService {
    store: Arc<dyn MetadataStore>,
    cache: RwLock<HashMap<String, (StoredKey, Instant)>>,
    ttl: Duration,
}

impl KeyService {
    pub fn new(store: Arc<dyn MetadataStore>, ttl: Duration) -> Self {
        KeyService { store, cache: RwLock::new(HashMap::new()), ttl }
    }

    pub async fn create_key_set(&self, project: &str, now_ms: i64) -> metadata::Result<ProjectKeys> {
        let keys = ProjectKeys { master_key: generate_key(), read_key: generate_key(), write_key: generate_key() };
        let key_set: String = generate_key().chars().take(24).collect();
        let hashes = [
            (KeyKind::Master, hash_key(&keys.master_key)),
            (KeyKind::Read, hash_key(&keys.read_key)),
            (KeyKind::Write, hash_key(&keys.write_key)),
        ];
        self.store.insert_keys(project, &key_set, &hashes, now_ms).await?;
        Ok(keys)
    }

    /// The stored key with this text, if any.
    pub async fn lookup(&self, key: &str) -> metadata::Result<Option<StoredKey>> {
        if key.is_empty() || key.len() > 256 {
            return Ok(None);
        }
        let hash = hash_key(key);
        if let Some((stored, at)) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(stored.clone()));
        }
        let found = self.store.find_key(&hash).await?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match &found {
            Some(stored) => {
                if cache.len() > 100_000 {
                    cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
                }
                cache.insert(hash, (stored.clone(), Instant::now()));
            }
            None => {
                cache.remove(&hash);
            }
        }
        Ok(found)
    }

    /// The project a key of one of `kinds` opens.
    pub async fn project_of(&self, key: &str, kinds: &[KeyKind]) -> metadata::Result<Option<String>> {
        Ok(self.lookup(key).await?.filter(|k| kinds.contains(&k.kind)).map(|k| k.project))
    }

    /// Deletes the key set that `master_key` belongs to, if it is a master
    /// key of `project`; the keys stop working on this node at once.
    pub async fn revoke(&self, project: &str, master_key: &str) -> metadata::Result<bool> {
        let Some(stored) = self.lookup(master_key).await? else {
            return Ok(false);
        };
        if stored.kind != KeyKind::Master || stored.project != project {
            return Ok(false);
        }
        self.store.delete_key_set(project, &stored.key_set).await?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (k, _)| !(k.project == project && k.key_set == stored.key_set));
        Ok(true)
    }

    /// Forgets every cached key of a deleted project.
    pub fn forget_project(&self, project: &str) {
        self.cache.write().unwrap_or_else(|e| e.into_inner()).retain(|_, (k, _)| k.project != project);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), KEY_LEN);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), a);
    }
}
