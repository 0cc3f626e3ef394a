//! What a gate verdict does: it is recorded as an audited event with the
//! experiment and one reason per check, and in `auto` mode it turns the
//! candidate `approved` or `rejected`; in `manual` mode it stays a
//! recommendation for an operator. A rollout reads the latest verdict and
//! refuses a version the gate rejected, unless an operator overrides it
//! with a reason.

use serde_json::json;

use crate::eval::gate::{GateMode, Verdict};
use crate::registry::{self, RegistryError};
use crate::store::{AuditStore, ExperimentStore, RegistryStore, VersionRow};

/// Records `verdict` on `candidate` of `route`, from `experiment`. Returns
/// the version's new row when the verdict changed its state (auto mode, and
/// a state the gate may change: registered, approved, rejected or rolled
/// back; a canary or a stable version keeps its state and the event says so).
pub fn apply(
    store: &dyn RegistryStore,
    audit: &dyn AuditStore,
    route: &str,
    candidate: &str,
    experiment: &str,
    verdict: &Verdict,
    mode: GateMode,
) -> Result<Option<VersionRow>, RegistryError> {
    let version = registry::find(store, route, candidate)?;
    let decides = mode == GateMode::Auto
        && matches!(
            version.state.as_str(),
            "registered" | "approved" | "rejected" | "rolled_back"
        );
    crate::audit::record(
        audit,
        "gate",
        "gate_verdict",
        Some(format!("{route}/{candidate}")),
        json!({
            "experiment": experiment,
            "pass": verdict.pass,
            "mode": mode,
            "applied": decides,
            "state": version.state,
            "checks": verdict.checks,
        }),
    )?;
    if !decides {
        return Ok(None);
    }
    let reason = if verdict.pass {
        format!("gate passed (experiment {experiment})")
    } else {
        format!(
            "gate failed (experiment {experiment}): {}",
            verdict.failures()
        )
    };
    registry::judge(store, route, candidate, verdict.pass, &reason, "gate").map(Some)
}

/// The latest finished experiment with a verdict on `version` of `route`:
/// its id, and the failing reasons when the gate rejected it.
pub fn latest(
    store: &(impl ExperimentStore + ?Sized),
    route: &str,
    version: &str,
) -> Result<Option<(String, Option<String>)>, crate::store::StoreError> {
    for e in store.list_experiments(Some(route), Some(version), 20)? {
        let Some(v) = e.verdict else { continue };
        let Ok(verdict) = serde_json::from_value::<Verdict>(v) else {
            continue;
        };
        let failures = (!verdict.pass).then(|| verdict.failures());
        return Ok(Some((e.id, failures)));
    }
    Ok(None)
}

