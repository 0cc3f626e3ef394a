//! The embedded default store: one SQLite file in WAL mode.
//!
//! Two connections: the writer (used by the capture writer thread, which batches
//! rows into transactions) and a reader for the admin API, so reads never wait
//! behind a write transaction. Both sit behind `std::sync::Mutex` because every
//! call is blocking work done off the async runtime. Dataset scans open a
//! read-only connection of their own.
//!
//! This file opens the database (pragmas, migrations) and holds the
//! connections; each store trait is implemented in the file of its concern
//! (`interactions.rs`, `feedback.rs`, `registry.rs`, `datasets.rs`,
//! `privacy.rs`, `audit.rs`). `insert.rs` is the capture INSERT and the
//! writer connection that owns it; `cipher.rs` (one level up) seals the
//! user-text columns.

use std::path::Path;
use std::sync::Mutex;

mod audit;
mod datasets;
mod experiments;
mod feedback;
mod insert;
mod interactions;
mod privacy;
mod registry;

use rusqlite::{params, Connection};

use crate::crypto::vault::Vault;
use crate::store::StoreError;

/// Versioned schema changes, applied in order, each once, each in a transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "interactions",
        include_str!("../migrations/sqlite/0001_interactions.sql"),
    ),
    (
        2,
        "feedback",
        include_str!("../migrations/sqlite/0002_feedback.sql"),
    ),
    (
        3,
        "privacy",
        include_str!("../migrations/sqlite/0003_privacy.sql"),
    ),
    (
        4,
        "models",
        include_str!("../migrations/sqlite/0004_models.sql"),
    ),
    (
        5,
        "datasets",
        include_str!("../migrations/sqlite/0005_datasets.sql"),
    ),
    (
        6,
        "lean_interaction_indexes",
        include_str!("../migrations/sqlite/0006_lean_interaction_indexes.sql"),
    ),
    (
        7,
        "segment",
        include_str!("../migrations/sqlite/0007_segment.sql"),
    ),
    (
        8,
        "experiments",
        include_str!("../migrations/sqlite/0008_experiments.sql"),
    ),
    (
        9,
        "events_by_subject",
        include_str!("../migrations/sqlite/0009_events_by_subject.sql"),
    ),
];

/// Page size of a new database file, in bytes.
const PAGE_SIZE: u32 = 16384;

/// One SQLite database file and the connections to it.
pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<insert::WriterConn>,
    reader: Mutex<Connection>,
    /// Seals the user-text columns when `privacy.encrypt_at_rest` is on (see
    /// [`super::cipher`]).
    cipher: Option<Vault>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, None)
    }

    /// [`SqliteStore::open`], with the user-text columns sealed by `cipher`.
    pub fn open_with(path: &Path, cipher: Option<Vault>) -> Result<SqliteStore, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let writer = Connection::open(path).map_err(open_err)?;
        // 16 KiB pages for a new database: a captured row is written twice
        // (into the WAL, then by the checkpoint into the file), each page with
        // a frame header and its own write calls, and with four times fewer
        // pages the capture insert costs a third less CPU per row
        // (`examples/insert_bench`: 2.6 against 3.9 µs). Bodies up to about
        // 4 KiB also stay in their row instead of overflow pages. A database
        // made with other pages keeps them: WAL mode cannot change the size.
        writer
            .execute_batch(&format!("PRAGMA page_size={PAGE_SIZE};"))
            .map_err(open_err)?;
        // WAL lets the admin reader run beside the writer; synchronous=NORMAL
        // keeps every committed transaction across a process crash (kill -9) and
        // only risks the last commits on power loss, which ARCHITECTURE.md states.
        //
        // secure_delete=ON zeroes what a delete frees, in its page and in
        // whole freed pages, so an erased or expired row leaves no readable
        // copy in the file; it also zeroes the space a cell leaves behind when
        // a page split moves it, so no stale copy of a row outlives the row.
        // Capture only inserts, so it costs the hot path nothing measurable
        // (`examples/insert_bench`, 100k rows in batches of 200, three runs
        // each side by side: 4.3-4.7 us of CPU per row with it, 4.7-5.3 without).
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
            )
            .map_err(open_err)?;
        migrate(&writer)?;
        let reader = Connection::open(path).map_err(open_err)?;
        reader
            .execute_batch("PRAGMA busy_timeout=5000; PRAGMA query_only=ON;")
            .map_err(open_err)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(insert::WriterConn::new(writer)),
            reader: Mutex::new(reader),
            cipher,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, insert::WriterConn> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A read-only connection of its own, for long reads (dataset scans) that
    /// must not hold the shared reader.
    fn own_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout=5000;")?;
        Ok(conn)
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    apply_migrations(conn, MIGRATIONS)
}

