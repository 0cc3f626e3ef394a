//! Captured interactions in SQLite: the batched capture insert (through
//! [`super::insert`]), pages, single rows with their bodies, and the totals.
//! The row decoder here is shared with the dataset scans.

use std::borrow::Cow;

use rusqlite::{params, OptionalExtension};

use super::{insert, SqliteStore};
use crate::crypto::vault::Vault;
use crate::store::cipher;
use crate::store::{InteractionRow, InteractionStore, ListQuery, Stats, StoreError};

/// An interaction's columns without its bodies, in [`row_from`]'s order; a
/// query that wants the bodies selects `request_body, response_body` after them.
pub(super) const COLUMNS: &str = "id, created_at_ms, endpoint, method, path, route, requested_model, version, upstream, status, outcome, stream, truncated, finish_reason, latency_ms, ttft_ms, prompt_tokens, completion_tokens, total_tokens, tokens_estimated, app, user_hash, session_id, metadata, error, redaction, pii_found, segment";

/// Reads a row selected as [`COLUMNS`] (then the two bodies, `with_bodies`),
/// opening sealed columns with `vault`.
pub(super) fn row_from(
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
pub(super) const ROWS_PER_INSERT: usize = 16;
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

impl InteractionStore for SqliteStore {
    fn insert_interactions(&self, rows: &[InteractionRow]) -> Result<(), StoreError> {
        let mut writer = self.writer();
        let (inserts, conn) = writer.inserts(ROWS_PER_INSERT, insert_sql)?;
        let tx = conn.transaction()?;
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::row;
    use super::*;

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
}