/// Refuses a rollout of a version the gate last rejected, unless
/// `override_reason` is given; then returns the experiment overridden, for
/// the caller to audit with the reason. A blank reason is none.
pub fn check_rollout(
    store: &(impl ExperimentStore + ?Sized),
    route: &str,
    version: &str,
    override_reason: Option<&str>,
) -> Result<Option<String>, RegistryError> {
    let overriding = override_reason.is_some_and(|r| !r.trim().is_empty());
    match latest(store, route, version)? {
        Some((experiment, Some(_))) if overriding => Ok(Some(experiment)),
        Some((experiment, Some(failures))) => Err(RegistryError::Conflict(format!(
            "the gate rejected version {version} in experiment {experiment}: {failures}; \
             override with a reason to roll it out anyway (--override-gate)"
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::gate::Check;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ExperimentRow, Finish};

    fn store_with_route() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let v = |name: &str| crate::config::VersionConfig {
            name: name.into(),
            upstream: "http://127.0.0.1:9/v1".into(),
            upstream_model: None,
            api_key_env: None,
            connect_timeout_ms: None,
            first_byte_timeout_ms: None,
            total_timeout_ms: None,
            headers: Default::default(),
            system_prompt: None,
            state: if name == "v1" { "stable" } else { "registered" }.into(),
        };
        let routes = vec![crate::config::RouteConfig {
            name: "bot".into(),
            retry_on_stable: false,
            versions: vec![v("v1"), v("v2"), v("v3")],
            scorers: Vec::new(),
            gate: None,
        }];
        registry::seed_from_config(&store, &routes, "config").unwrap();
        (dir, store)
    }

    fn verdict(pass: bool) -> Verdict {
        Verdict {
            pass,
            checks: vec![Check {
                name: "primary".into(),
                pass,
                reason: format!(
                    "primary exact +0.10 [+0.05, +0.15] >= -0.02: {}",
                    if pass { "pass" } else { "fail" }
                ),
            }],
        }
    }

    fn state(store: &SqliteStore, version: &str) -> String {
        registry::find(store, "bot", version).unwrap().state
    }

    #[test]
    fn auto_mode_decides_the_state_and_manual_mode_only_records() {
        let (_dir, store) = store_with_route();
        apply(
            &store,
            &store,
            "bot",
            "v2",
            "e1",
            &verdict(true),
            GateMode::Auto,
        )
        .unwrap();
        assert_eq!(state(&store, "v2"), "approved");
        apply(
            &store,
            &store,
            "bot",
            "v3",
            "e2",
            &verdict(false),
            GateMode::Auto,
        )
        .unwrap();
        assert_eq!(state(&store, "v3"), "rejected");
        let v3 = registry::find(&store, "bot", "v3").unwrap();
        assert!(format!("{v3:?}").contains("gate failed (experiment e2): primary exact"));
        // Manual: recorded, the state unchanged.
        assert!(apply(
            &store,
            &store,
            "bot",
            "v2",
            "e3",
            &verdict(false),
            GateMode::Manual
        )
        .unwrap()
        .is_none());
        assert_eq!(state(&store, "v2"), "approved");
        // The stable version is never moved by a verdict.
        assert!(apply(
            &store,
            &store,
            "bot",
            "v1",
            "e4",
            &verdict(false),
            GateMode::Auto
        )
        .unwrap()
        .is_none());
        assert_eq!(state(&store, "v1"), "stable");
        let events = store.list_events(50, None, Some("gate_verdict")).unwrap();
        let verdicts: Vec<_> = events.iter().filter(|e| e.kind == "gate_verdict").collect();
        assert_eq!(verdicts.len(), 4);
        assert!(verdicts.iter().all(|e| e.actor == "gate"));
        let e3 = verdicts
            .iter()
            .find(|e| e.detail["experiment"] == "e3")
            .unwrap();
        assert_eq!(e3.detail["applied"], false);
        assert_eq!(e3.detail["mode"], "manual");
        assert!(e3.detail["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .ends_with(": fail"));
    }

    #[test]
    fn a_rollout_of_a_rejected_version_needs_an_override() {
        let (_dir, store) = store_with_route();
        let finished = |id: &str, at: i64, pass: bool| {
            store
                .insert_experiment(&ExperimentRow {
                    id: id.into(),
                    kind: "offline".into(),
                    route: "bot".into(),
                    candidate: "v2".into(),
                    baseline: "v1".into(),
                    status: "running".into(),
                    created_at_ms: at,
                    created_by: "admin".into(),
                    ..Default::default()
                })
                .unwrap();
            store
                .finish_experiment(
                    id,
                    &Finish {
                        status: "completed".into(),
                        summary: None,
                        verdict: Some(serde_json::to_value(verdict(pass)).unwrap()),
                        error: None,
                        finished_at_ms: at + 1,
                    },
                )
                .unwrap();
        };
        assert_eq!(check_rollout(&store, "bot", "v2", None).unwrap(), None);
        finished("e1", 10, false);
        let err = check_rollout(&store, "bot", "v2", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("experiment e1") && err.contains("primary exact"),
            "{err}"
        );
        assert_eq!(
            check_rollout(&store, "bot", "v2", Some("the eval set is stale")).unwrap(),
            Some("e1".to_string())
        );
        assert!(
            check_rollout(&store, "bot", "v2", Some("  ")).is_err(),
            "a blank reason is none"
        );
        finished("e2", 20, true);
        assert_eq!(check_rollout(&store, "bot", "v2", None).unwrap(), None);
    }
}
