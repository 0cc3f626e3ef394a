//! One offline evaluation from start to verdict: check the request, read
//! the eval set, record the run, replay it to both versions, store every
//! scored answer, aggregate, ask the route's gate, and apply the verdict.
//! A request that names something that does not exist writes nothing; a run
//! that starts always ends with a status (completed or cancelled).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::examples::{self, ExamplesError};
use super::replay::{Replay, RetryPolicy};
use super::run::{self, ExampleResult, RunSpec, Side};
use super::verdict;
use crate::config::RouteConfig;
use crate::eval::gate::{decide, Evidence};
use crate::eval::score::{compile_all, Scorer};
use crate::eval::stats::BootstrapSpec;
use crate::eval::{Answer, Reference, Score};
use crate::registry::{self, RegistryError};
use crate::store::{ExperimentRow, Finish, ResultRow, Store, StoreError};

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRequest {
    pub route: String,
    pub candidate: String,
    /// Default: the route's stable version.
    pub baseline: Option<String>,
    pub dataset: String,
    /// `eval` (default) or `train`.
    pub split: String,
    pub limit: Option<usize>,
    /// Examples in flight at once.
    pub concurrency: usize,
    /// The bootstrap's seed: a rerun with the same seed over the same
    /// outputs gives the same numbers.
    pub seed: u64,
    pub created_by: String,
}

/// Why an evaluation could not run; nothing is written for any of these.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(
        "route {0} is not in the config; scorers are configured per route ([[routes.scorers]])"
    )]
    UnknownRoute(String),
    #[error("route {0} has no scorers; add [[routes.scorers]] to its config")]
    NoScorers(String),
    #[error("the candidate and the baseline are both {0}")]
    SameVersion(String),
    #[error("scorer {scorer} judges with route {route}, which has no stable version; register the judge model as a route")]
    JudgeRoute { scorer: String, route: String },
    #[error("concurrency must be from 1 to 256")]
    Concurrency,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Examples(#[from] ExamplesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the evaluation stopped unexpectedly: {0}")]
    Internal(String),
}

/// What an evaluation needs from the running gateway.
pub struct Evaluator<R> {
    pub replay: Arc<R>,
    pub store: Arc<dyn Store>,
    pub routes: Vec<RouteConfig>,
    pub datasets_root: PathBuf,
    pub retry: RetryPolicy,
    /// Where evaluation calls are counted (their own series, never the
    /// live request series).
    pub metrics: Arc<crate::metrics::Metrics>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EvalError> + Send + 'static,
) -> Result<T, EvalError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EvalError::Internal(e.to_string()))?
}

