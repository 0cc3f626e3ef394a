//! Datasets: the scans a build reads captured interactions through (with their
//! feedback), and the dataset versions it records.
//!
//! The scans live here rather than with interactions because only a build
//! reads them, and they are the one long read: a backend must run them on a
//! snapshot of their own, beside the capture writer, never blocking it.

use serde::Serialize;

use super::{FeedbackRow, InteractionRow, StoreError};

/// What a dataset build reads and records.
pub trait DatasetStore: Send + Sync {
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
