//! The registry and rollouts in SQLite: the routing snapshot and its
//! generation, registry writes in one transaction, rollouts, and the live
//! numbers of a version.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::{
    RegistryStore, RegistryWrite, RolloutRow, RouteRow, RoutingSnapshot, StoreError, VersionRow,
    VersionStats,
};

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

impl RegistryStore for SqliteStore {
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
            super::audit::insert_event(&tx, e)?;
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
}
