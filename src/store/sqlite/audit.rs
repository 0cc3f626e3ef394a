//! The audit log in SQLite: events appended, one at a time or inside a
//! registry write's transaction, and listed newest first.

use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::store::{AuditStore, EventRow, StoreError};

/// Appends one event on `conn`: the writer connection, or the transaction of
/// a registry write, so that the event lands with the change it records.
pub(super) fn insert_event(conn: &Connection, e: &EventRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO events (id, at_ms, actor, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![e.id, e.at_ms, e.actor, e.kind, e.subject, e.detail.to_string()],
    )?;
    Ok(())
}

fn event_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
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
}

impl AuditStore for SqliteStore {
    fn record_event(&self, e: &EventRow) -> Result<(), StoreError> {
        insert_event(&self.writer(), e)?;
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
            .query_map(params![before, kind, limit as i64], event_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn events_about(&self, subject: &str, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.reader();
        let rows = conn
            .prepare_cached(
                "SELECT id, at_ms, actor, kind, subject, detail FROM events
                 WHERE subject = ?1 ORDER BY id DESC LIMIT ?2",
            )?
            .query_map(params![subject, limit as i64], event_from)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
