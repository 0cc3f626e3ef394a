//! Interaction ids handed to clients whose records are not yet committed: calls
//! in flight and records waiting in the capture queue.
//!
//! Feedback may arrive the instant a response does, while its record is still
//! queued; checking here first means such feedback is accepted instead of
//! answered 404. Entries leave when the writer commits (or drops) the record, so
//! the map never holds more than the in-flight calls plus the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Where an issued interaction was served, for feedback metrics and filtering.
#[derive(Debug, Clone)]
pub struct Served {
    pub route: Arc<str>,
    pub version: Arc<str>,
}

/// A sharded map so concurrent calls rarely touch the same lock.
pub struct Issued {
    shards: [Mutex<HashMap<u128, Served>>; SHARDS],
}

impl Default for Issued {
    fn default() -> Self {
        Issued {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl Issued {
    fn shard(&self, id: u128) -> std::sync::MutexGuard<'_, HashMap<u128, Served>> {
        // UUIDv7's low bits are random, so they spread ids evenly.
        self.shards[(id as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, id: uuid::Uuid, served: Served) {
        self.shard(id.as_u128()).insert(id.as_u128(), served);
    }

    pub fn remove(&self, id: uuid::Uuid) {
        self.shard(id.as_u128()).remove(&id.as_u128());
    }

    pub fn get(&self, id: uuid::Uuid) -> Option<Served> {
        self.shard(id.as_u128()).get(&id.as_u128()).cloned()
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
