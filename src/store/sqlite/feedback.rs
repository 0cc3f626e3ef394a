//! Feedback in SQLite: inserts keyed for idempotency, pages, and the lookup
//! of the interaction feedback names. The row decoder here is shared with the
//! dataset scans.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::crypto::vault::Vault;
use crate::store::cipher;
use crate::store::{FeedbackInsert, FeedbackQuery, FeedbackRow, FeedbackStore, StoreError};

/// Feedback's columns, in [`feedback_from`]'s order.
pub(super) const FEEDBACK_COLUMNS: &str = "id, interaction_id, created_at_ms, route, version, type, value, label, score, scale_min, scale_max, app, user_hash, metadata, idempotency_key, request_hash";

/// Reads a row selected as [`FEEDBACK_COLUMNS`], opening sealed columns with
/// `vault`.
pub(super) fn feedback_from(
    r: &rusqlite::Row<'_>,
    vault: Option<&Vault>,
) -> rusqlite::Result<FeedbackRow> {
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

impl FeedbackStore for SqliteStore {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InteractionStore;

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
