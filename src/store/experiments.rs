//! Experiments: evaluation runs and every example's scored answers.

use serde::Serialize;

use super::StoreError;

/// One evaluation run. `summary` and `verdict` are set when it finishes.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ExperimentRow {
    pub id: String,
    /// `offline` (a dataset's examples) or `shadow` (sampled live requests).
    pub kind: String,
    pub route: String,
    pub candidate: String,
    pub baseline: String,
    pub dataset_id: Option<String>,
    pub split: Option<String>,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub config: serde_json::Value,
    pub summary: Option<serde_json::Value>,
    pub verdict: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub created_by: String,
}

/// One version's answer to one example of a run, with its scores.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ResultRow {
    pub experiment_id: String,
    /// The example's position in the run.
    pub example: i64,
    /// The interaction the example came from.
    pub source_id: Option<String>,
    /// `candidate` or `baseline`.
    pub side: String,
    /// The answer as JSON text; `None` when the call failed.
    pub output: Option<String>,
    pub error: Option<String>,
    pub latency_ms: Option<f64>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// Scorer name to score.
    pub scores: serde_json::Value,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// `completed`, `failed` or `cancelled`.
    pub status: String,
    pub summary: Option<serde_json::Value>,
    pub verdict: Option<serde_json::Value>,
    pub error: Option<String>,
    pub finished_at_ms: i64,
}

pub trait ExperimentStore: Send + Sync {
    /// Records a run as it starts (status `running`).
    fn insert_experiment(&self, row: &ExperimentRow) -> Result<(), StoreError>;
    /// Appends scored answers, in one transaction.
    fn insert_results(&self, rows: &[ResultRow]) -> Result<(), StoreError>;
    /// Ends a running run; a run that already ended is a conflict.
    fn finish_experiment(&self, id: &str, finish: &Finish) -> Result<(), StoreError>;
    /// Ends every run still `running` as `failed` with `reason` (a process
    /// that stopped mid-run); returns how many.
    fn abandon_running(&self, reason: &str, at_ms: i64) -> Result<usize, StoreError>;
    fn get_experiment(&self, id: &str) -> Result<Option<ExperimentRow>, StoreError>;
    /// Newest first; `candidate` narrows to one version of the route.
    fn list_experiments(
        &self,
        route: Option<&str>,
        candidate: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExperimentRow>, StoreError>;
    /// A run's answers, by example then side.
    fn experiment_results(&self, id: &str) -> Result<Vec<ResultRow>, StoreError>;
}
