//! Feedback on interactions: stored once per idempotency key, listed for the
//! admin API, and checked against the interaction it names.

use serde::Serialize;

use super::StoreError;

/// What a store keeps of feedback.
pub trait FeedbackStore: Send + Sync {
    /// The route and version that served a stored interaction, which the
    /// feedback on it is counted against.
    fn interaction_served(&self, id: &str) -> Result<Option<(String, String)>, StoreError>;
    /// Stores feedback unless its idempotency key was already used (then returns
    /// what was stored under it).
    fn insert_feedback(&self, row: &FeedbackRow) -> Result<FeedbackInsert, StoreError>;
    /// A page of feedback, newest first.
    fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackRow>, StoreError>;
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
