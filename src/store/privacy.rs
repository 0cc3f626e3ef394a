//! What the store does for privacy: sealed raw payloads, erasing a user,
//! retention purges, and the secrets that keep user hashes stable.

use serde::Serialize;

use super::StoreError;
use crate::crypto::vault::Sealed;

/// What a store does to keep and erase personal data.
pub trait PrivacyStore: Send + Sync {
    /// The sealed raw payload of an interaction, if one was kept.
    fn get_raw(&self, interaction_id: &str) -> Result<Option<Sealed>, StoreError>;
    /// Deletes everything tied to these hashes of one user (one per key still
    /// known): their interactions (with those interactions' feedback, raw
    /// payloads and the evaluation answers to them) and the feedback they
    /// gave.
    fn forget_user(&self, user_hashes: &[String]) -> Result<Removed, StoreError>;
    /// Deletes rows older than the cutoffs, `batch` rows per transaction so the
    /// capture writer is never held up for long; `dry_run` only counts.
    fn purge(
        &self,
        cutoffs: PurgeCutoffs,
        batch: usize,
        dry_run: bool,
    ) -> Result<Removed, StoreError>;
    /// Returns the named secret, creating it with `init` on first use, so that a
    /// zero-config gateway keeps stable user hashes across restarts.
    fn secret(&self, name: &str, init: &dyn Fn() -> Vec<u8>) -> Result<Vec<u8>, StoreError>;
}

/// Rows removed (or, in a dry run, that would be).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Removed {
    pub interactions: u64,
    pub feedback: u64,
    pub raw_payloads: u64,
    /// Evaluation answers to a forgotten user's interactions (erasure only).
    pub experiment_results: u64,
}

/// What a retention sweep removes: rows created before these times (unix ms).
#[derive(Debug, Clone, Copy, Default)]
pub struct PurgeCutoffs {
    pub capture_before_ms: Option<i64>,
    pub raw_before_ms: Option<i64>,
}
