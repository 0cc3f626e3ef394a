//! Audit events: who did what to what, and when. Every event the gateway
//! records is made by [`event`], so each gets a time-ordered id and its time
//! from [`crate::clock`], whichever part of the gateway acted.
//!
//! The kinds in use, by the part that records them:
//! - registry: `version_registered`, `version_approved`, `version_rejected`;
//! - rollouts: `rollout_started`, `rollout_paused`, `rollout_resumed`,
//!   `rollout_weight_set`, `rollout_advanced`, `rollout_promoted`,
//!   `rollout_rolled_back`, `rollout_aborted`;
//! - privacy: `raw_payload_read`, `user_forgotten`, `retention_purge`;
//! - datasets: `dataset_built`.
//!
//! This module only makes events; it must never decide whether an action is
//! allowed. A registry write carries its events into its own transaction, so
//! that the change and its record land together; anything else appends with
//! [`record`].

use serde_json::Value;

use crate::clock::now_ms;
use crate::store::{AuditStore, EventRow, StoreError};

/// An event stamped now. `actor` is who acted (`admin`, `retention`,
/// `controller`, the operator's name), `kind` what happened, `subject` what it
/// happened to (a `route/version`, an interaction id, a user hash), if anything.
pub fn event(actor: &str, kind: &str, subject: Option<String>, detail: Value) -> EventRow {
    EventRow {
        id: uuid::Uuid::now_v7().to_string(),
        at_ms: now_ms(),
        actor: actor.to_string(),
        kind: kind.to_string(),
        subject,
        detail,
    }
}

/// Makes an event and appends it to the audit log on its own.
pub fn record(
    store: &(impl AuditStore + ?Sized),
    actor: &str,
    kind: &str,
    subject: Option<String>,
    detail: Value,
) -> Result<(), StoreError> {
    store.record_event(&event(actor, kind, subject, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_stamped_now_with_ids_in_time_order() {
        let before = now_ms();
        let a = event("admin", "user_forgotten", Some("k1:ab".into()), Value::Null);
        let b = event("retention", "retention_purge", None, Value::Null);
        assert!(a.at_ms >= before && b.at_ms >= a.at_ms);
        assert!(a.id < b.id, "uuid v7 ids sort by time: {} {}", a.id, b.id);
        assert_eq!(
            (a.actor.as_str(), a.kind.as_str()),
            ("admin", "user_forgotten")
        );
        assert_eq!(a.subject.as_deref(), Some("k1:ab"));
        assert_eq!(b.subject, None);
    }
}
