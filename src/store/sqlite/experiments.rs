//! Experiments in SQLite: a run's row, then its scored answers appended in
//! batches; an answer's output is sealed at rest like captured bodies.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::cipher;
use crate::store::{ExperimentRow, ExperimentStore, Finish, ResultRow, StoreError};

const EXPERIMENT_COLUMNS: &str =
    "id, kind, route, candidate, baseline, dataset_id, split, status, \
     config, summary, verdict, error, created_at_ms, finished_at_ms, created_by";

const RESULT_COLUMNS: &str = "experiment_id, example, source_id, side, output, error, latency_ms, \
     prompt_tokens, completion_tokens, scores";

fn json_at(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = r.get(idx)?;
    Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::Null)))
}

fn experiment_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExperimentRow> {
    Ok(ExperimentRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        route: r.get(2)?,
        candidate: r.get(3)?,
        baseline: r.get(4)?,
        dataset_id: r.get(5)?,
        split: r.get(6)?,
        status: r.get(7)?,
        config: json_at(r, 8)?.unwrap_or_default(),
        summary: json_at(r, 9)?,
        verdict: json_at(r, 10)?,
        error: r.get(11)?,
        created_at_ms: r.get(12)?,
        finished_at_ms: r.get(13)?,
        created_by: r.get(14)?,
    })
}

/// What binds a sealed output to its row.
fn output_row_id(experiment_id: &str, example: i64, side: &str) -> String {
    format!("{experiment_id}/{example}/{side}")
}

