//! One evaluation run: every example replayed to the candidate and the
//! baseline with bounded concurrency, each answer scored, and the
//! aggregates the gate reads (per-scorer paired comparisons, the two sides'
//! latency, error and token summaries).
//!
//! Scoring is a function the caller hands in, so this file knows the
//! scorers only by name; storing the run is the caller's, fed through the
//! `each` callback as examples complete.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::examples::EvalExample;
use super::replay::{call, read_answer, Called, Replay, RetryPolicy};
use crate::eval::stats::{
    compare_paired, summarize, BootstrapSpec, Call, PairedComparison, Summary,
};
use crate::eval::{Answer, Reference, Score};

/// Scores one answer against its reference with every scorer of the route,
/// by scorer name.
pub type ScoreFn = dyn Fn(&Answer, &Reference) -> BTreeMap<String, Score> + Send + Sync;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub route: String,
    pub candidate: String,
    pub baseline: String,
    /// Examples in flight at once (each calls both versions), at least 1.
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

/// One version's answer to one example.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// `None` when the call failed or its answer could not be read.
    pub answer: Option<Answer>,
    /// Why there is no answer, or the status of an error answer.
    pub error: Option<String>,
    pub attempts: u32,
    pub latency_ms: f64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Scorer name to score; empty when there is no answer.
    pub scores: BTreeMap<String, Score>,
}

/// One example's two answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleResult {
    /// Position in the eval set.
    pub index: usize,
    pub source_id: String,
    pub candidate: Side,
    pub baseline: Side,
}

/// Replays every example to both versions, `spec.concurrency` examples at
/// a time, and calls `each` with every result as it completes (in any
/// order); `each` returning false stops the run after the examples in
/// flight. Returns the results in example order.
pub async fn run<R: Replay + 'static>(
    replay: Arc<R>,
    examples: Arc<Vec<EvalExample>>,
    spec: &RunSpec,
    score: Arc<ScoreFn>,
    mut each: impl FnMut(&ExampleResult) -> bool,
) -> Vec<ExampleResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ExampleResult>(spec.concurrency.max(1));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..spec.concurrency.max(1).min(examples.len().max(1)) {
        let (replay, examples, score, next, tx) = (
            replay.clone(),
            examples.clone(),
            score.clone(),
            next.clone(),
            tx.clone(),
        );
        let spec = spec.clone();
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(ex) = examples.get(index) else {
                    return;
                };
                let (candidate, baseline) = tokio::join!(
                    side(&*replay, &spec, &spec.candidate, ex, &*score),
                    side(&*replay, &spec, &spec.baseline, ex, &*score),
                );
                let result = ExampleResult {
                    index,
                    source_id: ex.source_id.clone(),
                    candidate,
                    baseline,
                };
                if tx.send(result).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut results = Vec::with_capacity(examples.len());
    while let Some(r) = rx.recv().await {
        let go_on = each(&r);
        results.push(r);
        if !go_on {
            // The workers see the channel closed at their next send.
            break;
        }
    }
    drop(rx);
    while workers.join_next().await.is_some() {}
    results.sort_by_key(|r| r.index);
    results
}

async fn side<R: Replay>(
    replay: &R,
    spec: &RunSpec,
    version: &str,
    ex: &EvalExample,
    score: &ScoreFn,
) -> Side {
    let started = std::time::Instant::now();
    let Called {
        result, attempts, ..
    } = call(replay, &spec.route, version, ex.body.clone(), &spec.retry).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut side = Side {
        answer: None,
        error: None,
        attempts,
        latency_ms,
        prompt_tokens: None,
        completion_tokens: None,
        scores: BTreeMap::new(),
    };
    match result {
        Err(e) => side.error = Some(e.to_string()),
        Ok(reply) if !(200..300).contains(&reply.status) => {
            side.error = Some(format!("the upstream answered {}", reply.status));
        }
        Ok(reply) => match read_answer(&reply.body) {
            Err(e) => side.error = Some(e.to_string()),
            Ok((answer, usage)) => {
                side.scores = score(&answer, &ex.reference);
                side.prompt_tokens = usage.prompt_tokens;
                side.completion_tokens = usage.completion_tokens;
                side.answer = Some(answer);
            }
        },
    }
    side
}

/// The run's aggregates.
#[derive(Debug, Clone)]
pub struct Aggregates {
    /// Scorer name to its paired comparison, candidate against baseline.
    pub comparisons: BTreeMap<String, PairedComparison>,
    pub candidate: Summary,
    pub baseline: Summary,
}

