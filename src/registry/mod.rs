//! The model registry: routes, their versions, and each version's lifecycle
//! (`registered → approved | rejected → canary → stable → retired`, plus
//! `rolled_back`). Every transition is one registry write with its audit event.
//!
//! This module decides what may happen (ids, timestamps, allowed transitions);
//! the store writes rows as given. Nothing here runs on the request path.

use serde_json::json;

use crate::audit::event;
use crate::clock::now_ms;
use crate::config::RouteConfig;
use crate::error::GatewayError;
use crate::store::{RegistryStore, RegistryWrite, RouteRow, StoreError, VersionRow, VersionUpdate};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RegistryError> for GatewayError {
    /// A storage failure is the gateway's own (500, its cause left out of
    /// the answer); the rest are the caller's to fix.
    fn from(e: RegistryError) -> GatewayError {
        match e {
            RegistryError::NotFound(m) => GatewayError::NotFound(m),
            RegistryError::Conflict(m) => GatewayError::Conflict(m),
            RegistryError::Invalid(m) => GatewayError::BadRequest(m),
            RegistryError::Store(_) => GatewayError::Internal,
        }
    }
}

/// Adds the config's routes and any of their versions the registry does not
/// have yet. Versions already registered keep their state: after creation the
/// registry, not the file, owns it.
pub fn seed_from_config(
    store: &dyn RegistryStore,
    routes: &[RouteConfig],
    actor: &str,
) -> Result<(), StoreError> {
    if routes.is_empty() {
        return Ok(());
    }
    let snap = store.load_routing()?;
    let now = now_ms();
    let mut w = RegistryWrite::default();
    for r in routes {
        let known = snap.routes.iter().find(|k| k.name == r.name);
        if known.is_none_or(|k| k.retry_on_stable != r.retry_on_stable) {
            w.routes.push(RouteRow {
                name: r.name.clone(),
                retry_on_stable: r.retry_on_stable,
                created_at_ms: now,
                created_by: actor.to_string(),
            });
        }
        let has_stable = snap
            .versions
            .iter()
            .any(|v| v.route == r.name && v.state == "stable");
        for v in &r.versions {
            if snap
                .versions
                .iter()
                .any(|k| k.route == r.name && k.name == v.name)
            {
                continue;
            }
            // A stable version already in the registry wins over the file's.
            let state = if v.state == "stable" && has_stable {
                "approved"
            } else {
                v.state.as_str()
            };
            w.new_versions.push(VersionRow {
                route: r.name.clone(),
                name: v.name.clone(),
                upstream_url: v.upstream.clone(),
                upstream_model: v.upstream_model.clone(),
                api_key_env: v.api_key_env.clone(),
                connect_timeout_ms: v.connect_timeout_ms.map(|n| n as i64),
                first_byte_timeout_ms: v.first_byte_timeout_ms.map(|n| n as i64),
                total_timeout_ms: v.total_timeout_ms.map(|n| n as i64),
                headers: v.headers.clone(),
                system_prompt: v.system_prompt.clone(),
                state: state.to_string(),
                weight_bp: 0,
                created_at_ms: now,
                created_by: actor.to_string(),
                reason: Some("from the config file".into()),
                updated_at_ms: now,
            });
            w.events.push(event(
                actor,
                "version_registered",
                Some(format!("{}/{}", r.name, v.name)),
                json!({"state": state, "upstream": v.upstream, "upstream_model": v.upstream_model}),
            ));
        }
    }
    if w.routes.is_empty() && w.new_versions.is_empty() {
        return Ok(());
    }
    store.apply_registry(&w)
}

/// A version to register at run time.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    pub route: String,
    pub version: String,
    pub upstream: String,
    pub upstream_model: Option<String>,
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    pub system_prompt: Option<String>,
    pub reason: Option<String>,
}

