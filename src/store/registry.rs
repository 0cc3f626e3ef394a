//! The registry and its rollouts: routes, model versions and their lifecycle,
//! canary rollouts, the routing generation replicas reload on, and the live
//! numbers of a version that the rollout controller decides on.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EventRow, StoreError};

/// What a store keeps of the registry and its rollouts.
pub trait RegistryStore: Send + Sync {
    /// The routing generation, bumped by every registry write.
    fn routing_generation(&self) -> Result<i64, StoreError>;
    fn load_routing(&self) -> Result<RoutingSnapshot, StoreError>;
    /// Applies a registry action atomically. A new version that already exists
    /// fails the whole write with [`StoreError::Conflict`].
    fn apply_registry(&self, write: &RegistryWrite) -> Result<(), StoreError>;
    fn list_rollouts(
        &self,
        route: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<RolloutRow>, StoreError>;
    fn get_rollout(&self, id: &str) -> Result<Option<RolloutRow>, StoreError>;
    /// Requests, errors, p95 latency and thumbs of one version since `since_ms`.
    fn version_stats(
        &self,
        route: &str,
        version: &str,
        since_ms: i64,
    ) -> Result<VersionStats, StoreError>;
    /// The same numbers per user segment (calls without one under `""`),
    /// for comparing a canary with stable segment by segment. The p95 is
    /// left out: per segment the samples are too few to bear it.
    fn segment_stats(
        &self,
        route: &str,
        version: &str,
        since_ms: i64,
    ) -> Result<BTreeMap<String, VersionStats>, StoreError>;
}

/// A route: the logical model name apps call.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RouteRow {
    pub name: String,
    /// Retry a failed canary call once on stable (counted against the canary).
    pub retry_on_stable: bool,
    pub created_at_ms: i64,
    pub created_by: String,
}

/// A model version: one upstream behind a route, with its lifecycle state.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VersionRow {
    pub route: String,
    pub name: String,
    pub upstream_url: String,
    pub upstream_model: Option<String>,
    pub api_key_env: Option<String>,
    pub connect_timeout_ms: Option<i64>,
    pub first_byte_timeout_ms: Option<i64>,
    pub total_timeout_ms: Option<i64>,
    pub headers: BTreeMap<String, String>,
    pub system_prompt: Option<String>,
    /// registered | approved | rejected | canary | stable | retired | rolled_back
    pub state: String,
    /// The canary's share of the route's traffic, in basis points (0..=10000).
    pub weight_bp: i64,
    pub created_at_ms: i64,
    pub created_by: String,
    pub reason: Option<String>,
    pub updated_at_ms: i64,
}

/// A change of a version's state or weight.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionUpdate {
    pub route: String,
    pub name: String,
    pub state: String,
    pub weight_bp: i64,
    pub reason: Option<String>,
}

/// A canary rollout as stored.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RolloutRow {
    pub id: String,
    pub route: String,
    pub canary: String,
    pub baseline: String,
    pub plan: serde_json::Value,
    pub status: String,
    pub step: i64,
    pub step_started_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub reason: Option<String>,
    pub updated_at_ms: i64,
}

/// Everything one registry action writes, applied in one transaction that also
/// bumps the routing generation, so replicas reload exactly once per action.
#[derive(Debug, Clone, Default)]
pub struct RegistryWrite {
    pub routes: Vec<RouteRow>,
    pub new_versions: Vec<VersionRow>,
    pub updates: Vec<VersionUpdate>,
    pub rollout: Option<RolloutRow>,
    pub events: Vec<EventRow>,
}

/// Routes and versions with the generation they were read at.
#[derive(Debug, Clone, Default)]
pub struct RoutingSnapshot {
    pub generation: i64,
    pub routes: Vec<RouteRow>,
    pub versions: Vec<VersionRow>,
}

/// Live numbers of one version over a window, for the rollout controller.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VersionStats {
    pub requests: u64,
    /// 5xx answers and timeouts.
    pub errors: u64,
    pub p95_latency_ms: Option<f64>,
    pub thumbs_up: u64,
    pub thumbs_down: u64,
}
