//! Storage: one narrow trait per concern, the rows each holds, and versioned
//! migrations per backend. SQLite ([`sqlite::SqliteStore`]) is the embedded
//! default; PostgreSQL will implement the same traits, and can do so one
//! concern at a time.
//!
//! | trait | owns | used by |
//! | --- | --- | --- |
//! | [`InteractionStore`] | captured interactions, totals | the capture writer, admin |
//! | [`FeedbackStore`] | feedback and the interaction it names | feedback, admin |
//! | [`RegistryStore`] | routes, versions, rollouts, live version numbers | registry, rollout, admin, routing reloads |
//! | [`DatasetStore`] | scans over interactions, dataset versions | datasets, admin |
//! | [`PrivacyStore`] | raw payloads, erasure, purges, secrets | retention, admin, the user-hash key |
//! | [`AuditStore`] | the append-only audit log | retention, datasets, admin |
//! | [`ExperimentStore`] | evaluation runs and their scored answers | evaluation, admin |
//!
//! A caller takes only the traits it uses. [`Store`] gathers them all, for the
//! one place that opens a store and hands it out; an `Arc<dyn Store>` becomes
//! an `Arc<dyn FeedbackStore>` (and so on) by trait upcasting, with no code at
//! the call. A function that needs two traits takes one store implementing
//! both (`&(impl DatasetStore + AuditStore + ?Sized)`), so that a `&dyn Store`
//! passes as it is.
//!
//! Stores write rows exactly as given: ids, timestamps and derived fields are made
//! by the capture and logic layers. Every method blocks, so async callers run them
//! on a blocking thread (`tokio::task::spawn_blocking`) or on the writer thread;
//! the request hot path never calls a store.
//!
//! This module never imports the layers above it: only `crypto`, `clock`,
//! the standard library and its own dependencies.

mod audit;
mod datasets;
mod experiments;
mod feedback;
mod interactions;
mod privacy;
mod registry;

pub mod cipher;
pub mod sqlite;

pub use audit::{AuditStore, EventRow};
pub use datasets::{DatasetRow, DatasetStore, ScanQuery, Scanned};
pub use experiments::{ExperimentRow, ExperimentStore, Finish, ResultRow};
pub use feedback::{FeedbackInsert, FeedbackQuery, FeedbackRow, FeedbackStore};
pub use interactions::{InteractionRow, InteractionStore, ListQuery, Stats};
pub use privacy::{PrivacyStore, PurgeCutoffs, Removed};
pub use registry::{
    RegistryStore, RegistryWrite, RolloutRow, RouteRow, RoutingSnapshot, VersionRow, VersionStats,
    VersionUpdate,
};

/// What a store call can fail with.
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

/// Every concern at once: what the gateway opens and hands out. Nothing else
/// should ask for it; take the narrow traits instead.
pub trait Store:
    InteractionStore
    + FeedbackStore
    + RegistryStore
    + DatasetStore
    + PrivacyStore
    + AuditStore
    + ExperimentStore
    + 'static
{
}

impl<T> Store for T where
    T: InteractionStore
        + FeedbackStore
        + RegistryStore
        + DatasetStore
        + PrivacyStore
        + AuditStore
        + ExperimentStore
        + ?Sized
        + 'static
{
}
