//! Dataset builds in SQLite: the streaming scans over interactions with their
//! feedback, on a read-only connection and snapshot of their own, and the
//! dataset versions.

use rusqlite::{params, OptionalExtension};

use super::feedback::{feedback_from, FEEDBACK_COLUMNS};
use super::interactions::{row_from, COLUMNS};
use super::SqliteStore;
use crate::store::{DatasetRow, DatasetStore, FeedbackRow, ScanQuery, Scanned, StoreError};

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

impl DatasetStore for SqliteStore {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