/// Registers a new version (state `registered`). A route that does not exist
/// yet is created with it; its first version becomes stable at once, since a
/// route with nothing to compare against has no canary to run.
pub fn register(
    store: &dyn RegistryStore,
    v: NewVersion,
    actor: &str,
) -> Result<VersionRow, RegistryError> {
    if !crate::config::valid_name(&v.route) || !crate::config::valid_name(&v.version) {
        return Err(RegistryError::Invalid(
            "route and version names must be 1 to 64 visible characters without `/`".into(),
        ));
    }
    if let Some(problem) = crate::config::base_url_problem(&v.upstream) {
        return Err(RegistryError::Invalid(format!("upstream {problem}")));
    }
    let snap = store.load_routing()?;
    let now = now_ms();
    let mut w = RegistryWrite::default();
    let first = !snap.versions.iter().any(|k| k.route == v.route);
    if !snap.routes.iter().any(|r| r.name == v.route) {
        w.routes.push(RouteRow {
            name: v.route.clone(),
            retry_on_stable: false,
            created_at_ms: now,
            created_by: actor.into(),
        });
    }
    let state = if first { "stable" } else { "registered" };
    let row = VersionRow {
        route: v.route.clone(),
        name: v.version.clone(),
        upstream_url: v.upstream.trim_end_matches('/').to_string(),
        upstream_model: v.upstream_model,
        api_key_env: v.api_key_env,
        headers: v.headers,
        system_prompt: v.system_prompt,
        state: state.into(),
        created_at_ms: now,
        created_by: actor.into(),
        reason: v.reason.clone(),
        updated_at_ms: now,
        ..Default::default()
    };
    w.new_versions.push(row.clone());
    w.events.push(event(
        actor,
        "version_registered",
        Some(format!("{}/{}", v.route, v.version)),
        json!({"state": state, "upstream": row.upstream_url, "upstream_model": row.upstream_model, "reason": v.reason}),
    ));
    store.apply_registry(&w).map_err(|e| match e {
        StoreError::Conflict(m) => RegistryError::Conflict(m),
        other => other.into(),
    })?;
    Ok(row)
}

/// Finds one version.
pub fn find(
    store: &dyn RegistryStore,
    route: &str,
    version: &str,
) -> Result<VersionRow, RegistryError> {
    store
        .load_routing()?
        .versions
        .into_iter()
        .find(|v| v.route == route && v.name == version)
        .ok_or_else(|| RegistryError::NotFound(format!("no version {version} on route {route}")))
}

/// An operator's (or the evaluation gate's) verdict on a registered version.
pub fn judge(
    store: &dyn RegistryStore,
    route: &str,
    version: &str,
    approve: bool,
    reason: &str,
    actor: &str,
) -> Result<VersionRow, RegistryError> {
    let mut v = find(store, route, version)?;
    let allowed = matches!(
        v.state.as_str(),
        "registered" | "approved" | "rejected" | "rolled_back"
    );
    if !allowed {
        return Err(RegistryError::Conflict(format!(
            "version {version} is {}; only registered, approved, rejected or rolled-back versions can be {}",
            v.state,
            if approve { "approved" } else { "rejected" }
        )));
    }
    let to = if approve { "approved" } else { "rejected" };
    let w = RegistryWrite {
        updates: vec![VersionUpdate {
            route: route.into(),
            name: version.into(),
            state: to.into(),
            weight_bp: 0,
            reason: Some(reason.into()),
        }],
        events: vec![event(
            actor,
            if approve {
                "version_approved"
            } else {
                "version_rejected"
            },
            Some(format!("{route}/{version}")),
            json!({"from": v.state, "reason": reason}),
        )],
        ..Default::default()
    };
    store.apply_registry(&w)?;
    v.state = to.into();
    v.reason = Some(reason.into());
    Ok(v)
}

/// Brings the traffic in line with the registry after a change: reloads the
/// routing table the proxy serves with when the registry's generation moved,
/// and publishes the rollout gauges. True when the table was rebuilt. The
/// composition root wires it; callers that change the registry run it.
pub type Reload = std::sync::Arc<dyn Fn() -> Result<bool, StoreError> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_registry_error_has_its_status_and_code() {
        let cases = [
            (
                RegistryError::NotFound("no route x".into()),
                404,
                "not_found",
            ),
            (RegistryError::Conflict("busy".into()), 409, "conflict"),
            (RegistryError::Invalid("bad".into()), 400, "invalid_request"),
            (
                RegistryError::Store(StoreError::SchemaTooNew { found: 9, known: 1 }),
                500,
                "internal_error",
            ),
        ];
        for (e, status, code) in cases {
            let message = e.to_string();
            let g = GatewayError::from(e);
            assert_eq!(g.status(), status, "{code}");
            assert_eq!(g.type_and_code().1, code);
            if status < 500 {
                assert_eq!(g.to_string(), message);
            } else {
                assert_eq!(g.to_string(), "internal gateway error");
            }
        }
    }
}
