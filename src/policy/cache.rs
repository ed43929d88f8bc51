//! The decision cache of one policy snapshot.
//!
//! A cache belongs to exactly one enforcer: both are swapped together on
//! reload, so a stale decision cannot outlive its policy. Sharded so that a
//! miss write-locks one shard for the time of an insert, never the enforcer.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use super::Decision;

const SHARDS: usize = 16;
/// Entries per shard before the shard is emptied (a crude but bounded policy:
/// the key space is roles × datasets × actions, small in practice).
const SHARD_CAPACITY: usize = 4096;

/// Decisions keyed by an opaque string (normalised roles, object, action, …).
pub(crate) struct DecisionCache {
    shards: Vec<RwLock<HashMap<String, Decision>>>,
}

impl DecisionCache {
    pub(crate) fn new() -> DecisionCache {
        DecisionCache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<String, Decision>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        &self.shards[(hasher.finish() as usize) % SHARDS]
    }

    /// The cached decision for `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Decision> {
        let shard = self
            .shard(key)
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shard.get(key).cloned()
    }

    /// Remembers `decision` for `key`.
    pub(crate) fn insert(&self, key: String, decision: Decision) {
        let mut shard = self
            .shard(&key)
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if shard.len() >= SHARD_CAPACITY {
            shard.clear();
        }
        shard.insert(key, decision);
    }

    /// Number of cached decisions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(rule: &str) -> Decision {
        Decision {
            allowed: true,
            rule: rule.to_owned(),
            view: None,
        }
    }

    /// What is inserted is found again, under its own key only.
    #[test]
    fn stores_and_finds_by_key() {
        let cache = DecisionCache::new();
        assert_eq!(cache.get("a"), None);
        cache.insert("a".into(), decision("one"));
        cache.insert("b".into(), decision("two"));
        assert_eq!(cache.get("a").unwrap().rule, "one");
        assert_eq!(cache.get("b").unwrap().rule, "two");
        assert_eq!(cache.len(), 2);
    }

    /// The cache never grows beyond its bound.
    #[test]
    fn stays_bounded() {
        let cache = DecisionCache::new();
        for index in 0..(SHARDS * SHARD_CAPACITY * 2) {
            cache.insert(format!("key-{index}"), decision("x"));
        }
        assert!(cache.len() <= SHARDS * SHARD_CAPACITY);
    }
}
