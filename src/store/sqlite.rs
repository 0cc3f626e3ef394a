//! The embedded default store: one SQLite file in WAL mode.
//!
//! Two connections: the writer (used by the capture writer thread, which batches
//! rows into transactions) and a reader for the admin API, so reads never wait
//! behind a write transaction. Both sit behind `std::sync::Mutex` because every
//! call is blocking work done off the async runtime.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

mod insert;

use rusqlite::{params, Connection, OptionalExtension};

use super::cipher;
use super::{
    DatasetRow, EventRow, FeedbackInsert, FeedbackQuery, FeedbackRow, InteractionRow, ListQuery,
    PurgeCutoffs, RegistryWrite, Removed, RolloutRow, RouteRow, RoutingSnapshot, ScanQuery,
    Scanned, Stats, Store, StoreError, VersionRow, VersionStats,
};
use crate::crypto::vault::{Sealed, Vault};

/// Versioned schema changes, applied in order, each once, each in a transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "interactions",
        include_str!("migrations/sqlite/0001_interactions.sql"),
    ),
    (
        2,
        "feedback",
        include_str!("migrations/sqlite/0002_feedback.sql"),
    ),
    (
        3,
        "privacy",
        include_str!("migrations/sqlite/0003_privacy.sql"),
    ),
    (
        4,
        "models",
        include_str!("migrations/sqlite/0004_models.sql"),
    ),
    (
        5,
        "datasets",
        include_str!("migrations/sqlite/0005_datasets.sql"),
    ),
    (
        6,
        "lean_interaction_indexes",
        include_str!("migrations/sqlite/0006_lean_interaction_indexes.sql"),
    ),
    (
        7,
        "segment",
        include_str!("migrations/sqlite/0007_segment.sql"),
    ),
];

/// Page size of a new database file, in bytes.
const PAGE_SIZE: u32 = 16384;

pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<WriterConn>,
    reader: Mutex<Connection>,
    /// Seals the user-text columns when `privacy.encrypt_at_rest` is on (see
    /// [`super::cipher`]).
    cipher: Option<Vault>,
}

/// The writer connection and the capture inserts prepared on it (on first
/// use). Fields drop in declaration order, so the statements are finalized
/// before the connection closes, as [`insert`] requires.
struct WriterConn {
    inserts: Option<Inserts>,
    conn: Connection,
}

/// One statement of [`ROWS_PER_INSERT`] rows and one of a single row.
struct Inserts {
    many: insert::Insert,
    one: insert::Insert,
}

impl std::ops::Deref for WriterConn {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
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
            writer: Mutex::new(WriterConn {
                inserts: None,
                conn: writer,
            }),
            reader: Mutex::new(reader),
            cipher,
        })
    }

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
            let w = self.writer();
            let done = w
                .conn
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

    fn writer(&self) -> std::sync::MutexGuard<'_, WriterConn> {
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

