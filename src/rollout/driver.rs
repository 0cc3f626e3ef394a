//! The rollout driver: starts rollouts, applies operators' commands, and every
//! tick feeds each running rollout's live numbers to [`decide`] and applies the
//! answer. It also reloads the routing table when the registry changed, so a
//! weight set here (or by another replica) takes effect within one tick.
//!
//! Only one process should drive rollouts; with a shared database that becomes
//! a leader lease (see ARCHITECTURE.md). Every write is one registry
//! transaction with its audit event.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::decide::{decide, Action, Observations, Observed, Plan, RolloutState, Status};
use crate::audit::event;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::registry::Reload;
use crate::registry::{find, RegistryError};
use crate::store::{
    RegistryStore, RegistryWrite, RolloutRow, RoutingSnapshot, VersionStats, VersionUpdate,
};

fn bp(weight_percent: f64) -> i64 {
    (weight_percent * 100.0).round().clamp(0.0, 10_000.0) as i64
}

fn status_of(s: &str) -> Status {
    match s {
        "running" => Status::Running,
        "paused" => Status::Paused,
        "promoted" => Status::Promoted,
        "rolled_back" => Status::RolledBack,
        _ => Status::Aborted,
    }
}

/// The decision's view of a stored rollout whose canary has `weight_bp`.
pub fn state_of(r: &RolloutRow, weight_bp: i64) -> RolloutState {
    RolloutState {
        status: status_of(&r.status),
        step: r.step.max(0) as usize,
        step_started_ms: r.step_started_ms,
        weight_percent: weight_bp as f64 / 100.0,
    }
}

/// The canary's live weight in basis points, as the registry holds it; 0 if
/// the canary is no longer in the snapshot.
pub fn live_weight_bp(snap: &RoutingSnapshot, r: &RolloutRow) -> i64 {
    snap.versions
        .iter()
        .find(|v| v.route == r.route && v.name == r.canary)
        .map_or(0, |v| v.weight_bp)
}

/// Starts a rollout of an approved version against the route's stable one.
pub fn start(
    store: &dyn RegistryStore,
    route: &str,
    version: &str,
    plan: Plan,
    actor: &str,
) -> Result<RolloutRow, RegistryError> {
    // The registry's error carries the message: the registry sits below
    // rollouts and does not name their types.
    plan.validate()
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
    // The active rollout is checked first: once it runs, its canary is no
    // longer "approved", and a message about that state would hide the
    // real obstacle and what to do about it.
    let snap = store.load_routing()?;
    if let Some(active) = store.list_rollouts(Some(route), true)?.first() {
        return Err(RegistryError::Conflict(already_active(&snap, active)));
    }
    let canary = find(store, route, version)?;
    if canary.state != "approved" {
        return Err(RegistryError::Conflict(format!(
            "version {version} is {}; only an approved version can take live traffic (flywheel models approve)",
            canary.state
        )));
    }
    let stable = snap
        .versions
        .iter()
        .find(|v| v.route == route && v.state == "stable")
        .ok_or_else(|| {
            RegistryError::Conflict(format!(
                "route {route} has no stable version to compare against"
            ))
        })?;
    let now = now_ms();
    let first = plan.steps[0].weight_percent;
    let row = RolloutRow {
        id: uuid::Uuid::now_v7().to_string(),
        route: route.into(),
        canary: version.into(),
        baseline: stable.name.clone(),
        plan: serde_json::to_value(&plan).unwrap_or_default(),
        status: "running".into(),
        step: 0,
        step_started_ms: now,
        started_at_ms: now,
        finished_at_ms: None,
        reason: None,
        updated_at_ms: now,
    };
    store.apply_registry(&RegistryWrite {
        updates: vec![VersionUpdate {
            route: route.into(),
            name: version.into(),
            state: "canary".into(),
            weight_bp: bp(first),
            reason: Some(format!("rollout {}", row.id)),
        }],
        rollout: Some(row.clone()),
        events: vec![event(
            actor,
            "rollout_started",
            Some(format!("{route}/{version}")),
            json!({"rollout": row.id, "baseline": stable.name, "weight_percent": first, "plan": row.plan}),
        )],
        ..Default::default()
    })?;
    Ok(row)
}

/// Why a route cannot start another rollout: the active one, where it is,
/// and the commands that act on it.
fn already_active(snap: &RoutingSnapshot, r: &RolloutRow) -> String {
    let steps = serde_json::from_value::<Plan>(r.plan.clone()).map_or(0, |p| p.steps.len());
    let weight = live_weight_bp(snap, r) as f64 / 100.0;
    let route = &r.route;
    format!(
        "route {route} already has an active rollout {}: {} {} at step {}/{steps}, {weight}% of traffic; \
         act on it with `flywheel rollout pause {route}` (or resume, set-weight {route} N, promote, abort) \
         and start a new one once it has ended",
        r.id,
        r.canary,
        r.status,
        r.step + 1
    )
}