impl<R: Replay + 'static> Evaluator<R> {
    /// Runs `req`; `progress(done, total)` is told after every example and
    /// stops the run (status `cancelled`) by returning false.
    pub async fn evaluate(
        &self,
        req: EvalRequest,
        mut progress: impl FnMut(usize, usize) -> bool,
    ) -> Result<ExperimentRow, EvalError> {
        if !(1..=256).contains(&req.concurrency) {
            return Err(EvalError::Concurrency);
        }
        let route = (self.routes.iter())
            .find(|r| r.name == req.route)
            .ok_or_else(|| EvalError::UnknownRoute(req.route.clone()))?;
        if route.scorers.is_empty() {
            return Err(EvalError::NoScorers(req.route.clone()));
        }
        let scorers = compile_all(&route.scorers)
            .map_err(|e| EvalError::Internal(format!("scorers: {e}")))?;
        let (store, r, c, b) = (
            self.store.clone(),
            req.route.clone(),
            req.candidate.clone(),
            req.baseline.clone(),
        );
        let judges: Vec<(String, String)> = (scorers.iter())
            .filter_map(|s| Some((s.name().to_string(), s.judge()?.route.clone())))
            .collect();
        let baseline = blocking(move || {
            registry::find(store.as_ref(), &r, &c)?;
            let snapshot = store.load_routing()?;
            for (scorer, route) in judges {
                if !(snapshot.versions.iter()).any(|v| v.route == route && v.state == "stable") {
                    return Err(EvalError::JudgeRoute { scorer, route });
                }
            }
            let baseline = match b {
                Some(b) => registry::find(store.as_ref(), &r, &b)?.name,
                None => (store.load_routing()?.versions.into_iter())
                    .find(|v| v.route == r && v.state == "stable")
                    .map(|v| v.name)
                    .ok_or_else(|| {
                        RegistryError::Conflict(format!(
                            "route {r} has no stable version; name a baseline"
                        ))
                    })?,
            };
            Ok(baseline)
        })
        .await?;
        if baseline == req.candidate {
            return Err(EvalError::SameVersion(baseline));
        }
        let (store, root, q) = (self.store.clone(), self.datasets_root.clone(), req.clone());
        let examples = blocking(move || {
            Ok(examples::load(
                store.as_ref(),
                &root,
                &q.dataset,
                &q.split,
                &q.route,
                q.limit,
            )?)
        })
        .await?;
        let id = uuid::Uuid::now_v7().to_string();
        let row = ExperimentRow {
            id: id.clone(),
            kind: "offline".into(),
            route: req.route.clone(),
            candidate: req.candidate.clone(),
            baseline: baseline.clone(),
            dataset_id: Some(req.dataset.clone()),
            split: Some(req.split.clone()),
            status: "running".into(),
            config: json!({
                "scorers": route.scorers,
                "gate": route.gate,
                "limit": req.limit,
                "concurrency": req.concurrency,
                "seed": req.seed,
                "examples": examples.len(),
            }),
            created_at_ms: crate::clock::now_ms(),
            created_by: req.created_by.clone(),
            ..Default::default()
        };
        let (store, r) = (self.store.clone(), row.clone());
        blocking(move || Ok(store.insert_experiment(&r)?)).await?;

        let scorers = Arc::new(scorers);
        let score: Arc<run::ScoreFn> = {
            let scorers = scorers.clone();
            Arc::new(move |a: &Answer, r: &Reference| score_all(&scorers, a, r))
        };
        let spec = RunSpec {
            route: req.route.clone(),
            candidate: req.candidate.clone(),
            baseline: baseline.clone(),
            concurrency: req.concurrency,
            retry: self.retry,
        };
        let total = examples.len();
        let mut done = 0;
        let mut cancelled = false;
        let metrics = self.metrics.clone();
        let examples = Arc::new(examples);
        let mut results = run::run(self.replay.clone(), examples.clone(), &spec, score, |r| {
            metrics.eval_call(&spec.route, &spec.candidate, r.candidate.answer.is_some());
            metrics.eval_call(&spec.route, &spec.baseline, r.baseline.answer.is_some());
            done += 1;
            if !progress(done, total) {
                cancelled = true;
            }
            !cancelled
        })
        .await;

        if !cancelled && scorers.iter().any(|s| s.judge().is_some()) {
            let store = self.store.clone();
            let snapshot = blocking(move || Ok(store.load_routing()?)).await?;
            let stable = |route: &str| {
                (snapshot.versions.iter())
                    .find(|v| v.route == route && v.state == "stable")
                    .map(|v| v.name.clone())
            };
            super::judge::judge_all(
                &*self.replay,
                &self.retry,
                &scorers,
                &examples,
                &mut results,
                req.concurrency,
                stable,
            )
            .await;
        }
        let rows: Vec<ResultRow> = results.iter().flat_map(|r| result_rows(&id, r)).collect();
        let names: Vec<String> = scorers.iter().map(|s| s.name().to_string()).collect();
        let bootstrap = BootstrapSpec {
            seed: req.seed,
            ..Default::default()
        };
        let aggregates = run::aggregate(&results, &names, &bootstrap)
            .map_err(|e| EvalError::Internal(e.to_string()))?;
        let verdict = match (&route.gate, cancelled) {
            (Some(gate), false) => aggregates.comparisons.get(&gate.primary).map(|primary| {
                decide(
                    gate,
                    &Evidence {
                        primary: primary.clone(),
                        candidate: aggregates.candidate.clone(),
                        baseline: aggregates.baseline.clone(),
                    },
                )
            }),
            _ => None,
        };
        let summary = json!({
            "examples": results.len(),
            "scorers": aggregates.comparisons,
            "candidate": aggregates.candidate,
            "baseline": aggregates.baseline,
        });
        let finish = Finish {
            status: if cancelled { "cancelled" } else { "completed" }.into(),
            summary: Some(summary),
            verdict: verdict
                .as_ref()
                .map(|v| serde_json::to_value(v).unwrap_or_default()),
            error: cancelled.then(|| "cancelled before the last example".to_string()),
            finished_at_ms: crate::clock::now_ms(),
        };
        let (store, id2) = (self.store.clone(), id.clone());
        let (route_name, candidate, mode) = (
            req.route.clone(),
            req.candidate.clone(),
            route.gate.as_ref().map(|g| g.mode),
        );
        blocking(move || {
            store.insert_results(&rows)?;
            store.finish_experiment(&id2, &finish)?;
            if let (Some(v), Some(mode)) = (&verdict, mode) {
                verdict::apply(
                    store.as_ref(),
                    store.as_ref(),
                    &route_name,
                    &candidate,
                    &id2,
                    v,
                    mode,
                )?;
            }
            store
                .get_experiment(&id2)?
                .ok_or_else(|| EvalError::Internal("the experiment vanished".into()))
        })
        .await
    }
}

