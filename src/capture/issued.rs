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

use crossbeam_utils::CachePadded;

use crate::runtime::shard::{Slot, SLOTS};

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

/// A map split by serving thread: each shard inserts into a part of its own,
/// so the hot path takes a lock no other thread has touched since the
/// writer's last batch, instead of moving a shared lock's cache line between
/// cores on every request. The writer removes a batch's ids with one lock per
/// part; a lookup (feedback, rare) looks through every part.
pub struct Issued {
    /// One part per slot, each padded to room of its own ([`SLOTS`]).
    shards: [CachePadded<Mutex<IdMap>>; SLOTS],
}

impl Default for Issued {
    fn default() -> Self {
        Issued {
            shards: std::array::from_fn(|_| CachePadded::default()),
        }
    }
}

impl Issued {
    fn part(&self, slot: Slot) -> std::sync::MutexGuard<'_, IdMap> {
        self.shards[slot.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `id` to the running thread's part and says which that is; the
    /// record carries it to the writer, which takes the id out of that part.
    pub fn insert(&self, id: uuid::Uuid, served: Served) -> Slot {
        let slot = Slot::current();
        self.insert_at(slot, id, served);
        slot
    }

    /// Adds or replaces `id` in the given part.
    pub fn insert_at(&self, slot: Slot, id: uuid::Uuid, served: Served) {
        self.part(slot).insert(id.as_u128(), served);
    }

    /// Removes ids, each from the part it was inserted into, with one lock per
    /// part. Sorts `ids`.
    pub fn remove_all(&self, ids: &mut [(Slot, uuid::Uuid)]) {
        ids.sort_unstable_by_key(|(slot, _)| *slot);
        for group in ids.chunk_by(|a, b| a.0 == b.0) {
            let mut part = self.part(group[0].0);
            for (_, id) in group {
                part.remove(&id.as_u128());
            }
        }
    }

    pub fn get(&self, id: uuid::Uuid) -> Option<Served> {
        let key = id.as_u128();
        self.shards.iter().find_map(|p| {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned()
        })
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|p| p.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(version: &str) -> Served {
        Served {
            route: "r".into(),
            version: version.into(),
        }
    }

    /// Ids are found from any thread, and a batch removal takes each id out of
    /// the part it went into, whichever thread inserted it.
    #[test]
    fn ids_round_trip_through_the_parts() {
        let issued = Arc::new(Issued::default());
        let mut ids: Vec<(Slot, uuid::Uuid)> = (0..512)
            .map(|_| {
                let id = crate::capture::id::new_v7();
                (issued.insert(id, served("v1")), id)
            })
            .collect();
        // A shard thread inserts into the part of its slot.
        let (on_shard, slot) = {
            let issued = issued.clone();
            let shards = crate::runtime::shard::Shards::start(1).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let out = rt.block_on(shards.spawn_on(0, async move {
                let ids = (0..512)
                    .map(|_| {
                        let id = crate::capture::id::new_v7();
                        (issued.insert(id, served("v2")), id)
                    })
                    .collect::<Vec<_>>();
                (ids, Slot::current())
            }));
            rt.block_on(shards.stop());
            out.unwrap()
        };
        assert!(on_shard.iter().all(|(s, _)| *s == slot));
        assert!(ids.iter().all(|(s, _)| *s == Slot::current()));
        assert_eq!(
            issued.shards[slot.index()].lock().unwrap().len(),
            if slot == Slot::current() { 1024 } else { 512 },
            "the shard's ids are in its part"
        );
        assert_eq!(issued.len(), 1024);
        ids.extend(on_shard);
        for (_, id) in &ids {
            assert!(issued.get(*id).is_some());
        }
        // The replacement stays in the id's part.
        let (slot, id) = ids[600];
        issued.insert_at(slot, id, served("v3"));
        assert_eq!(&*issued.get(id).unwrap().version, "v3");
        assert_eq!(issued.len(), 1024);
        // Interleaved, as the writer's batches are.
        let mut batch: Vec<_> = ids[256..768].to_vec();
        batch.reverse();
        issued.remove_all(&mut batch);
        assert_eq!(issued.len(), 512);
        for (i, (_, id)) in ids.iter().enumerate() {
            assert_eq!(issued.get(*id).is_some(), !(256..768).contains(&i), "{i}");
        }
    }
}
