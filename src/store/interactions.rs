//! Captured interactions: the rows the capture writer inserts in batches and
//! the admin API pages through, and the totals of its overview.
//!
//! This is the only storage the capture writer touches, so this trait is all
//! a store must provide for capture to run.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use super::StoreError;

/// What a store keeps of captured traffic.
pub trait InteractionStore: Send + Sync {
    /// Writes all rows in one transaction: all land or none do.
    fn insert_interactions(&self, rows: &[InteractionRow]) -> Result<(), StoreError>;
    /// A page of interactions without their bodies, newest first.
    fn list_interactions(&self, q: &ListQuery) -> Result<Vec<InteractionRow>, StoreError>;
    /// One interaction with its bodies.
    fn get_interaction(&self, id: &str) -> Result<Option<InteractionRow>, StoreError>;
    /// Totals over everything stored, feedback included.
    fn stats(&self) -> Result<Stats, StoreError>;
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

/// Totals over the stored interactions and their feedback.
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
