//! `/admin/v1/evals`: run an evaluation (`POST`, answered when it is done,
//! or with `?stream=true` as NDJSON progress like dataset builds, where
//! closing the connection cancels the run), list experiments and show one
//! with its answers.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::models::read_json;
use super::Admin;
use super::{blocking, json_response, non_empty, parse_limit};
use crate::error::GatewayError;
use crate::experiments::evaluate::EvalRequest;
use crate::http1::body::{ClientBody, ResponseBody};
use crate::store::ExperimentRow;

type Resp = Response<ResponseBody>;

fn experiment_json(e: &ExperimentRow) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["object"] = json!("experiment");
    v
}

/// `POST /admin/v1/evals` with `{"route", "candidate", "dataset",
/// "baseline"?, "split"?, "limit"?, "concurrency"?, "seed"?,
/// "created_by"?}`; `?stream=true` streams its progress.
pub async fn create(api: &Arc<Admin>, query: &HashMap<String, String>, body: ClientBody) -> Resp {
    let v = match read_json(api, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let number = |k: &str| v.get(k).and_then(Value::as_u64);
    let (Some(route), Some(candidate), Some(dataset)) =
        (text("route"), text("candidate"), text("dataset"))
    else {
        return GatewayError::BadRequest(
            "send {\"route\", \"candidate\", \"dataset\"} and optionally \"baseline\", \"split\", \"limit\", \"concurrency\", \"seed\"".into(),
        )
        .response();
    };
    let req = EvalRequest {
        route,
        candidate,
        baseline: text("baseline"),
        dataset,
        split: text("split").unwrap_or_else(|| "eval".into()),
        limit: number("limit").map(|n| n as usize),
        concurrency: number("concurrency").map_or(8, |n| n as usize),
        seed: number("seed").unwrap_or(0),
        created_by: text("created_by").unwrap_or_else(|| "admin".into()),
    };
    let evaluator = api.evaluator.clone();
    if query
        .get("stream")
        .is_some_and(|v| v.is_empty() || v == "true" || v == "1")
    {
        return stream(api, req);
    }
    let run = api
        .background
        .spawn(async move { evaluator.evaluate_boxed(req, Box::new(|_, _| true)).await });
    match run.await {
        Ok(Ok(e)) => json_response(StatusCode::CREATED, &experiment_json(&e)),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "evaluation refused or failed");
            GatewayError::from(e).response()
        }
        Err(_) => GatewayError::Internal.response(),
    }
}

/// The run with its progress as NDJSON: an `eval.progress` line per example
/// (done, total, rate, ETA), then the experiment or the error. A client that
/// leaves cancels the run.
fn stream(api: &Arc<Admin>, req: EvalRequest) -> Resp {
    fn line(v: &Value) -> Result<Bytes, crate::http1::body::BoxError> {
        let mut b = serde_json::to_vec(v).unwrap_or_default();
        b.push(b'\n');
        Ok(Bytes::from(b))
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let evaluator = api.evaluator.clone();
    api.background.spawn(async move {
        let started = std::time::Instant::now();
        let progress_tx = tx.clone();
        let progress = Box::new(move |done: usize, total: usize| {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let eta_ms = ((total - done) as f64 / rate.max(1e-9) * 1000.0).round() as u64;
            let v = json!({"object": "eval.progress", "done": done, "total": total,
                           "rate_per_s": (rate * 10.0).round() / 10.0, "eta_ms": eta_ms});
            // A full channel (a slow reader) skips a line; a closed one is a
            // client that left, which cancels the run.
            progress_tx.try_send(line(&v)).is_ok() || !progress_tx.is_closed()
        });
        let last = match evaluator.evaluate_boxed(req, progress).await {
            Ok(e) => experiment_json(&e),
            Err(e) => {
                let err = GatewayError::from(e);
                serde_json::from_slice(&err.body()).unwrap_or_default()
            }
        };
        let _ = tx.send(line(&last)).await;
    });
    let mut r = Response::new(ResponseBody::Channel(rx));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

/// `GET /admin/v1/evals?route=&candidate=&limit=`: newest first.
pub async fn list(api: &Arc<Admin>, query: &HashMap<String, String>) -> Resp {
    let limit = match parse_limit(query) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let (route, candidate) = (non_empty(query, "route"), non_empty(query, "candidate"));
    match blocking(api, move |s| {
        s.list_experiments(route.as_deref(), candidate.as_deref(), limit)
    })
    .await
    {
        Ok(rows) => {
            let data: Vec<Value> = rows.iter().map(experiment_json).collect();
            json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        Err(r) => r,
    }
}

/// `GET /admin/v1/evals/{id}`: the experiment with every example's answers.
pub async fn show(api: &Arc<Admin>, id: &str) -> Resp {
    let missing = GatewayError::NotFound(format!("no experiment {id}"));
    let id = id.to_string();
    let found = blocking(api, move |s| {
        let Some(e) = s.get_experiment(&id)? else {
            return Ok(None);
        };
        let results = s.experiment_results(&id)?;
        Ok(Some((e, results)))
    })
    .await;
    match found {
        Ok(Some((e, results))) => {
            let mut v = experiment_json(&e);
            let results: Vec<Value> = (results.iter())
                .map(|r| {
                    let mut o = serde_json::to_value(r).unwrap_or_default();
                    if let Some(out) = &r.output {
                        o["output"] = serde_json::from_str(out).unwrap_or(Value::Null);
                    }
                    o
                })
                .collect();
            v["results"] = Value::Array(results);
            json_response(StatusCode::OK, &v)
        }
        Ok(None) => missing.response(),
        Err(r) => r,
    }
}
