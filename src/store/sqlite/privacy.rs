//! Privacy in SQLite: sealed raw payloads, erasing a user, retention purges
//! in short batches, and named secrets. Erasures end by truncating the WAL so
//! no copy of an erased row stays on disk.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::crypto::vault::Sealed;
use crate::store::{PrivacyStore, PurgeCutoffs, Removed, StoreError};

/// The smallest interaction id minted at or after `ms`: ids are UUIDv7 in
/// lowercase hex, whose first 12 digits are the Unix time in milliseconds, so
/// `id < ids_before(ms)` selects exactly the interactions received before `ms`
/// and is a range of the primary key. Retention measures age this way rather
/// than by `created_at_ms`, which would need an index written on every insert.
fn ids_before(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1);
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

impl SqliteStore {
    /// Copies every page in the WAL into the database file and truncates the
    /// WAL to nothing, so the page images from before an erasure are gone
    /// from disk too. A reader still on an older snapshot (a dataset scan)
    /// holds the checkpoint back: it is tried again for up to five seconds,
    /// with the writer lock released in between so capture keeps flowing.
    fn clear_wal(&self) {
        for attempt in 0..50 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let done = self
                .writer()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok(r.get::<_, i64>(0)? == 0)
                });
            match done {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "wal checkpoint after erasure failed");
                    return;
                }
            }
        }
        tracing::warn!(
            "a reader held the wal past erasure; erased rows stay in the wal file until the next checkpoint"
        );
    }
}

impl PrivacyStore for SqliteStore {
    fn get_raw(&self, interaction_id: &str) -> Result<Option<Sealed>, StoreError> {
        let conn = self.reader();
        let found = conn
            .prepare_cached(
                "SELECT key_id, nonce, ciphertext FROM raw_payloads WHERE interaction_id = ?1",
            )?
            .query_row(params![interaction_id], |r| {
                Ok(Sealed {
                    key_id: r.get(0)?,
                    nonce: r.get(1)?,
                    ciphertext: r.get(2)?,
                })
            })
            .optional()?;
        Ok(found)
    }

    fn forget_user(&self, user_hashes: &[String]) -> Result<Removed, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let mut removed = Removed::default();
        for user_hash in user_hashes {
            // Feedback given by the user, and all feedback on the user's interactions.
            removed.feedback += tx.execute(
                "DELETE FROM feedback WHERE user_hash = ?1
                    OR interaction_id IN (SELECT id FROM interactions WHERE user_hash = ?1)",
                params![user_hash],
            )? as u64;
            removed.raw_payloads += tx.execute(
                "DELETE FROM raw_payloads WHERE interaction_id IN (SELECT id FROM interactions WHERE user_hash = ?1)",
                params![user_hash],
            )? as u64;
            removed.experiment_results += tx.execute(
                "DELETE FROM experiment_results WHERE source_id IN (SELECT id FROM interactions WHERE user_hash = ?1)",
                params![user_hash],
            )? as u64;
            removed.interactions += tx.execute(
                "DELETE FROM interactions WHERE user_hash = ?1",
                params![user_hash],
            )? as u64;
        }
        tx.commit()?;
        drop(conn);
        self.clear_wal();
        Ok(removed)
    }

    fn purge(
        &self,
        cutoffs: PurgeCutoffs,
        batch: usize,
        dry_run: bool,
    ) -> Result<Removed, StoreError> {
        let mut removed = Removed::default();
        if dry_run {
            let conn = self.reader();
            if let Some(before) = cutoffs.capture_before_ms {
                let (i, f): (i64, i64) = conn.query_row(
                    "SELECT (SELECT COUNT(*) FROM interactions WHERE id < ?1),
                            (SELECT COUNT(*) FROM feedback WHERE interaction_id IN
                                (SELECT id FROM interactions WHERE id < ?1))",
                    params![ids_before(before)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                removed.interactions = i as u64;
                removed.feedback = f as u64;
            }
            // A payload goes when either its own or its interaction's time is up.
            let raw_before = match (cutoffs.raw_before_ms, cutoffs.capture_before_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(before) = raw_before {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM raw_payloads WHERE created_at_ms < ?1",
                    params![before],
                    |r| r.get(0),
                )?;
                removed.raw_payloads = n as u64;
            }
            return Ok(removed);
        }
        // Each batch is its own short transaction: the writer lock is released
        // between batches so capture keeps flowing during a long sweep.
        let batch = batch.max(1) as i64;
        loop {
            let n = {
                let conn = self.writer();
                let mut n = 0;
                if let Some(before) = cutoffs.raw_before_ms {
                    let r = conn.execute(
                        "DELETE FROM raw_payloads WHERE interaction_id IN
                            (SELECT interaction_id FROM raw_payloads WHERE created_at_ms < ?1 LIMIT ?2)",
                        params![before, batch],
                    )?;
                    removed.raw_payloads += r as u64;
                    n += r;
                }
                if let Some(before) = cutoffs.capture_before_ms {
                    let tx = conn.unchecked_transaction()?;
                    tx.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS purge_ids (id TEXT PRIMARY KEY)",
                        [],
                    )?;
                    tx.execute("DELETE FROM purge_ids", [])?;
                    tx.execute(
                        "INSERT INTO purge_ids SELECT id FROM interactions WHERE id < ?1 ORDER BY id LIMIT ?2",
                        params![ids_before(before), batch],
                    )?;
                    let f = tx.execute(
                        "DELETE FROM feedback WHERE interaction_id IN (SELECT id FROM purge_ids)",
                        [],
                    )?;
                    let r = tx.execute("DELETE FROM raw_payloads WHERE interaction_id IN (SELECT id FROM purge_ids)", [])?;
                    let i = tx.execute(
                        "DELETE FROM interactions WHERE id IN (SELECT id FROM purge_ids)",
                        [],
                    )?;
                    tx.commit()?;
                    removed.feedback += f as u64;
                    removed.raw_payloads += r as u64;
                    removed.interactions += i as u64;
                    n += i;
                }
                n
            };
            if n == 0 {
                if removed != Removed::default() {
                    self.clear_wal();
                }
                return Ok(removed);
            }
            std::thread::yield_now();
        }
    }

    fn secret(&self, name: &str, init: &dyn Fn() -> Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let conn = self.writer();
        let found: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM secrets WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(v) = found {
            return Ok(v);
        }
        let value = init();
        conn.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, value],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_before_bounds_uuid_v7_ids_by_time() {
        let at = |ms: u64| {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                (ms % 1000) as u32 * 1_000_000,
            );
            uuid::Uuid::new_v7(ts).to_string()
        };
        let t = 1_764_000_000_123;
        let bound = ids_before(t as i64);
        assert!(at(t - 1) < bound);
        assert!(at(t) >= bound);
        assert!(at(t + 1) >= bound);
        assert!(at(1) < bound);
        assert_eq!(ids_before(-5), "00000000-0000");
    }

    #[test]
    fn purge_walks_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let conn = store.reader();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM interactions WHERE id < ?1 ORDER BY id LIMIT ?2",
            )
            .unwrap()
            .query_map(params!["x", 1], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("SEARCH") && p.contains("id<?")),
            "{plan:?}"
        );
    }
}