/// What an operator can do to a rollout at any time.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Pause,
    Resume,
    /// Sets the canary's share by hand; the automatic plan pauses until resumed.
    SetWeight(f64),
    Promote,
    Abort(String),
}

/// Finds a rollout by its id, or by its route's name where that route has
/// one active rollout: operators know a rollout by the route it changes,
/// and a route has at most one active rollout at a time.
pub fn resolve(store: &dyn RegistryStore, id_or_route: &str) -> Result<RolloutRow, RegistryError> {
    if let Some(r) = store.get_rollout(id_or_route)? {
        return Ok(r);
    }
    let key = id_or_route;
    let mut active = store.list_rollouts(Some(key), true)?;
    match active.len() {
        1 => return Ok(active.remove(0)),
        0 => {}
        // start() refuses a second active rollout on a route, so this is a
        // database written by something else; naming the ids lets the
        // operator pick one.
        n => {
            let ids: Vec<&str> = active.iter().map(|r| r.id.as_str()).collect();
            return Err(RegistryError::Conflict(format!(
                "route {key} has {n} active rollouts ({}); name one by its id",
                ids.join(", ")
            )));
        }
    }
    if store.list_rollouts(Some(key), false)?.is_empty() {
        Err(RegistryError::NotFound(format!(
            "no rollout with id or route {key}; list rollouts with `flywheel rollout status` (GET /admin/v1/rollouts)"
        )))
    } else {
        Err(RegistryError::NotFound(format!(
            "route {key} has no active rollout; see its past ones with `flywheel rollout status --route {key}` or name one by its id"
        )))
    }
}

fn get_active(store: &dyn RegistryStore, id_or_route: &str) -> Result<RolloutRow, RegistryError> {
    let r = resolve(store, id_or_route)?;
    if status_of(&r.status).is_terminal() {
        return Err(RegistryError::Conflict(format!(
            "rollout {} has already ended ({})",
            r.id, r.status
        )));
    }
    Ok(r)
}

/// Applies an operator's command to the rollout named by id or route.
pub fn command(
    store: &dyn RegistryStore,
    id: &str,
    cmd: Command,
    actor: &str,
) -> Result<RolloutRow, RegistryError> {
    let mut r = get_active(store, id)?;
    let now = now_ms();
    match cmd {
        Command::Pause | Command::Resume => {
            let (to, kind) = if cmd == Command::Pause {
                ("paused", "rollout_paused")
            } else {
                ("running", "rollout_resumed")
            };
            r.status = to.into();
            // A resumed step starts its hold again: numbers from before the
            // pause may no longer describe the canary.
            if cmd == Command::Resume {
                r.step_started_ms = now;
            }
            r.updated_at_ms = now;
            store.apply_registry(&RegistryWrite {
                rollout: Some(r.clone()),
                events: vec![event(
                    actor,
                    kind,
                    Some(format!("{}/{}", r.route, r.canary)),
                    json!({"rollout": r.id}),
                )],
                ..Default::default()
            })?;
            Ok(r)
        }
        Command::SetWeight(p) => {
            if !(0.0..=100.0).contains(&p) {
                return Err(RegistryError::Invalid(
                    "weight must be a percentage from 0 to 100".into(),
                ));
            }
            r.status = "paused".into();
            r.updated_at_ms = now;
            store.apply_registry(&RegistryWrite {
                updates: vec![VersionUpdate {
                    route: r.route.clone(),
                    name: r.canary.clone(),
                    state: "canary".into(),
                    weight_bp: bp(p),
                    reason: None,
                }],
                rollout: Some(r.clone()),
                events: vec![event(
                    actor,
                    "rollout_weight_set",
                    Some(format!("{}/{}", r.route, r.canary)),
                    json!({"rollout": r.id, "weight_percent": p, "note": "the plan is paused until resumed"}),
                )],
                ..Default::default()
            })?;
            Ok(r)
        }
        Command::Promote => finish(store, r, true, "promoted by operator", actor),
        Command::Abort(reason) => finish(store, r, false, &reason, actor),
    }
}