impl ExperimentStore for SqliteStore {
    fn insert_experiment(&self, row: &ExperimentRow) -> Result<(), StoreError> {
        let conn = self.writer();
        let n = conn.execute(
            &format!(
                "INSERT OR IGNORE INTO experiments ({EXPERIMENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ),
            params![
                row.id,
                row.kind,
                row.route,
                row.candidate,
                row.baseline,
                row.dataset_id,
                row.split,
                row.status,
                row.config.to_string(),
                row.summary.as_ref().map(|v| v.to_string()),
                row.verdict.as_ref().map(|v| v.to_string()),
                row.error,
                row.created_at_ms,
                row.finished_at_ms,
                row.created_by,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "experiment {} already exists",
                row.id
            )));
        }
        Ok(())
    }

    fn insert_results(&self, rows: &[ResultRow]) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO experiment_results ({RESULT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?;
            for r in rows {
                let output: Option<rusqlite::types::Value> =
                    r.output.as_ref().map(|o| match self.cipher.as_ref() {
                        Some(vault) => rusqlite::types::Value::Blob(cipher::seal(
                            vault,
                            o,
                            &output_row_id(&r.experiment_id, r.example, &r.side),
                            "output",
                        )),
                        None => rusqlite::types::Value::Text(o.clone()),
                    });
                stmt.execute(params![
                    r.experiment_id,
                    r.example,
                    r.source_id,
                    r.side,
                    output,
                    r.error,
                    r.latency_ms,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.scores.to_string(),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn finish_experiment(&self, id: &str, f: &Finish) -> Result<(), StoreError> {
        let conn = self.writer();
        let n = conn.execute(
            "UPDATE experiments SET status = ?2, summary = ?3, verdict = ?4, error = ?5, \
             finished_at_ms = ?6 WHERE id = ?1 AND status = 'running'",
            params![
                id,
                f.status,
                f.summary.as_ref().map(|v| v.to_string()),
                f.verdict.as_ref().map(|v| v.to_string()),
                f.error,
                f.finished_at_ms,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "experiment {id} is not running"
            )));
        }
        Ok(())
    }

    fn abandon_running(&self, reason: &str, at_ms: i64) -> Result<usize, StoreError> {
        let conn = self.writer();
        Ok(conn.execute(
            "UPDATE experiments SET status = 'failed', error = ?1, finished_at_ms = ?2 \
             WHERE status = 'running'",
            params![reason, at_ms],
        )?)
    }

    fn get_experiment(&self, id: &str) -> Result<Option<ExperimentRow>, StoreError> {
        let conn = self.reader();
        Ok(conn
            .query_row(
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?1"),
                params![id],
                experiment_from,
            )
            .optional()?)
    }

    fn list_experiments(
        &self,
        route: Option<&str>,
        candidate: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExperimentRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments \
             WHERE (?1 IS NULL OR route = ?1) AND (?2 IS NULL OR candidate = ?2) \
             ORDER BY created_at_ms DESC, id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![route, candidate, limit as i64], experiment_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn experiment_results(&self, id: &str) -> Result<Vec<ResultRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RESULT_COLUMNS} FROM experiment_results WHERE experiment_id = ?1 \
             ORDER BY example, side"
        ))?;
        let vault = self.cipher.as_ref();
        let rows = stmt.query_map(params![id], |r| {
            let (experiment_id, example, side): (String, i64, String) =
                (r.get(0)?, r.get(1)?, r.get(3)?);
            let output = cipher::text_at(
                r,
                4,
                vault,
                &output_row_id(&experiment_id, example, &side),
                "output",
            )?;
            Ok(ResultRow {
                experiment_id,
                example,
                source_id: r.get(2)?,
                side,
                output,
                error: r.get(5)?,
                latency_ms: r.get(6)?,
                prompt_tokens: r.get(7)?,
                completion_tokens: r.get(8)?,
                scores: json_at(r, 9)?.unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::vault::Vault;
    use serde_json::json;

    fn run(id: &str, candidate: &str, at: i64) -> ExperimentRow {
        ExperimentRow {
            id: id.into(),
            kind: "offline".into(),
            route: "bot".into(),
            candidate: candidate.into(),
            baseline: "v1".into(),
            dataset_id: Some("ds-1".into()),
            split: Some("eval".into()),
            status: "running".into(),
            config: json!({"scorers": [{"name": "exact", "kind": "exact_match"}], "seed": 7}),
            created_at_ms: at,
            created_by: "admin".into(),
            ..Default::default()
        }
    }

    fn answer(id: &str, example: i64, side: &str, text: &str) -> ResultRow {
        ResultRow {
            experiment_id: id.into(),
            example,
            source_id: Some(format!("i-{example}")),
            side: side.into(),
            output: Some(json!({"text": text}).to_string()),
            latency_ms: Some(12.5),
            prompt_tokens: Some(20),
            completion_tokens: Some(5),
            scores: json!({"exact": {"value": 1.0}}),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_and_its_answers_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        store.insert_experiment(&run("e1", "v2", 10)).unwrap();
        let failed = ResultRow {
            output: None,
            error: Some("upstream 500".into()),
            scores: json!({}),
            ..answer("e1", 1, "candidate", "")
        };
        let rows = vec![
            answer("e1", 1, "baseline", "Paris"),
            failed,
            answer("e1", 0, "candidate", "Lyon"),
            answer("e1", 0, "baseline", "Paris"),
        ];
        store.insert_results(&rows).unwrap();
        let back = store.experiment_results("e1").unwrap();
        let order: Vec<(i64, &str)> = back.iter().map(|r| (r.example, r.side.as_str())).collect();
        assert_eq!(
            order,
            [
                (0, "baseline"),
                (0, "candidate"),
                (1, "baseline"),
                (1, "candidate")
            ]
        );
        assert_eq!(back[1], rows[2]);
        assert_eq!(back[3], rows[1]);
        assert_eq!(
            store.get_experiment("e1").unwrap().unwrap(),
            run("e1", "v2", 10)
        );
        assert!(store.get_experiment("nope").unwrap().is_none());
    }

    #[test]
    fn a_run_ends_once_and_a_stopped_process_leaves_none_running() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        store.insert_experiment(&run("e1", "v2", 10)).unwrap();
        store.insert_experiment(&run("e2", "v3", 20)).unwrap();
        assert!(matches!(
            store.insert_experiment(&run("e1", "v2", 10)),
            Err(StoreError::Conflict(_))
        ));
        let done = Finish {
            status: "completed".into(),
            summary: Some(json!({"examples": 2})),
            verdict: Some(json!({"pass": true})),
            error: None,
            finished_at_ms: 30,
        };
        store.finish_experiment("e1", &done).unwrap();
        assert!(matches!(
            store.finish_experiment("e1", &done),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.abandon_running("the gateway stopped", 40).unwrap(), 1);
        let e1 = store.get_experiment("e1").unwrap().unwrap();
        assert_eq!(
            (e1.status.as_str(), e1.finished_at_ms, e1.verdict),
            ("completed", Some(30), Some(json!({"pass": true})))
        );
        let e2 = store.get_experiment("e2").unwrap().unwrap();
        assert_eq!(
            (e2.status.as_str(), e2.error.as_deref()),
            ("failed", Some("the gateway stopped"))
        );
        // Newest first, narrowed by candidate.
        let ids = |v: Vec<ExperimentRow>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_experiments(Some("bot"), None, 10).unwrap()),
            ["e2", "e1"]
        );
        assert_eq!(
            ids(store.list_experiments(None, Some("v2"), 10).unwrap()),
            ["e1"]
        );
        assert_eq!(
            ids(store.list_experiments(Some("other"), None, 10).unwrap()).len(),
            0
        );
        assert_eq!(ids(store.list_experiments(None, None, 1).unwrap()), ["e2"]);
    }

    #[test]
    fn answers_of_an_unknown_run_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        store.insert_experiment(&run("e1", "v2", 10)).unwrap();
        let rows = vec![
            answer("e1", 0, "baseline", "a"),
            answer("ghost", 0, "baseline", "b"),
        ];
        assert!(store.insert_results(&rows).is_err());
        assert!(
            store.experiment_results("e1").unwrap().is_empty(),
            "nothing half-written"
        );
    }

    #[test]
    fn outputs_are_sealed_at_rest_when_a_key_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let vault = || Some(Vault::new(&[5; 32], "s1"));
        let store = SqliteStore::open_with(&path, vault()).unwrap();
        store.insert_experiment(&run("e1", "v2", 10)).unwrap();
        store
            .insert_results(&[answer("e1", 0, "candidate", "the xyzzy answer")])
            .unwrap();
        let back = store.experiment_results("e1").unwrap();
        assert_eq!(
            back[0].output.as_deref(),
            Some(r#"{"text":"the xyzzy answer"}"#)
        );
        drop(store);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(dir.path().join("f.db-wal")).unwrap_or_default());
        assert!(!bytes.windows(5).any(|w| w == b"xyzzy"));
        let keyless = SqliteStore::open(&path).unwrap();
        assert!(
            keyless.experiment_results("e1").is_err(),
            "no key, no plain text"
        );
    }

    #[test]
    fn forgetting_a_user_erases_the_answers_to_their_prompts() {
        use crate::store::{InteractionRow, InteractionStore, PrivacyStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let interaction = |id: &str, user: &str| InteractionRow {
            id: id.into(),
            created_at_ms: 1,
            user_hash: Some(user.into()),
            route: "bot".into(),
            version: "v1".into(),
            ..Default::default()
        };
        store
            .insert_interactions(&[interaction("i-0", "k1:alice"), interaction("i-1", "k1:bob")])
            .unwrap();
        store.insert_experiment(&run("e1", "v2", 10)).unwrap();
        store
            .insert_results(&[
                answer("e1", 0, "baseline", "a"),
                answer("e1", 0, "candidate", "b"),
                answer("e1", 1, "baseline", "c"),
                answer("e1", 1, "candidate", "d"),
            ])
            .unwrap();
        let removed = store.forget_user(&["k1:alice".into()]).unwrap();
        assert_eq!((removed.interactions, removed.experiment_results), (1, 2));
        let left: Vec<Option<String>> = store
            .experiment_results("e1")
            .unwrap()
            .into_iter()
            .map(|r| r.source_id)
            .collect();
        assert_eq!(left, [Some("i-1".to_string()), Some("i-1".to_string())]);
    }
}