fn apply_migrations(conn: &Connection, migrations: &[(i64, &str, &str)]) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
    )?;
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let current = applied.iter().copied().max().unwrap_or(0);
    let known = migrations.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    // Every migration not yet applied runs, not only those above the highest
    // applied: a migration numbered below one that a build without it already
    // applied (branches merged in either order) still gets its turn.
    for (version, name, sql) in migrations.iter().filter(|m| !applied.contains(&m.0)) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            params![version, name, crate::clock::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::interactions::ROWS_PER_INSERT;
    use super::*;
    use crate::store::{
        DatasetStore, FeedbackQuery, FeedbackRow, FeedbackStore, InteractionRow, InteractionStore,
        PrivacyStore, ScanQuery,
    };

    /// A plain row with bodies, tokens and metadata, for the tests of every
    /// concern.
    pub(super) fn row(id: &str, route: &str) -> InteractionRow {
        InteractionRow {
            id: id.into(),
            created_at_ms: 1,
            endpoint: "chat.completions".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            route: route.into(),
            version: "default".into(),
            upstream: "http://u/v1".into(),
            status: 200,
            outcome: "ok".into(),
            request_body: "{\"model\":\"m\"}".into(),
            response_body: Some("{}".into()),
            latency_ms: 1.5,
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            total_tokens: Some(7),
            metadata: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        }
    }

    /// With a store key, the user-text columns are sealed: the file holds
    /// none of their text, rows read back as written, rows written before
    /// encryption was on still read, and without the key a sealed row is an
    /// error that says what is missing rather than garbage.
    #[test]
    fn encrypted_columns_round_trip_and_leave_no_text_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let vault = || Some(Vault::new(&[9; 32], "s1"));
        let marker = "ultramarine-otter-5521";
        let sealed_row = |i: usize| InteractionRow {
            request_body: format!("{{\"content\":\"{marker} request {i}\"}}"),
            response_body: Some(format!("{marker} answer {i}")),
            metadata: [("note".into(), format!("{marker} meta"))].into(),
            error: (i % 2 == 0).then(|| format!("{marker} error")),
            ..row(&format!("{i:03}"), "r")
        };
        // A row from before encryption was turned on.
        let plain = SqliteStore::open(&path).unwrap();
        plain.insert_interactions(&[row("000", "r")]).unwrap();
        drop(plain);
        let store = SqliteStore::open_with(&path, vault()).unwrap();
        let rows: Vec<InteractionRow> = (1..=ROWS_PER_INSERT + 3).map(sealed_row).collect();
        store.insert_interactions(&rows).unwrap();
        let fb = FeedbackRow {
            id: "f1".into(),
            interaction_id: "001".into(),
            kind: "comment".into(),
            value: serde_json::json!(format!("{marker} comment")),
            metadata: serde_json::json!({"m": marker})
                .as_object()
                .unwrap()
                .clone(),
            ..Default::default()
        };
        store.insert_feedback(&fb).unwrap();
        for want in &rows {
            assert_eq!(&store.get_interaction(&want.id).unwrap().unwrap(), want);
        }
        assert_eq!(
            store.get_interaction("000").unwrap().unwrap(),
            row("000", "r")
        );
        let got = store
            .list_feedback(&FeedbackQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(got[0].value, fb.value);
        assert_eq!(got[0].metadata, fb.metadata);
        let mut scanned = 0;
        store
            .scan(&ScanQuery::default(), &mut |s| {
                scanned += 1;
                assert!(s.interaction.id == "000" || s.interaction.request_body.contains(marker));
                true
            })
            .unwrap();
        assert_eq!(scanned, rows.len() + 1);
        drop(store);
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            bytes.extend(std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default());
        }
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));

        let keyless = SqliteStore::open(&path).unwrap();
        let err = keyless.get_interaction("001").unwrap_err().to_string();
        assert!(err.contains("encrypt_at_rest"), "{err}");
        let wrong = SqliteStore::open_with(&path, Some(Vault::new(&[1; 32], "s1"))).unwrap();
        assert!(wrong.get_interaction("001").is_err());
    }

    #[test]
    fn new_databases_get_large_pages_and_old_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |store: &SqliteStore| -> i64 {
            store
                .reader()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let new = SqliteStore::open(&dir.path().join("new.db")).unwrap();
        assert_eq!(page_size(&new), i64::from(PAGE_SIZE));
        // A database made before, with SQLite's default 4 KiB pages, opens and
        // takes rows as it is.
        let old_path = dir.path().join("old.db");
        Connection::open(&old_path)
            .unwrap()
            .execute_batch("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
            .unwrap();
        let old = SqliteStore::open(&old_path).unwrap();
        assert_eq!(page_size(&old), 4096);
        old.insert_interactions(&[row("01", "a")]).unwrap();
        assert_eq!(old.stats().unwrap().interactions_total, 1);
    }

    #[test]
    fn reopen_keeps_data_and_schema_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let first = {
            let store = SqliteStore::open(&path).unwrap();
            store.insert_interactions(&[row("01", "a")]).unwrap();
            store.secret("k", &|| vec![1, 2, 3]).unwrap()
        };
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.stats().unwrap().interactions_total, 1);
        assert_eq!(store.secret("k", &|| vec![9]).unwrap(), first);
    }

    /// Dropping the store closes the database: the capture statements are
    /// finalized before the writer connection, so SQLite lets it close, and
    /// the last connection to close checkpoints the WAL and removes it.
    #[test]
    fn closing_the_store_closes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let rows: Vec<InteractionRow> = (0..ROWS_PER_INSERT + 1)
            .map(|i| row(&format!("{i:03}"), "a"))
            .collect();
        store.insert_interactions(&rows).unwrap();
        let wal = dir.path().join("f.db-wal");
        assert!(wal.exists());
        drop(store);
        assert!(!wal.exists(), "the WAL outlived the store");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.stats().unwrap().interactions_total, rows.len() as u64);
    }

    #[test]
    fn a_migration_numbered_below_an_applied_one_still_runs() {
        let conn = Connection::open_in_memory().unwrap();
        let one = (1, "one", "CREATE TABLE a (x)");
        let two = (2, "two", "CREATE TABLE b (x)");
        let three = (3, "three", "CREATE TABLE c (x)");
        apply_migrations(&conn, &[one, three]).unwrap();
        apply_migrations(&conn, &[one, two, three]).unwrap();
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, [1, 2, 3]);
        conn.execute("INSERT INTO b VALUES (1)", []).unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", [])
            .unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).err().expect("must refuse");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
