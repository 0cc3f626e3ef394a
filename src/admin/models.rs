//! Admin endpoints for routes, model versions and rollouts. Each handler reads
//! the request, calls the registry or the rollout driver on the blocking pool,
//! reloads routing so the change applies at once, and answers JSON.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::json_response;
use super::Admin;
use crate::error::GatewayError;
use crate::experiments::verdict;
use crate::http1::body::{ClientBody, ResponseBody};
use crate::registry::{self, NewVersion, RegistryError};
use crate::rollout::decide::Plan;
use crate::rollout::driver::{self, Command};
use crate::store::{RolloutRow, Store};

type Resp = http::Response<ResponseBody>;

fn registry_error(e: RegistryError) -> Resp {
    if let RegistryError::Store(e) = &e {
        tracing::error!(error = %e, "registry store call failed");
    }
    GatewayError::from(e).response()
}

/// Reads a JSON object body (up to 1 MiB); an empty body reads as `{}`.
pub(super) async fn read_json(api: &Admin, body: ClientBody) -> Result<Value, Resp> {
    let bytes = super::read_bytes(api, body, 1024 * 1024).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(GatewayError::BadRequest("request body must be a JSON object".into()).response()),
    }
}

/// Runs a registry action on the blocking pool, then reloads routing.
async fn act<T: Send + 'static>(
    api: &Arc<Admin>,
    f: impl FnOnce(&dyn Store) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Resp> {
    let g = api.clone();
    let out = tokio::task::spawn_blocking(move || {
        let out = f(g.store.as_ref())?;
        if let Err(e) = (g.reload)() {
            tracing::error!(error = %e, "routing reload after an admin action failed");
        }
        Ok::<T, RegistryError>(out)
    })
    .await
    .map_err(|_| GatewayError::Internal.response())?;
    out.map_err(registry_error)
}

/// `GET /admin/v1/models`: routes with their versions and live weights.
pub async fn list(api: &Arc<Admin>) -> Resp {
    let snap = match act(api, |s| Ok(s.load_routing()?)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let data: Vec<Value> = snap
        .routes
        .iter()
        .map(|r| {
            let versions: Vec<&crate::store::VersionRow> = snap.versions.iter().filter(|v| v.route == r.name).collect();
            let canary_bp: i64 = versions.iter().filter(|v| v.state == "canary").map(|v| v.weight_bp).sum();
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let share = match v.state.as_str() {
                        "canary" => v.weight_bp as f64 / 100.0,
                        "stable" => (10_000 - canary_bp) as f64 / 100.0,
                        _ => 0.0,
                    };
                    let mut o = serde_json::to_value(v).unwrap_or_default();
                    o["traffic_percent"] = json!(share);
                    o
                })
                .collect();
            json!({"object": "route", "name": r.name, "retry_on_stable": r.retry_on_stable, "versions": versions})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "generation": snap.generation}),
    )
}

/// `GET /admin/v1/models/{route}/versions/{version}`: one version, why it is
/// in its state (its last transition's reason and the latest gate
/// verdict), and its history from the audit log, newest first.
pub async fn show_version(api: &Arc<Admin>, route: &str, version: &str) -> Resp {
    let (route, version) = (route.to_string(), version.to_string());
    let found = act(api, move |s| {
        let v = registry::find(s, &route, &version)?;
        let gate = (s.list_experiments(Some(&route), Some(&version), 20)?)
            .into_iter()
            .find(|e| e.verdict.is_some())
            .map(|e| {
                let verdict = e.verdict.unwrap_or_default();
                json!({"experiment": e.id, "baseline": e.baseline, "pass": verdict["pass"],
                       "checks": verdict["checks"], "finished_at_ms": e.finished_at_ms})
            });
        let history = s.events_about(&format!("{route}/{version}"), 50)?;
        let mut o = serde_json::to_value(&v).unwrap_or_default();
        o["object"] = json!("model_version");
        o["gate"] = gate.unwrap_or(Value::Null);
        o["history"] = serde_json::to_value(history).unwrap_or_default();
        Ok(o)
    })
    .await;
    match found {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(r) => r,
    }
}