/// Ends a rollout: promoted (canary becomes stable, the old stable retires) or
/// rolled back (canary to weight 0, `rolled_back`).
fn finish(
    store: &dyn RegistryStore,
    mut r: RolloutRow,
    promoted: bool,
    reason: &str,
    actor: &str,
) -> Result<RolloutRow, RegistryError> {
    let now = now_ms();
    r.status = if promoted {
        "promoted"
    } else if actor == "controller" {
        "rolled_back"
    } else {
        "aborted"
    }
    .into();
    r.finished_at_ms = Some(now);
    r.reason = Some(reason.into());
    r.updated_at_ms = now;
    let updates = if promoted {
        vec![
            VersionUpdate {
                route: r.route.clone(),
                name: r.canary.clone(),
                state: "stable".into(),
                weight_bp: 0,
                reason: Some(reason.into()),
            },
            VersionUpdate {
                route: r.route.clone(),
                name: r.baseline.clone(),
                state: "retired".into(),
                weight_bp: 0,
                reason: Some(format!("replaced by {}", r.canary)),
            },
        ]
    } else {
        vec![VersionUpdate {
            route: r.route.clone(),
            name: r.canary.clone(),
            state: "rolled_back".into(),
            weight_bp: 0,
            reason: Some(reason.into()),
        }]
    };
    let kind = match r.status.as_str() {
        "promoted" => "rollout_promoted",
        "rolled_back" => "rollout_rolled_back",
        _ => "rollout_aborted",
    };
    store.apply_registry(&RegistryWrite {
        updates,
        rollout: Some(r.clone()),
        events: vec![event(
            actor,
            kind,
            Some(format!("{}/{}", r.route, r.canary)),
            json!({"rollout": r.id, "reason": reason}),
        )],
        ..Default::default()
    })?;
    Ok(r)
}

fn observed(s: VersionStats) -> Observed {
    Observed {
        requests: s.requests,
        errors: s.errors,
        p95_latency_ms: s.p95_latency_ms,
        thumbs_up: s.thumbs_up,
        thumbs_down: s.thumbs_down,
    }
}

/// The live comparison of a rollout's current step.
pub fn observe(store: &dyn RegistryStore, r: &RolloutRow) -> Result<Observations, RegistryError> {
    Ok(Observations {
        canary: observed(store.version_stats(&r.route, &r.canary, r.step_started_ms)?),
        stable: observed(store.version_stats(&r.route, &r.baseline, r.step_started_ms)?),
    })
}

/// One controller pass over every active rollout (blocking). Returns the
/// rollouts it ended (promoted or rolled back).
pub fn tick(store: &dyn RegistryStore, now: i64) -> Result<Vec<RolloutRow>, RegistryError> {
    let mut ended = Vec::new();
    let rollouts = store.list_rollouts(None, true)?;
    if rollouts.is_empty() {
        return Ok(ended);
    }
    // One snapshot serves every rollout: each is on a route of its own, so
    // applying one rollout's decision changes no weight another one reads.
    let snap = store.load_routing()?;
    for r in rollouts {
        let plan: Plan = match serde_json::from_value(r.plan.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(rollout = %r.id, error = %e, "stored plan is unreadable; rollout left as is");
                continue;
            }
        };
        let state = state_of(&r, live_weight_bp(&snap, &r));
        let obs = observe(store, &r)?;
        match decide(&plan, &state, &obs, now) {
            Action::Hold { .. } => {}
            Action::Advance {
                step,
                weight_percent,
            } => {
                let mut next = r.clone();
                next.step = step as i64;
                next.step_started_ms = now;
                next.updated_at_ms = now;
                store.apply_registry(&RegistryWrite {
                    updates: vec![VersionUpdate {
                        route: r.route.clone(),
                        name: r.canary.clone(),
                        state: "canary".into(),
                        weight_bp: bp(weight_percent),
                        reason: None,
                    }],
                    rollout: Some(next),
                    events: vec![event(
                        "controller",
                        "rollout_advanced",
                        Some(format!("{}/{}", r.route, r.canary)),
                        json!({"rollout": r.id, "step": step + 1, "weight_percent": weight_percent, "observed": obs}),
                    )],
                    ..Default::default()
                })?;
            }
            Action::Promote => ended.push(finish(
                store,
                r,
                true,
                "every step of the plan passed",
                "controller",
            )?),
            Action::Rollback { reason } => {
                ended.push(finish(store, r, false, &reason, "controller")?)
            }
        }
    }
    Ok(ended)
}

/// Runs the controller and the routing reload until `stop` fires.
pub async fn run(
    store: Arc<dyn RegistryStore>,
    metrics: Arc<Metrics>,
    reload: Reload,
    tick_every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (store, metrics, reload) = (store.clone(), metrics.clone(), reload.clone());
        let result = tokio::task::spawn_blocking(move || -> Result<(), RegistryError> {
            for r in tick(store.as_ref(), now_ms())? {
                metrics.rollout_finished(&r.route, r.status == "promoted");
            }
            reload()?;
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "rollout controller pass failed"),
            Err(e) => tracing::error!(error = %e, "rollout controller panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick_every) => {}
            _ = stop.changed() => return,
        }
    }
}