/// The WHERE clause and its parameters for a scan; only the filters that are
/// set appear. The unary `+` keeps SQLite off the (route, version, time)
/// index: with it the planner would read the route's rows out of id order and
/// sort all of them, bodies included, in a temporary b-tree before the first
/// row streams. Walking the primary key in id order and filtering is what a
/// scan wants.
fn scan_filter(q: &ScanQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args = Vec::new();
    let mut add = |clause: &str, v: V| {
        args.push(v);
        clauses.push(clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(r) = &q.route {
        add("+route = ?", V::Text(r.clone()));
    }
    if !q.versions.is_empty() {
        let list = serde_json::to_string(&q.versions).unwrap_or_default();
        add(
            "+version IN (SELECT value FROM json_each(?))",
            V::Text(list),
        );
    }
    if let Some(t) = q.since_ms {
        add("created_at_ms >= ?", V::Integer(t));
    }
    if let Some(t) = q.until_ms {
        add("created_at_ms < ?", V::Integer(t));
    }
    if let Some(e) = &q.endpoint {
        add("endpoint = ?", V::Text(e.clone()));
    }
    if let Some(m) = &q.requested_model {
        add("requested_model = ?", V::Text(m.clone()));
    }
    if let Some(s) = &q.segment {
        add("segment = ?", V::Text(s.clone()));
    }
    (clauses.join(" AND "), args)
}

/// Feedback in the order a scan attaches it: oldest first, ties by id.
fn sort_feedback(feedback: &mut [FeedbackRow]) {
    feedback.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
}

const DATASET_COLUMNS: &str =
    "id, created_at_ms, created_by, route, parent, content_hash, manifest";

fn dataset_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<DatasetRow> {
    let manifest: String = r.get(6)?;
    Ok(DatasetRow {
        id: r.get(0)?,
        created_at_ms: r.get(1)?,
        created_by: r.get(2)?,
        route: r.get(3)?,
        parent: r.get(4)?,
        content_hash: r.get(5)?,
        manifest: serde_json::from_str(&manifest).unwrap_or_default(),
    })
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

/// The smallest interaction id minted at or after `ms`: ids are UUIDv7 in
/// lowercase hex, whose first 12 digits are the Unix time in milliseconds, so
/// `id < ids_before(ms)` selects exactly the interactions received before `ms`
/// and is a range of the primary key. Retention measures age this way rather
/// than by `created_at_ms`, which would need an index written on every insert.
fn ids_before(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1);
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

const COLUMNS: &str = "id, created_at_ms, endpoint, method, path, route, requested_model, version, upstream, status, outcome, stream, truncated, finish_reason, latency_ms, ttft_ms, prompt_tokens, completion_tokens, total_tokens, tokens_estimated, app, user_hash, session_id, metadata, error, redaction, pii_found, segment";

const VERSION_COLUMNS: &str = "route, name, upstream_url, upstream_model, api_key_env, connect_timeout_ms, first_byte_timeout_ms, total_timeout_ms, headers, system_prompt, state, weight_bp, created_at_ms, created_by, reason, updated_at_ms";

fn version_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRow> {
    let headers: Option<String> = r.get(8)?;
    Ok(VersionRow {
        route: r.get(0)?,
        name: r.get(1)?,
        upstream_url: r.get(2)?,
        upstream_model: r.get(3)?,
        api_key_env: r.get(4)?,
        connect_timeout_ms: r.get(5)?,
        first_byte_timeout_ms: r.get(6)?,
        total_timeout_ms: r.get(7)?,
        headers: headers
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default(),
        system_prompt: r.get(9)?,
        state: r.get(10)?,
        weight_bp: r.get(11)?,
        created_at_ms: r.get(12)?,
        created_by: r.get(13)?,
        reason: r.get(14)?,
        updated_at_ms: r.get(15)?,
    })
}

const ROLLOUT_COLUMNS: &str =
    "id, route, canary, baseline, plan, status, step, step_started_ms, started_at_ms, finished_at_ms, reason, updated_at_ms";

fn rollout_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<RolloutRow> {
    let plan: String = r.get(4)?;
    Ok(RolloutRow {
        id: r.get(0)?,
        route: r.get(1)?,
        canary: r.get(2)?,
        baseline: r.get(3)?,
        plan: serde_json::from_str(&plan).unwrap_or_default(),
        status: r.get(5)?,
        step: r.get(6)?,
        step_started_ms: r.get(7)?,
        started_at_ms: r.get(8)?,
        finished_at_ms: r.get(9)?,
        reason: r.get(10)?,
        updated_at_ms: r.get(11)?,
    })
}

const FEEDBACK_COLUMNS: &str = "id, interaction_id, created_at_ms, route, version, type, value, label, score, scale_min, scale_max, app, user_hash, metadata, idempotency_key, request_hash";

fn feedback_from(r: &rusqlite::Row<'_>, vault: Option<&Vault>) -> rusqlite::Result<FeedbackRow> {
    let id: String = r.get(0)?;
    let value = cipher::text_at(r, 6, vault, &id, "value")?.unwrap_or_default();
    let scale: (Option<f64>, Option<f64>) = (r.get(9)?, r.get(10)?);
    let metadata = cipher::text_at(r, 13, vault, &id, "metadata")?;
    Ok(FeedbackRow {
        id,
        interaction_id: r.get(1)?,
        created_at_ms: r.get(2)?,
        route: r.get(3)?,
        version: r.get(4)?,
        kind: r.get(5)?,
        value: serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value)),
        label: r.get(7)?,
        score: r.get(8)?,
        scale: match scale {
            (Some(a), Some(b)) => Some([a, b]),
            _ => None,
        },
        app: r.get(11)?,
        user_hash: r.get(12)?,
        metadata: metadata
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        idempotency_key: r.get(14)?,
        request_hash: r.get(15)?,
    })
}

fn row_from(
    r: &rusqlite::Row<'_>,
    with_bodies: bool,
    vault: Option<&Vault>,
) -> rusqlite::Result<InteractionRow> {
    let id: String = r.get(0)?;
    let metadata = cipher::text_at(r, 23, vault, &id, "metadata")?;
    let error = cipher::text_at(r, 24, vault, &id, "error")?;
    let mut row = InteractionRow {
        created_at_ms: r.get(1)?,
        endpoint: Cow::Owned(r.get(2)?),
        method: Cow::Owned(r.get(3)?),
        path: Cow::Owned(r.get(4)?),
        route: r.get(5)?,
        requested_model: r.get(6)?,
        version: r.get(7)?,
        upstream: r.get(8)?,
        status: r.get(9)?,
        outcome: Cow::Owned(r.get(10)?),
        stream: r.get(11)?,
        truncated: r.get(12)?,
        finish_reason: r.get(13)?,
        latency_ms: r.get(14)?,
        ttft_ms: r.get(15)?,
        prompt_tokens: r.get(16)?,
        completion_tokens: r.get(17)?,
        total_tokens: r.get(18)?,
        tokens_estimated: r.get(19)?,
        app: r.get(20)?,
        user_hash: r.get(21)?,
        session_id: r.get(22)?,
        metadata: metadata
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        error,
        redaction: Cow::Owned(r.get(25)?),
        pii_found: r.get(26)?,
        segment: r.get(27)?,
        ..Default::default()
    };
    if with_bodies {
        row.request_body = cipher::text_at(r, 28, vault, &id, "request_body")?.unwrap_or_default();
        row.response_body = cipher::text_at(r, 29, vault, &id, "response_body")?;
    }
    row.id = id;
    Ok(row)
}

/// Interactions per multi-row INSERT statement.
const ROWS_PER_INSERT: usize = 16;
/// Values bound per interaction row, in [`row_values`]'s order.
const INSERT_COLUMNS: usize = 30;

/// `INSERT OR IGNORE INTO interactions ... VALUES (...), ...` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO interactions (id, created_at_ms, endpoint, method, path, route, requested_model, version, upstream, status, outcome, stream, truncated, finish_reason, latency_ms, ttft_ms, prompt_tokens, completion_tokens, total_tokens, tokens_estimated, app, user_hash, session_id, metadata, error, redaction, pii_found, segment, request_body, response_body) VALUES ",
    );
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=INSERT_COLUMNS {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(r * INSERT_COLUMNS + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// The stored form of a row's metadata: a JSON object, or NULL when empty.
fn metadata_json(row: &InteractionRow) -> Option<String> {
    if row.metadata.is_empty() {
        None
    } else {
        serde_json::to_string(&row.metadata).ok()
    }
}

/// A row's user-text columns as they are bound: as text, or sealed.
#[derive(Default)]
struct Stored {
    metadata: Option<String>,
    /// Request body, response body, metadata and error, sealed, when the
    /// store encrypts at rest.
    sealed: Option<[Option<Vec<u8>>; 4]>,
}

impl Stored {
    fn of(row: &InteractionRow, vault: Option<&Vault>) -> Stored {
        let metadata = metadata_json(row);
        let sealed = vault.map(|v| {
            let seal = |t: Option<&str>, column| t.map(|t| cipher::seal(v, t, &row.id, column));
            [
                seal(Some(&row.request_body), "request_body"),
                seal(row.response_body.as_deref(), "response_body"),
                seal(metadata.as_deref(), "metadata"),
                seal(row.error.as_deref(), "error"),
            ]
        });
        Stored { metadata, sealed }
    }

    /// The bound value of sealed column `i`, else `plain`.
    fn value<'a>(&'a self, i: usize, plain: Option<&'a str>) -> insert::Value<'a> {
        match &self.sealed {
            Some(s) => s[i]
                .as_deref()
                .map_or(insert::Value::Null, insert::Value::Blob),
            None => plain.into(),
        }
    }
}

/// One row's values, in [`insert_sql`]'s column order.
fn row_values<'a>(
    row: &'a InteractionRow,
    stored: &'a Stored,
) -> [insert::Value<'a>; INSERT_COLUMNS] {
    let metadata = stored.metadata.as_deref();
    [
        (&row.id).into(),
        row.created_at_ms.into(),
        (&row.endpoint).into(),
        (&row.method).into(),
        (&row.path).into(),
        (&row.route).into(),
        row.requested_model.as_deref().into(),
        (&row.version).into(),
        (&row.upstream).into(),
        i64::from(row.status).into(),
        (&row.outcome).into(),
        row.stream.into(),
        row.truncated.into(),
        row.finish_reason.as_deref().into(),
        row.latency_ms.into(),
        row.ttft_ms.into(),
        row.prompt_tokens.into(),
        row.completion_tokens.into(),
        row.total_tokens.into(),
        row.tokens_estimated.into(),
        row.app.as_deref().into(),
        row.user_hash.as_deref().into(),
        row.session_id.as_deref().into(),
        stored.value(2, metadata),
        stored.value(3, row.error.as_deref()),
        (&row.redaction).into(),
        row.pii_found.into(),
        row.segment.as_deref().into(),
        stored.value(0, Some(&row.request_body)),
        stored.value(1, row.response_body.as_deref()),
    ]
}

impl Store for SqliteStore {
    fn insert_interactions(&self, rows: &[InteractionRow]) -> Result<(), StoreError> {
        let mut guard = self.writer();
        let w = &mut *guard;
        if w.inserts.is_none() {
            w.inserts = Some(Inserts {
                many: insert::Insert::prepare(&w.conn, &insert_sql(ROWS_PER_INSERT))?,
                one: insert::Insert::prepare(&w.conn, &insert_sql(1))?,
            });
        }
        let inserts = w.inserts.as_mut().expect("prepared above");
        let tx = w.conn.transaction()?;
        {
            // Rows go in statements of ROWS_PER_INSERT rows, the rest one by
            // one: a statement's fixed cost (reset, step, program start) is
            // then paid once per many rows.
            let mut raw_stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO raw_payloads (interaction_id, created_at_ms, key_id, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
            let vault = self.cipher.as_ref();
            for chunk in chunks.by_ref() {
                let stored: Vec<Stored> = chunk.iter().map(|r| Stored::of(r, vault)).collect();
                inserts.many.run(
                    chunk
                        .iter()
                        .zip(&stored)
                        .flat_map(|(row, st)| row_values(row, st)),
                )?;
            }
            for row in chunks.remainder() {
                let stored = Stored::of(row, vault);
                inserts.one.run(row_values(row, &stored))?;
            }
            for row in rows {
                if let Some(raw) = &row.raw {
                    raw_stmt.execute(params![
                        row.id,
                        row.created_at_ms,
                        raw.key_id,
                        raw.nonce,
                        raw.ciphertext
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn list_interactions(&self, q: &ListQuery) -> Result<Vec<InteractionRow>, StoreError> {
        let conn = self.reader();
        let sql = format!(
            "SELECT {COLUMNS} FROM interactions
             WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR route = ?2)
               AND (?4 IS NULL OR segment = ?4)
             ORDER BY id DESC LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![q.before, q.route, q.limit as i64, q.segment], |r| {
                row_from(r, false, self.cipher.as_ref())
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn get_interaction(&self, id: &str) -> Result<Option<InteractionRow>, StoreError> {
        let conn = self.reader();
        let sql = format!(
            "SELECT {COLUMNS}, request_body, response_body FROM interactions WHERE id = ?1"
        );
        let row = conn
            .prepare_cached(&sql)?
            .query_row(params![id], |r| row_from(r, true, self.cipher.as_ref()))
            .optional()?;
        Ok(row)
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        let conn = self.reader();
        let mut stats = Stats::default();
        let (total, prompt, completion, first, last): (i64, i64, i64, Option<i64>, Option<i64>) =
            conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
                        MIN(created_at_ms), MAX(created_at_ms) FROM interactions",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
        stats.interactions_total = total as u64;
        stats.prompt_tokens = prompt as u64;
        stats.completion_tokens = completion as u64;
        stats.first_at_ms = first;
        stats.last_at_ms = last;
        for (table, column, map) in [
            ("interactions", "outcome", &mut stats.by_outcome),
            ("interactions", "route", &mut stats.by_route),
            ("interactions", "endpoint", &mut stats.by_endpoint),
            ("interactions", "segment", &mut stats.by_segment),
            ("feedback", "type", &mut stats.feedback_by_type),
            ("feedback", "label", &mut stats.feedback_by_label),
        ] {
            let mut stmt = conn.prepare(&format!(
                "SELECT {column}, COUNT(*) FROM {table} WHERE {column} IS NOT NULL GROUP BY {column}"
            ))?;
            for pair in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (k, v) = pair?;
                map.insert(k, v as u64);
            }
        }
        stats.feedback_total = stats.feedback_by_type.values().sum();
        Ok(stats)
    }

    fn interaction_served(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let conn = self.reader();
        let found = conn
            .prepare_cached("SELECT route, version FROM interactions WHERE id = ?1")?
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(found)
    }

    fn insert_feedback(&self, row: &FeedbackRow) -> Result<FeedbackInsert, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        if let Some(key) = &row.idempotency_key {
            let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE COALESCE(app, '') = ?1 AND idempotency_key = ?2");
            let existing = tx
                .prepare_cached(&sql)?
                .query_row(params![row.app.as_deref().unwrap_or(""), key], |r| {
                    feedback_from(r, self.cipher.as_ref())
                })
                .optional()?;
            if let Some(existing) = existing {
                return Ok(FeedbackInsert::Existing(Box::new(existing)));
            }
        }
        let metadata = (!row.metadata.is_empty())
            .then(|| serde_json::Value::Object(row.metadata.clone()).to_string());
        let value = row.value.to_string();
        let seal = |text: &str, column: &str| -> rusqlite::types::Value {
            match &self.cipher {
                Some(v) => rusqlite::types::Value::Blob(cipher::seal(v, text, &row.id, column)),
                None => rusqlite::types::Value::Text(text.to_string()),
            }
        };
        let value = seal(&value, "value");
        let metadata = metadata.map(|m| seal(&m, "metadata"));
        tx.prepare_cached(
            &format!("INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
        )?
        .execute(params![
                row.id,
                row.interaction_id,
                row.created_at_ms,
                row.route,
                row.version,
                row.kind,
                value,
                row.label,
                row.score,
                row.scale.map(|s| s[0]),
                row.scale.map(|s| s[1]),
                row.app,
                row.user_hash,
                metadata,
                row.idempotency_key,
                row.request_hash,
            ],
        )?;
        tx.commit()?;
        Ok(FeedbackInsert::Created)
    }

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

    fn routing_generation(&self) -> Result<i64, StoreError> {
        let conn = self.reader();
        Ok(conn.query_row(
            "SELECT generation FROM routing_generation WHERE id = 1",
            [],
            |r| r.get(0),
        )?)
    }

    fn load_routing(&self) -> Result<RoutingSnapshot, StoreError> {
        let mut conn = self.reader();
        // One read transaction, so routes, versions and generation agree.
        let tx = conn.transaction()?;
        let generation = tx.query_row(
            "SELECT generation FROM routing_generation WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let routes = tx
            .prepare(
                "SELECT name, retry_on_stable, created_at_ms, created_by FROM routes ORDER BY name",
            )?
            .query_map([], |r| {
                Ok(RouteRow {
                    name: r.get(0)?,
                    retry_on_stable: r.get(1)?,
                    created_at_ms: r.get(2)?,
                    created_by: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let versions = tx
            .prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions ORDER BY route, created_at_ms, name"
            ))?
            .query_map([], version_from)?
            .collect::<Result<Vec<_>, _>>()?;
        drop(tx);
        Ok(RoutingSnapshot {
            generation,
            routes,
            versions,
        })
    }

    fn apply_registry(&self, w: &RegistryWrite) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        for r in &w.routes {
            tx.execute(
                "INSERT INTO routes (name, retry_on_stable, created_at_ms, created_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET retry_on_stable = excluded.retry_on_stable",
                params![r.name, r.retry_on_stable, r.created_at_ms, r.created_by],
            )?;
        }
        for v in &w.new_versions {
            let headers = (!v.headers.is_empty())
                .then(|| serde_json::to_string(&v.headers).unwrap_or_default());
            let inserted = tx.execute(
                &format!("INSERT OR IGNORE INTO versions ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
                params![
                    v.route, v.name, v.upstream_url, v.upstream_model, v.api_key_env, v.connect_timeout_ms,
                    v.first_byte_timeout_ms, v.total_timeout_ms, headers, v.system_prompt, v.state, v.weight_bp,
                    v.created_at_ms, v.created_by, v.reason, v.updated_at_ms
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "version {} of route {} already exists; versions are immutable, register a new name",
                    v.name, v.route
                )));
            }
        }
        let now = crate::clock::now_ms();
        for u in &w.updates {
            tx.execute(
                "UPDATE versions SET state = ?3, weight_bp = ?4, reason = COALESCE(?5, reason), updated_at_ms = ?6
                 WHERE route = ?1 AND name = ?2",
                params![u.route, u.name, u.state, u.weight_bp, u.reason, now],
            )?;
        }
        if let Some(r) = &w.rollout {
            tx.execute(
                "INSERT INTO rollouts (id, route, canary, baseline, plan, status, step, step_started_ms, started_at_ms, finished_at_ms, reason, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, step = excluded.step,
                    step_started_ms = excluded.step_started_ms, finished_at_ms = excluded.finished_at_ms,
                    reason = excluded.reason, updated_at_ms = excluded.updated_at_ms",
                params![
                    r.id, r.route, r.canary, r.baseline, r.plan.to_string(), r.status, r.step, r.step_started_ms,
                    r.started_at_ms, r.finished_at_ms, r.reason, r.updated_at_ms
                ],
            )?;
        }
        for e in &w.events {
            tx.execute(
                "INSERT INTO events (id, at_ms, actor, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.id, e.at_ms, e.actor, e.kind, e.subject, e.detail.to_string()],
            )?;
        }
        tx.execute(
            "UPDATE routing_generation SET generation = generation + 1 WHERE id = 1",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn list_rollouts(
        &self,
        route: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<RolloutRow>, StoreError> {
        let conn = self.reader();
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {ROLLOUT_COLUMNS} FROM rollouts
                 WHERE (?1 IS NULL OR route = ?1) AND (?2 = 0 OR status IN ('running', 'paused'))
                 ORDER BY id DESC LIMIT 200"
            ))?
            .query_map(params![route, active_only], rollout_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn get_rollout(&self, id: &str) -> Result<Option<RolloutRow>, StoreError> {
        let conn = self.reader();
        let found = conn
            .prepare_cached(&format!(
                "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?1"
            ))?
            .query_row(params![id], rollout_from)
            .optional()?;
        Ok(found)
    }

    fn version_stats(
        &self,
        route: &str,
        version: &str,
        since_ms: i64,
    ) -> Result<VersionStats, StoreError> {
        let conn = self.reader();
        let (requests, errors): (i64, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(status >= 500 OR outcome = 'timeout'), 0) FROM interactions
             WHERE route = ?1 AND version = ?2 AND created_at_ms >= ?3 AND outcome != 'client_closed'",
            params![route, version, since_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // The p95 is taken over the most recent requests only (at most
        // P95_SAMPLE): sorting a whole busy window every controller tick would
        // cost more than the estimate gains.
        const P95_SAMPLE: i64 = 10_000;
        let p95_latency_ms = if requests > 0 {
            let n = requests.min(P95_SAMPLE);
            let offset = ((n as f64) * 0.95).ceil() as i64 - 1;
            conn.query_row(
                "SELECT latency_ms FROM (
                    SELECT latency_ms FROM interactions
                    WHERE route = ?1 AND version = ?2 AND created_at_ms >= ?3 AND outcome != 'client_closed'
                    ORDER BY created_at_ms DESC LIMIT ?5)
                 ORDER BY latency_ms LIMIT 1 OFFSET ?4",
                params![route, version, since_ms, offset.max(0), P95_SAMPLE],
                |r| r.get(0),
            )
            .optional()?
        } else {
            None
        };
        let (up, down): (i64, i64) = conn.query_row(
            "SELECT COALESCE(SUM(label = 'up'), 0), COALESCE(SUM(label = 'down'), 0) FROM feedback
             WHERE route = ?1 AND version = ?2 AND type = 'thumbs' AND created_at_ms >= ?3",
            params![route, version, since_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(VersionStats {
            requests: requests as u64,
            errors: errors as u64,
            p95_latency_ms,
            thumbs_up: up as u64,
            thumbs_down: down as u64,
        })
    }

    fn segment_stats(
        &self,
        route: &str,
        version: &str,
        since_ms: i64,
    ) -> Result<BTreeMap<String, VersionStats>, StoreError> {
        let conn = self.reader();
        let mut out: BTreeMap<String, VersionStats> = BTreeMap::new();
        // Each query answers (segment, a, b) rows; its setter puts a and b in place.
        type Set = fn(&mut VersionStats, u64, u64);
        let queries: [(&str, Set); 2] = [
            (
                "SELECT COALESCE(segment, ''), COUNT(*), COALESCE(SUM(status >= 500 OR outcome = 'timeout'), 0)
                 FROM interactions
                 WHERE route = ?1 AND version = ?2 AND created_at_ms >= ?3 AND outcome != 'client_closed'
                 GROUP BY 1",
                |s, requests, errors| (s.requests, s.errors) = (requests, errors),
            ),
            (
                "SELECT COALESCE(i.segment, ''), COALESCE(SUM(f.label = 'up'), 0), COALESCE(SUM(f.label = 'down'), 0)
                 FROM feedback f JOIN interactions i ON i.id = f.interaction_id
                 WHERE f.route = ?1 AND f.version = ?2 AND f.type = 'thumbs' AND f.created_at_ms >= ?3
                 GROUP BY 1",
                |s, up, down| (s.thumbs_up, s.thumbs_down) = (up, down),
            ),
        ];
        for (sql, set) in queries {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params![route, version, since_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (seg, a, b) = row?;
                set(out.entry(seg).or_default(), a as u64, b as u64);
            }
        }
        Ok(out)
    }

    fn record_event(&self, e: &EventRow) -> Result<(), StoreError> {
        let conn = self.writer();
        conn.execute(
            "INSERT INTO events (id, at_ms, actor, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.id, e.at_ms, e.actor, e.kind, e.subject, e.detail.to_string()],
        )?;
        Ok(())
    }

    fn list_events(
        &self,
        limit: usize,
        before: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.reader();
        let rows = conn
            .prepare_cached(
                "SELECT id, at_ms, actor, kind, subject, detail FROM events
                 WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR kind = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(params![before, kind, limit as i64], |r| {
                let detail: Option<String> = r.get(5)?;
                Ok(EventRow {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    actor: r.get(2)?,
                    kind: r.get(3)?,
                    subject: r.get(4)?,
                    detail: detail
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or_default(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackRow>, StoreError> {
        let conn = self.reader();
        let sql = format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback
             WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR created_at_ms >= ?2)
               AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR route = ?4)
               AND (?5 IS NULL OR interaction_id = ?5)
             ORDER BY id DESC LIMIT ?6"
        );
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(
                params![
                    q.before,
                    q.since_ms,
                    q.kind,
                    q.route,
                    q.interaction_id,
                    q.limit as i64
                ],
                |r| feedback_from(r, self.cipher.as_ref()),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn count_scan(&self, q: &ScanQuery) -> Result<u64, StoreError> {
        let conn = self.own_reader()?;
        let (filter, args) = scan_filter(q);
        let n: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM interactions WHERE {filter}"),
            rusqlite::params_from_iter(args),
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn scan(&self, q: &ScanQuery, each: &mut dyn FnMut(Scanned) -> bool) -> Result<(), StoreError> {
        let conn = self.own_reader()?;
        // One read transaction: both cursors see the same snapshot.
        let tx = conn.unchecked_transaction()?;
        let (filter, args) = scan_filter(q);
        let mut stmt = tx.prepare(&format!(
            "SELECT {COLUMNS}, request_body, response_body FROM interactions WHERE {filter} ORDER BY id"
        ))?;
        // Feedback in interaction order (its index), merged with the scan:
        // feedback on interactions outside the selection is skipped over.
        let mut fstmt = tx.prepare(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE ?1 IS NULL OR route = ?1 ORDER BY interaction_id"
        ))?;
        let mut frows = fstmt.query(params![q.route])?;
        let mut pending = match frows.next()? {
            Some(r) => Some(feedback_from(r, self.cipher.as_ref())?),
            None => None,
        };
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            let interaction = row_from(r, true, self.cipher.as_ref())?;
            let mut feedback = Vec::new();
            while let Some(f) = pending.take() {
                if f.interaction_id.as_str() > interaction.id.as_str() {
                    pending = Some(f);
                    break;
                }
                if f.interaction_id == interaction.id {
                    feedback.push(f);
                }
                pending = match frows.next()? {
                    Some(r) => Some(feedback_from(r, self.cipher.as_ref())?),
                    None => None,
                };
            }
            sort_feedback(&mut feedback);
            if !each(Scanned {
                interaction,
                feedback,
            }) {
                break;
            }
        }
        Ok(())
    }

    fn scan_ids(&self, ids: &[String]) -> Result<Vec<Scanned>, StoreError> {
        let conn = self.own_reader()?;
        let tx = conn.unchecked_transaction()?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = serde_json::to_string(chunk).unwrap_or_default();
            let mut by_id: std::collections::HashMap<String, Vec<FeedbackRow>> =
                std::collections::HashMap::new();
            let mut fstmt = tx.prepare_cached(&format!(
                "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE interaction_id IN (SELECT value FROM json_each(?1))"
            ))?;
            for f in fstmt.query_map(params![list], |r| feedback_from(r, self.cipher.as_ref()))? {
                let f = f?;
                by_id.entry(f.interaction_id.clone()).or_default().push(f);
            }
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {COLUMNS}, request_body, response_body FROM interactions WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
            ))?;
            for row in stmt.query_map(params![list], |r| row_from(r, true, self.cipher.as_ref()))? {
                let interaction = row?;
                let mut feedback = by_id.remove(&interaction.id).unwrap_or_default();
                sort_feedback(&mut feedback);
                out.push(Scanned {
                    interaction,
                    feedback,
                });
            }
        }
        Ok(out)
    }

    fn insert_dataset(&self, row: &DatasetRow) -> Result<(), StoreError> {
        let conn = self.writer();
        let n = conn.execute(
            &format!("INSERT OR IGNORE INTO datasets ({DATASET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                row.id,
                row.created_at_ms,
                row.created_by,
                row.route,
                row.parent,
                row.content_hash,
                row.manifest.to_string(),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "dataset {} already exists",
                row.id
            )));
        }
        Ok(())
    }

    fn list_datasets(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DatasetRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE ?1 IS NULL OR route = ?1
             ORDER BY created_at_ms DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![route, limit as i64], dataset_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn get_dataset(&self, id: &str) -> Result<Option<DatasetRow>, StoreError> {
        let conn = self.reader();
        let row = conn
            .prepare_cached(&format!(
                "SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?1"
            ))?
            .query_row(params![id], dataset_from)
            .optional()?;
        Ok(row)
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

    fn row(id: &str, route: &str) -> InteractionRow {
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

    #[test]
    fn batches_of_any_size_keep_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        store.insert_interactions(&[row("005", "a")]).unwrap();
        // Two full multi-row statements and a remainder, with an id already
        // stored and one repeated inside the batch: both ignored, not errors.
        let mut rows: Vec<InteractionRow> = (0..37).map(|i| row(&format!("{i:03}"), "a")).collect();
        rows.push(row("020", "b"));
        store.insert_interactions(&rows).unwrap();
        let all = store
            .list_interactions(&ListQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        let ids: Vec<String> = all.iter().rev().map(|r| r.id.clone()).collect();
        let want: Vec<String> = (0..37).map(|i| format!("{i:03}")).collect();
        assert_eq!(ids, want);
        let got = store.get_interaction("036").unwrap().unwrap();
        assert_eq!(got.request_body, "{\"model\":\"m\"}");
        assert_eq!(got.metadata.get("k").map(String::as_str), Some("v"));
        assert_eq!(got.total_tokens, Some(7));
        assert_eq!(store.get_interaction("020").unwrap().unwrap().route, "a");
    }

    /// Every column, NULL or set, reads back as written, through the
    /// multi-row statement and the single-row one; the rows are dropped
    /// before they are read, so nothing of them can linger in a statement.
    #[test]
    fn every_column_round_trips_through_both_inserts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let full = |i: usize| InteractionRow {
            id: format!("{i:03}"),
            created_at_ms: 1_700_000_000_000 + i as i64,
            requested_model: Some(format!("gpt-{i}")),
            status: 503,
            outcome: "upstream_error".into(),
            stream: true,
            request_body: format!("{{\"content\":\"h\u{e9}llo {i} \u{1f600}\"}}"),
            response_body: Some("x".repeat(5000 + i)),
            truncated: true,
            finish_reason: Some("length".into()),
            ttft_ms: Some(0.25),
            tokens_estimated: true,
            app: Some("app-a".into()),
            user_hash: Some("hash".into()),
            session_id: Some("s-1".into()),
            metadata: [("a".into(), "1".into()), ("b".into(), "\"q\"".into())].into(),
            error: Some("upstream said no".into()),
            redaction: "redacted".into(),
            pii_found: 2,
            ..row(&format!("{i:03}"), "r")
        };
        let sparse = |i: usize| InteractionRow {
            response_body: None,
            metadata: Default::default(),
            ..row(&format!("{i:03}"), "r")
        };
        let make = || -> Vec<InteractionRow> {
            (0..ROWS_PER_INSERT + 2)
                .map(|i| if i % 2 == 0 { full(i) } else { sparse(i) })
                .collect()
        };
        let rows = make();
        store.insert_interactions(&rows).unwrap();
        drop(rows);
        for (i, want) in make().into_iter().enumerate() {
            let got = store.get_interaction(&want.id).unwrap().unwrap();
            assert_eq!(got, want, "row {i}");
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
    fn insert_list_get_stats() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("sub/f.db")).unwrap();
        store
            .insert_interactions(&[row("01", "a"), row("02", "b"), row("03", "a")])
            .unwrap();
        let page = store
            .list_interactions(&ListQuery {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["03", "02"]
        );
        assert!(page[0].request_body.is_empty(), "lists carry no bodies");
        let next = store
            .list_interactions(&ListQuery {
                limit: 2,
                before: Some("02".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next.len(), 1);
        let only_a = store
            .list_interactions(&ListQuery {
                limit: 10,
                route: Some("a".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(only_a.len(), 2);
        let one = store.get_interaction("02").unwrap().unwrap();
        assert_eq!(one, row("02", "b"));
        assert!(store.get_interaction("nope").unwrap().is_none());
        let stats = store.stats().unwrap();
        assert_eq!(stats.interactions_total, 3);
        assert_eq!(stats.by_route["a"], 2);
        assert_eq!(stats.prompt_tokens, 9);
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

    #[test]
    fn a_dataset_scan_streams_in_id_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let q = ScanQuery {
            route: Some("bot".into()),
            versions: vec!["v1".into()],
            since_ms: Some(1),
            until_ms: Some(2),
            endpoint: Some("chat.completions".into()),
            requested_model: Some("gpt-4o-mini".into()),
            segment: Some("enterprise".into()),
        };
        let (filter, args) = scan_filter(&q);
        let conn = store.reader();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT id FROM interactions WHERE {filter} ORDER BY id"
            ))
            .unwrap()
            .query_map(rusqlite::params_from_iter(args), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
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

#[cfg(test)]
mod feedback_tests {
    use super::*;
    use crate::store::FeedbackRow;

    fn fb(id: &str, key: Option<&str>, hash: &str) -> FeedbackRow {
        FeedbackRow {
            id: id.into(),
            interaction_id: "01".into(),
            created_at_ms: 5,
            route: "default".into(),
            version: "v1".into(),
            kind: "thumbs".into(),
            value: serde_json::json!("up"),
            label: Some("up".into()),
            score: Some(1.0),
            idempotency_key: key.map(str::to_string),
            request_hash: hash.into(),
            ..Default::default()
        }
    }

    #[test]
    fn feedback_insert_idempotency_list_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        assert!(store.interaction_served("01").unwrap().is_none());
        assert_eq!(store.stats().unwrap().feedback_total, 0);
        assert_eq!(
            store.insert_feedback(&fb("a", Some("k"), "h1")).unwrap(),
            FeedbackInsert::Created
        );
        match store.insert_feedback(&fb("b", Some("k"), "h2")).unwrap() {
            FeedbackInsert::Existing(row) => {
                assert_eq!((row.id.as_str(), row.request_hash.as_str()), ("a", "h1"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.insert_feedback(&fb("c", None, "h3")).unwrap(),
            FeedbackInsert::Created
        );
        let stats = store.stats().unwrap();
        assert_eq!(stats.feedback_total, 2);
        assert_eq!(stats.feedback_by_label["up"], 2);
        let rows = store
            .list_feedback(&FeedbackQuery {
                limit: 10,
                interaction_id: Some("01".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], fb("a", Some("k"), "h1"));
    }
}