/// Every non-judge scorer's score, by name. A judge scorer is run by its
/// judge route, which this does not call yet: its score is a failure.
fn score_all(scorers: &[Scorer], a: &Answer, r: &Reference) -> BTreeMap<String, Score> {
    scorers
        .iter()
        .map(|s| (s.name().to_string(), s.score(a, r)))
        .collect()
}

fn result_rows(experiment: &str, r: &ExampleResult) -> [ResultRow; 2] {
    let row = |side: &str, s: &Side| ResultRow {
        experiment_id: experiment.to_string(),
        example: r.index as i64,
        source_id: Some(r.source_id.clone()),
        side: side.to_string(),
        output: s
            .answer
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default()),
        error: s.error.clone(),
        latency_ms: Some(s.latency_ms),
        prompt_tokens: s.prompt_tokens.map(|n| n as i64),
        completion_tokens: s.completion_tokens.map(|n| n as i64),
        scores: serde_json::to_value(&s.scores).unwrap_or_default(),
    };
    [row("candidate", &r.candidate), row("baseline", &r.baseline)]
}

/// Progress told to an evaluation: `(done, total)`; false stops it.
pub type Progress<'a> = Box<dyn FnMut(usize, usize) -> bool + Send + 'a>;

/// A running evaluation, boxed so that the admin API can hold any evaluator.
pub type Evaluation<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<ExperimentRow, EvalError>> + Send + 'a>,
>;

/// An evaluator as the admin API holds it, whatever its upstream client.
pub trait Evaluate: Send + Sync {
    fn evaluate_boxed<'a>(&'a self, req: EvalRequest, progress: Progress<'a>) -> Evaluation<'a>;
}

impl<R: Replay + 'static> Evaluate for Evaluator<R> {
    fn evaluate_boxed<'a>(&'a self, req: EvalRequest, progress: Progress<'a>) -> Evaluation<'a> {
        Box::pin(self.evaluate(req, progress))
    }
}

impl From<EvalError> for crate::error::GatewayError {
    fn from(e: EvalError) -> Self {
        use crate::error::GatewayError as G;
        let field = |param: &str, e: &EvalError| G::InvalidField {
            param: param.into(),
            message: e.to_string(),
        };
        match e {
            EvalError::UnknownRoute(_) => G::NotFound(e.to_string()),
            EvalError::NoScorers(_) => field("route", &e),
            EvalError::SameVersion(_) => field("baseline", &e),
            EvalError::JudgeRoute { .. } => field("route", &e),
            EvalError::Concurrency => field("concurrency", &e),
            EvalError::Registry(r) => r.into(),
            EvalError::Examples(ExamplesError::UnknownDataset(_)) => G::NotFound(e.to_string()),
            EvalError::Examples(ExamplesError::BadSplit(_)) => field("split", &e),
            EvalError::Examples(ExamplesError::EmptySplit { .. }) => G::Coded {
                code: "empty_dataset",
                message: e.to_string(),
            },
            EvalError::Examples(_) | EvalError::Store(_) | EvalError::Internal(_) => G::Internal,
        }
    }
}
