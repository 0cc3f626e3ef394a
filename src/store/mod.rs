//! Storage: the [`Store`] trait every backend implements, the rows it holds, and
//! versioned migrations per backend. SQLite ([`sqlite::SqliteStore`]) is the
//! embedded default; PostgreSQL will implement the same trait.
//!
//! Stores write rows exactly as given: ids, timestamps and derived fields are made
//! by the capture and logic layers. Every method blocks, so async callers run them
//! on a blocking thread (`tokio::task::spawn_blocking`) or on the writer thread;
//! the request hot path never calls a store.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

pub mod cipher;
pub mod sqlite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database at {path} cannot be opened: {message}")]
    Open { path: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("database schema version {found} is newer than this binary knows ({known}); upgrade flywheel")]
    SchemaTooNew { found: i64, known: i64 },
}

/// One captured interaction, as stored.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InteractionRow {
    /// UUIDv7, so that ids sort by creation time.
    pub id: String,
    /// Unix time in milliseconds when the request arrived.
    pub created_at_ms: i64,
    /// `chat.completions`, `completions`, `embeddings`, `responses`, `models` or `passthrough`.
    /// (This and the other fields of few values are `Cow`: the capture writer
    /// fills them with constants, without an allocation per row.)
    pub endpoint: Cow<'static, str>,
    pub method: Cow<'static, str>,
    pub path: Cow<'static, str>,
    /// The logical route that served it (`default` in zero-config mode).
    pub route: String,
    /// The `model` field exactly as the client sent it.
    pub requested_model: Option<String>,
    /// The version label of the upstream that served it.
    pub version: String,
    /// The upstream base URL it was sent to.
    pub upstream: String,
    pub status: u16,
    /// `ok`, `upstream_error`, `client_closed`, `timeout` or `rejected`.
    pub outcome: Cow<'static, str>,
    pub stream: bool,
    /// The request body as the client sent it (JSON text; other bodies as lossy UTF-8).
    #[serde(skip)]
    pub request_body: String,
    /// The response: the upstream's JSON, or for streams the response assembled
    /// from the chunks in the shape of the non-streaming object.
    #[serde(skip)]
    pub response_body: Option<String>,
    /// True when a body was larger than `capture.max_body_bytes` and was cut.
    pub truncated: bool,
    pub finish_reason: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    /// True when token counts were estimated because the upstream reported none.
    pub tokens_estimated: bool,
    /// The client key's name, when client keys are configured.
    pub app: Option<String>,
    /// Keyed hash of the user id; the raw id is never stored.
    pub user_hash: Option<String>,
    pub session_id: Option<String>,
    /// `x-flywheel-meta-*` headers, name (without prefix) to value.
    pub metadata: BTreeMap<String, String>,
    /// The gateway's error message when it answered for the upstream.
    pub error: Option<String>,
    /// `redacted`, `failed` (bodies not stored) or `off`.
    pub redaction: Cow<'static, str>,
    /// How many PII matches redaction replaced.
    pub pii_found: i64,
    /// The user segment (enterprise, free tier, ...): the client key's
    /// configured segment, else the `x-flywheel-segment` header.
    pub segment: Option<String>,
    /// The encrypted unredacted payload, when `privacy.keep_raw` is on.
    #[serde(skip)]
    pub raw: Option<crate::crypto::vault::Sealed>,
}

/// A page of interactions, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: usize,
    /// Only ids strictly older than this one (the previous page's last id).
    pub before: Option<String>,
    pub route: Option<String>,
    pub segment: Option<String>,
}

/// One piece of feedback, as stored.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FeedbackRow {
    pub id: String,
    pub interaction_id: String,
    pub created_at_ms: i64,
    pub route: String,
    pub version: String,
    /// `thumbs`, `rating`, `correction`, `comment` or `outcome`.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: serde_json::Value,
    /// Low-cardinality summary: `up`/`down` for thumbs, `success`/`failure` for outcomes.
    pub label: Option<String>,
    /// The feedback on a 0..1 scale where it has one (thumbs, ratings, outcomes).
    pub score: Option<f64>,
    pub scale: Option<[f64; 2]>,
    pub app: Option<String>,
    pub user_hash: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub idempotency_key: Option<String>,
    #[serde(skip)]
    pub request_hash: String,
}

/// What storing feedback did.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedbackInsert {
    Created,
    /// The idempotency key was seen before: this is the feedback stored then.
    Existing(Box<FeedbackRow>),
}

/// A page of feedback, newest first.
#[derive(Debug, Clone, Default)]
pub struct FeedbackQuery {
    pub limit: usize,
    pub before: Option<String>,
    pub since_ms: Option<i64>,
    pub kind: Option<String>,
    pub route: Option<String>,
    pub interaction_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    pub interactions_total: u64,
    pub by_outcome: BTreeMap<String, u64>,
    pub by_route: BTreeMap<String, u64>,
    pub by_endpoint: BTreeMap<String, u64>,
    /// Interactions per user segment (those without one are not listed).
    pub by_segment: BTreeMap<String, u64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub first_at_ms: Option<i64>,
    pub last_at_ms: Option<i64>,
    pub feedback_total: u64,
    /// Feedback counts by type.
    pub feedback_by_type: BTreeMap<String, u64>,
    /// Feedback counts by label (`up`, `down`, `success`, `failure`).
    pub feedback_by_label: BTreeMap<String, u64>,
}