/// Compares the two sides scorer by scorer over the examples (a side with
/// no answer counts as a failure of every scorer, never as 0), and
/// summarises each side's calls.
pub fn aggregate(
    results: &[ExampleResult],
    scorers: &[String],
    bootstrap: &BootstrapSpec,
) -> Result<Aggregates, crate::eval::stats::StatsError> {
    let failed = || Score::Failed("no answer".into());
    let column = |pick: fn(&ExampleResult) -> &Side, name: &str| -> Vec<Score> {
        results
            .iter()
            .map(|r| pick(r).scores.get(name).cloned().unwrap_or_else(failed))
            .collect()
    };
    let mut comparisons = BTreeMap::new();
    for name in scorers {
        let c = column(|r| &r.candidate, name);
        let b = column(|r| &r.baseline, name);
        comparisons.insert(name.clone(), compare_paired(&c, &b, bootstrap)?);
    }
    let calls = |pick: fn(&ExampleResult) -> &Side| -> Vec<Call> {
        results
            .iter()
            .map(|r| {
                let s = pick(r);
                Call {
                    latency_ms: s.latency_ms.round() as u64,
                    tokens: match (s.prompt_tokens, s.completion_tokens) {
                        (None, None) => None,
                        (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
                    },
                    error: s.answer.is_none(),
                }
            })
            .collect()
    };
    Ok(Aggregates {
        comparisons,
        candidate: summarize(&calls(|r| &r.candidate)),
        baseline: summarize(&calls(|r| &r.baseline)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::gate::{decide, Evidence, GateSpec};
    use crate::experiments::replay::{ReplayError, Reply};
    use bytes::Bytes;
    use std::time::Duration;

    /// Answers example `i` right when `i % 10` is below the version's number
    /// of right answers per ten; `down` errors on every call.
    struct Versions;

    impl Replay for Versions {
        async fn send(&self, _: &str, version: &str, body: Bytes) -> Result<Reply, ReplayError> {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let i: usize = v["messages"][0]["content"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let right_per_ten = match version {
                "good" => 9,
                "fair" => 6,
                "down" => {
                    return Ok(Reply {
                        status: 500,
                        retry_after: None,
                        body: Bytes::new(),
                    })
                }
                _ => 0,
            };
            let text = if i % 10 < right_per_ten {
                format!("a{i}")
            } else {
                "wrong".into()
            };
            let body = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2}});
            Ok(Reply {
                status: 200,
                retry_after: None,
                body: Bytes::from(body.to_string()),
            })
        }
    }

    fn examples(n: usize) -> Arc<Vec<EvalExample>> {
        Arc::new(
            (0..n)
                .map(|i| EvalExample {
                    source_id: format!("i-{i}"),
                    body: Bytes::from(
                        serde_json::json!({"model": "bot", "messages": [{"role": "user", "content": i.to_string()}]})
                            .to_string(),
                    ),
                    reference: Reference { text: Some(format!("a{i}")), tool_calls: vec![] },
                })
                .collect(),
        )
    }

    fn exact() -> Arc<ScoreFn> {
        Arc::new(|a: &Answer, r: &Reference| {
            let v = if a.text == r.text { 1.0 } else { 0.0 };
            BTreeMap::from([("exact".to_string(), Score::Value(v))])
        })
    }

    async fn evaluate(
        candidate: &str,
        baseline: &str,
        n: usize,
    ) -> (Vec<ExampleResult>, crate::eval::gate::Verdict) {
        let spec = RunSpec {
            route: "bot".into(),
            candidate: candidate.into(),
            baseline: baseline.into(),
            concurrency: 4,
            retry: RetryPolicy {
                attempts: 2,
                backoff: Duration::from_millis(1),
                max_wait: Duration::from_millis(1),
                timeout: Duration::from_secs(5),
            },
        };
        let mut seen = 0;
        let results = run(Arc::new(Versions), examples(n), &spec, exact(), |_| {
            seen += 1;
            true
        })
        .await;
        assert_eq!(seen, n, "every result is reported as it completes");
        let agg = aggregate(
            &results,
            &["exact".into()],
            &BootstrapSpec {
                resamples: 2000,
                ..Default::default()
            },
        )
        .unwrap();
        let evidence = Evidence {
            primary: agg.comparisons["exact"].clone(),
            candidate: agg.candidate.clone(),
            baseline: agg.baseline.clone(),
        };
        (results, decide(&GateSpec::new("exact"), &evidence))
    }

    #[tokio::test]
    async fn a_better_candidate_passes_and_a_worse_one_is_rejected_with_the_reason() {
        let (results, verdict) = evaluate("good", "fair", 100).await;
        assert_eq!(results.len(), 100);
        assert!(
            results.iter().enumerate().all(|(i, r)| r.index == i),
            "in example order"
        );
        assert!(verdict.pass, "{:?}", verdict.checks);
        let (_, verdict) = evaluate("fair", "good", 100).await;
        assert!(!verdict.pass);
        assert!(
            verdict.failures().contains("exact"),
            "{}",
            verdict.failures()
        );
    }

    #[tokio::test]
    async fn a_candidate_that_errors_on_every_call_completes_with_a_failing_verdict() {
        let (results, verdict) = evaluate("down", "good", 40).await;
        assert!(results
            .iter()
            .all(|r| r.candidate.answer.is_none() && r.candidate.attempts == 2));
        assert_eq!(
            results[0].candidate.error.as_deref(),
            Some("the upstream answered 500")
        );
        assert!(!verdict.pass, "{:?}", verdict.checks);
    }

    #[tokio::test]
    async fn the_same_outputs_give_the_same_numbers() {
        let (a, _) = evaluate("good", "fair", 60).await;
        let (b, _) = evaluate("good", "fair", 60).await;
        let spec = BootstrapSpec {
            resamples: 2000,
            seed: 11,
            ..Default::default()
        };
        let x = aggregate(&a, &["exact".into()], &spec).unwrap();
        let y = aggregate(&b, &["exact".into()], &spec).unwrap();
        assert_eq!(x.comparisons, y.comparisons);
    }

    #[tokio::test]
    async fn a_run_told_to_stop_stops_after_the_examples_in_flight() {
        let spec = RunSpec {
            route: "bot".into(),
            candidate: "good".into(),
            baseline: "fair".into(),
            concurrency: 4,
            retry: RetryPolicy::default(),
        };
        let mut seen = 0;
        let results = run(Arc::new(Versions), examples(500), &spec, exact(), |_| {
            seen += 1;
            seen < 10
        })
        .await;
        assert!(
            (10..=10 + 4 + 1).contains(&results.len()),
            "{}",
            results.len()
        );
    }
}