/// `POST /admin/v1/models`: registers a version.
pub async fn register(api: &Arc<Admin>, body: ClientBody) -> Resp {
    let v = match read_json(api, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let new: NewVersion = match serde_json::from_value(v) {
        Ok(n) => n,
        Err(e) => {
            return (GatewayError::BadRequest(format!(
                "{e}; send route, version, upstream and optionally upstream_model, api_key_env, headers, system_prompt, reason"
            ))).response()
        }
    };
    match act(api, move |s| registry::register(s, new, "admin")).await {
        Ok(row) => json_response(
            StatusCode::CREATED,
            &serde_json::to_value(row).unwrap_or_default(),
        ),
        Err(r) => r,
    }
}

/// `POST /admin/v1/models/{route}/versions/{version}/approve|reject` with `{"reason": "..."}`.
pub async fn judge(
    api: &Arc<Admin>,
    route: &str,
    version: &str,
    approve: bool,
    body: ClientBody,
) -> Resp {
    let v = match read_json(api, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(reason) = v
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
        .map(str::to_string)
    else {
        return (GatewayError::InvalidField {
            param: "reason".into(),
            message: "say why: {\"reason\": \"...\"} is required and lands in the audit log".into(),
        })
        .response();
    };
    let (route, version) = (route.to_string(), version.to_string());
    match act(api, move |s| {
        registry::judge(s, &route, &version, approve, &reason, "admin")
    })
    .await
    {
        Ok(row) => json_response(
            StatusCode::OK,
            &serde_json::to_value(row).unwrap_or_default(),
        ),
        Err(r) => r,
    }
}

/// What the controller would do now, in words.
fn describe(a: &crate::rollout::decide::Action) -> String {
    use crate::rollout::decide::Action;
    match a {
        Action::Hold { reason } => format!("hold ({reason})"),
        Action::Advance {
            step,
            weight_percent,
        } => format!("advance to step {} at {weight_percent}%", step + 1),
        Action::Promote => "promote the canary to stable".into(),
        Action::Rollback { reason } => format!("roll back: {reason}"),
    }
}

/// A rollout with its live comparison for the current step.
fn rollout_json(store: &dyn Store, r: &RolloutRow) -> Result<Value, RegistryError> {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    let plan: Option<Plan> = serde_json::from_value(r.plan.clone()).ok();
    if let Some(plan) = plan.filter(|_| matches!(r.status.as_str(), "running" | "paused")) {
        let obs = driver::observe(store, r)?;
        let weight_bp = driver::live_weight_bp(&store.load_routing()?, r);
        let step = plan.steps.get(r.step.max(0) as usize);
        let now = crate::clock::now_ms();
        v["live"] = json!({
            "step": r.step + 1,
            "steps": plan.steps.len(),
            // The live weight is what callers get; it differs from the
            // step's after an operator sets one by hand.
            "weight_percent": weight_bp as f64 / 100.0,
            "step_weight_percent": step.map(|s| s.weight_percent),
            "elapsed_secs": (now - r.step_started_ms).max(0) / 1000,
            "min_duration_secs": step.map(|s| s.min_duration_secs),
            "min_requests": step.map(|s| s.min_requests),
            "canary": obs.canary,
            "stable": obs.stable,
            "decision": describe(&crate::rollout::decide::decide(&plan, &driver::state_of(r, weight_bp), &obs, now)),
        });
        v["live"]["by_segment"] = segments_json(store, r)?;
    }
    v["object"] = json!("rollout");
    Ok(v)
}

/// Canary and stable side by side per user segment over the current step,
/// so a regression confined to one segment is seen even when the totals hide
/// it. Calls without a segment are listed under `""`.
fn segments_json(store: &dyn Store, r: &RolloutRow) -> Result<Value, RegistryError> {
    let canary = store.segment_stats(&r.route, &r.canary, r.step_started_ms)?;
    let stable = store.segment_stats(&r.route, &r.baseline, r.step_started_ms)?;
    let side = |s: Option<&crate::store::VersionStats>| {
        let s = s.copied().unwrap_or_default();
        json!({"requests": s.requests, "errors": s.errors, "thumbs_up": s.thumbs_up, "thumbs_down": s.thumbs_down})
    };
    let mut out = serde_json::Map::new();
    for seg in canary.keys().chain(stable.keys()) {
        out.entry(seg.clone()).or_insert_with(
            || json!({"canary": side(canary.get(seg)), "stable": side(stable.get(seg))}),
        );
    }
    Ok(Value::Object(out))
}

/// `GET /admin/v1/rollouts?route=&active=true`
pub async fn list_rollouts(api: &Arc<Admin>, query: &HashMap<String, String>) -> Resp {
    let route = query.get("route").filter(|r| !r.is_empty()).cloned();
    let active = query.get("active").is_some_and(|v| v == "true" || v == "1");
    let rows = act(api, move |s| {
        s.list_rollouts(route.as_deref(), active)?
            .iter()
            .map(|r| rollout_json(s, r))
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    match rows {
        Ok(data) => json_response(StatusCode::OK, &json!({"object": "list", "data": data})),
        Err(r) => r,
    }
}

/// `GET /admin/v1/rollouts/{id}`; `{id}` may also be a route with one
/// active rollout.
pub async fn show_rollout(api: &Arc<Admin>, id: &str) -> Resp {
    let id = id.to_string();
    let found = act(api, move |s| rollout_json(s, &driver::resolve(s, &id)?)).await;
    match found {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(r) => r,
    }
}

/// `POST /admin/v1/rollouts` with `{"route", "version", "plan"?}`.
pub async fn start_rollout(api: &Arc<Admin>, body: ClientBody) -> Resp {
    let v = match read_json(api, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(route), Some(version)) = (field("route"), field("version")) else {
        return (GatewayError::BadRequest(
            "send {\"route\": \"...\", \"version\": \"...\"} and optionally a \"plan\" and an \"override_gate\" reason".into(),
        ))
        .response();
    };
    let plan = match v.get("plan") {
        None | Some(Value::Null) => Plan::default_plan(),
        Some(p) => match serde_json::from_value::<Plan>(p.clone()) {
            Ok(p) => p,
            Err(e) => {
                return (GatewayError::InvalidField {
                    param: "plan".into(),
                    message: format!("plan: {e}"),
                })
                .response()
            }
        },
    };
    let override_gate = field("override_gate");
    match act(api, move |s| {
        let reason = override_gate.as_deref();
        let overridden = verdict::check_rollout(s, &route, &version, reason)?;
        let r = driver::start(s, &route, &version, plan, "admin")?;
        if let Some(experiment) = overridden {
            crate::audit::record(
                s,
                "admin",
                "gate_overridden",
                Some(format!("{route}/{version}")),
                json!({"experiment": experiment, "reason": reason, "rollout": r.id}),
            )?;
        }
        rollout_json(s, &r)
    })
    .await
    {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(r) => r,
    }
}

/// `POST /admin/v1/rollouts/{id}/{pause|resume|promote|abort|weight}`;
/// `{id}` may also be a route with one active rollout.
pub async fn command(api: &Arc<Admin>, id: &str, op: &str, body: ClientBody) -> Resp {
    let v = match read_json(api, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let cmd = match op {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "promote" => Command::Promote,
        "abort" => Command::Abort(
            v.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("aborted by operator")
                .to_string(),
        ),
        "weight" => match v.get("weight_percent").and_then(Value::as_f64) {
            Some(w) => Command::SetWeight(w),
            None => {
                return (GatewayError::InvalidField {
                    param: "weight_percent".into(),
                    message: "send {\"weight_percent\": 0..100}".into(),
                })
                .response()
            }
        },
        other => {
            return GatewayError::NotFound(format!(
                "no rollout action {other}; use pause, resume, weight, promote or abort"
            ))
            .response()
        }
    };
    let id = id.to_string();
    match act(api, move |s| {
        let r = driver::command(s, &id, cmd, "admin")?;
        rollout_json(s, &r)
    })
    .await
    {
        Ok(v) => {
            if let (Some(route), Some(status @ ("promoted" | "aborted"))) =
                (v["route"].as_str(), v["status"].as_str())
            {
                api.metrics.rollout_finished(route, status == "promoted");
            }
            json_response(StatusCode::OK, &v)
        }
        Err(r) => r,
    }
}