/// One audit event.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EventRow {
    pub id: String,
    pub at_ms: i64,
    /// Who acted: `admin`, `retention`, `gateway`.
    pub actor: String,
    /// What happened, e.g. `raw_payload_read`, `user_forgotten`, `retention_purge`.
    pub kind: String,
    /// What it happened to (an interaction id, a user hash), if anything.
    pub subject: Option<String>,
    pub detail: serde_json::Value,
}

/// Rows removed (or, in a dry run, that would be).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Removed {
    pub interactions: u64,
    pub feedback: u64,
    pub raw_payloads: u64,
}

/// What a retention sweep removes: rows created before these times (unix ms).
#[derive(Debug, Clone, Copy, Default)]
pub struct PurgeCutoffs {
    pub capture_before_ms: Option<i64>,
    pub raw_before_ms: Option<i64>,
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

/// Which interactions a dataset build reads, in id (time) order. The store
/// applies these cheap filters; the curation pipeline applies the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanQuery {
    pub route: Option<String>,
    /// Empty = every version.
    pub versions: Vec<String>,
    /// Inclusive lower bound on `created_at_ms`.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on `created_at_ms`.
    pub until_ms: Option<i64>,
    pub endpoint: Option<String>,
    /// The `model` the client asked for, exactly.
    pub requested_model: Option<String>,
    pub segment: Option<String>,
}

/// One interaction with its bodies and all its feedback (oldest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scanned {
    pub interaction: InteractionRow,
    pub feedback: Vec<FeedbackRow>,
}

/// A dataset version as stored; the manifest holds everything else.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DatasetRow {
    pub id: String,
    pub created_at_ms: i64,
    pub created_by: String,
    pub route: Option<String>,
    pub parent: Option<String>,
    pub content_hash: String,
    pub manifest: serde_json::Value,
}

/// What every storage backend provides.
pub trait Store: Send + Sync + 'static {
    /// Writes all rows in one transaction: all land or none do.
    fn insert_interactions(&self, rows: &[InteractionRow]) -> Result<(), StoreError>;
    /// A page of interactions without their bodies, newest first.
    fn list_interactions(&self, q: &ListQuery) -> Result<Vec<InteractionRow>, StoreError>;
    /// One interaction with its bodies.
    fn get_interaction(&self, id: &str) -> Result<Option<InteractionRow>, StoreError>;
    fn stats(&self) -> Result<Stats, StoreError>;
    /// The route and version that served a stored interaction.
    fn interaction_served(&self, id: &str) -> Result<Option<(String, String)>, StoreError>;
    /// Stores feedback unless its idempotency key was already used (then returns
    /// what was stored under it).
    fn insert_feedback(&self, row: &FeedbackRow) -> Result<FeedbackInsert, StoreError>;
    fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackRow>, StoreError>;
    /// The sealed raw payload of an interaction, if one was kept.
    fn get_raw(
        &self,
        interaction_id: &str,
    ) -> Result<Option<crate::crypto::vault::Sealed>, StoreError>;
    /// Deletes everything tied to these hashes of one user (one per key still
    /// known): their interactions (with those interactions' feedback and raw
    /// payloads) and the feedback they gave.
    fn forget_user(&self, user_hashes: &[String]) -> Result<Removed, StoreError>;
    /// Deletes rows older than the cutoffs, `batch` rows per transaction so the
    /// capture writer is never held up for long; `dry_run` only counts.
    fn purge(
        &self,
        cutoffs: PurgeCutoffs,
        batch: usize,
        dry_run: bool,
    ) -> Result<Removed, StoreError>;
    fn record_event(&self, event: &EventRow) -> Result<(), StoreError>;
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
    /// Events newest first, optionally of one kind.
    fn list_events(
        &self,
        limit: usize,
        before: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// How many interactions `scan` would visit.
    fn count_scan(&self, q: &ScanQuery) -> Result<u64, StoreError>;
    /// Visits the selected interactions in id order with their feedback,
    /// streaming (memory does not grow with the table). `each` returns false
    /// to stop early. Reads run on their own connection and one snapshot, so a
    /// long scan neither blocks nor sees the capture writer.
    fn scan(&self, q: &ScanQuery, each: &mut dyn FnMut(Scanned) -> bool) -> Result<(), StoreError>;
    /// The named interactions with bodies and feedback; missing ids are skipped.
    fn scan_ids(&self, ids: &[String]) -> Result<Vec<Scanned>, StoreError>;
    /// Records a finished dataset version; `Conflict` if the id exists.
    fn insert_dataset(&self, row: &DatasetRow) -> Result<(), StoreError>;
    /// Newest first.
    fn list_datasets(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DatasetRow>, StoreError>;
    fn get_dataset(&self, id: &str) -> Result<Option<DatasetRow>, StoreError>;
    /// Returns the named secret, creating it with `init` on first use, so that a
    /// zero-config gateway keeps stable user hashes across restarts.
    fn secret(&self, name: &str, init: &dyn Fn() -> Vec<u8>) -> Result<Vec<u8>, StoreError>;
}
