//! Interaction ids handed to clients whose records are not yet committed: calls
//! in flight and records waiting in the capture queue.
//!
//! Feedback may arrive the instant a response does, while its record is still
//! queued; checking here first means such feedback is accepted instead of
//! answered 404. Entries leave when the writer commits (or drops) the record, so
//! the map never holds more than the in-flight calls plus the queue.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Keys are UUIDv7s, whose low 62 bits are random: those bits are the hash,
/// turned so that random bits also land at its top (where the map keeps its
/// tag bits). The default SipHash costs more than the rest of an insert or
/// removal, and the map needs no protection from chosen keys: the gateway
/// makes the ids.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; this keeps any other key well spread.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = (id as u64).rotate_left(32);
    }
}

type IdMap = HashMap<u128, Served, BuildHasherDefault<IdHasher>>;

/// Where an issued interaction was served, for feedback metrics and filtering.
#[derive(Debug, Clone)]
pub struct Served {
    pub route: Arc<str>,
    pub version: Arc<str>,
}

/// A sharded map so concurrent calls rarely touch the same lock.
pub struct Issued {
    shards: [Mutex<IdMap>; SHARDS],
}

impl Default for Issued {
    fn default() -> Self {
        Issued {
            shards: std::array::from_fn(|_| Mutex::new(IdMap::default())),
        }
    }
}

impl Issued {
    fn shard(&self, id: u128) -> std::sync::MutexGuard<'_, IdMap> {
        // UUIDv7's low bits are random, so they spread ids evenly (the map's
        // hash takes its bucket bits from higher up, see `IdHasher`).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids made by the gateway are found, removed, and spread over every shard.
    #[test]
    fn ids_round_trip_and_spread_over_the_shards() {
        let issued = Issued::default();
        let served = Served {
            route: "r".into(),
            version: "v1".into(),
        };
        let ids: Vec<uuid::Uuid> = (0..4096).map(|_| crate::capture::id::new_v7()).collect();
        for id in &ids {
            issued.insert(*id, served.clone());
        }
        assert_eq!(issued.len(), ids.len());
        for shard in &issued.shards {
            let n = shard.lock().unwrap().len();
            // 256 expected per shard; a shard choice on fixed bits would leave most empty.
            assert!((128..=384).contains(&n), "{n}");
        }
        for id in &ids[..2048] {
            assert_eq!(&*issued.get(*id).unwrap().version, "v1");
            issued.remove(*id);
            assert!(issued.get(*id).is_none());
        }
        assert_eq!(issued.len(), 2048);
    }
}
