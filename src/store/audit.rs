//! The audit log: who read a raw payload, erased a user, purged expired data,
//! changed the registry or built a dataset, and when.
//!
//! Events are only ever appended; nothing here updates or deletes one.

use serde::Serialize;

use super::StoreError;

/// What a store keeps of the audit log.
pub trait AuditStore: Send + Sync {
    fn record_event(&self, event: &EventRow) -> Result<(), StoreError>;
    /// Events newest first, optionally of one kind.
    fn list_events(
        &self,
        limit: usize,
        before: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// The newest `limit` events about one subject (`route/version`, a
    /// rollout id, ...), newest first.
    fn events_about(&self, subject: &str, limit: usize) -> Result<Vec<EventRow>, StoreError>;
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
