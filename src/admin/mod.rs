//! The admin HTTP API under `/admin/v1/`, on the same listener as the proxy.
//!
//! Every call needs `Authorization: Bearer $FLYWHEEL_ADMIN_TOKEN`, compared in
//! constant time; with no token configured the whole API answers 404, so an
//! unconfigured gateway exposes nothing. Handlers only adapt HTTP to store calls,
//! which run on the blocking pool, never on the runtime's workers.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::Keys;
use crate::clock::parse_since;
use crate::config::Config;
use crate::error::GatewayError;
use crate::http1::body::{read_whole, ClientBody, ResponseBody};
use crate::http1::budget::BodyBudget;
use crate::metrics::Metrics;
use crate::privacy::Privacy;
use crate::privacy::UserHasher;
use crate::registry::Reload;
use crate::store::{FeedbackQuery, InteractionRow, ListQuery, Store};

mod datasets;
mod evals;
mod models;
mod privacy;

const MAX_LIMIT: usize = 1000;

/// What the admin API works with, wired at start.
pub struct Admin {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<Keys>,
    /// Hashes user ids to erase, with the key capture uses now...
    pub user_hasher: UserHasher,
    /// ...and with the keys used before a rotation.
    pub previous_hashers: Vec<UserHasher>,
    /// Raw-payload encryption, to open what `interactions raw` shows.
    pub privacy: Arc<Privacy>,
    pub body_budget: Arc<BodyBudget>,
    /// Brings the traffic in line with the registry after a change.
    pub reload: Reload,
    /// Runs evaluations (`/admin/v1/evals`).
    pub evaluator: Arc<dyn crate::experiments::evaluate::Evaluate>,
    /// The runtime evaluations run on: the control loops', not a shard's,
    /// so that a long evaluation never competes with the connections of one
    /// shard.
    pub background: tokio::runtime::Handle,
}

/// Reads an admin request's body whole, within `limit` bytes and the
/// server's body time limit.
pub(crate) async fn read_bytes(
    api: &Admin,
    body: ClientBody,
    limit: u64,
) -> Result<Bytes, Response<ResponseBody>> {
    // Admin bodies are small and handled at once: the budget share is
    // given back as soon as they are read.
    let timeout = api.config.server.body_timeout;
    let headers = http::HeaderMap::new();
    read_whole(body, &headers, limit, &api.body_budget, timeout)
        .await
        .map(|(bytes, _reserved)| bytes)
        .map_err(|fault| fault.to_error(limit).response())
}

pub async fn handle(api: &Arc<Admin>, req: Request<ClientBody>) -> Response<ResponseBody> {
    if !api.keys.admin_enabled() {
        return GatewayError::NotFound(
            "the admin API is disabled; set FLYWHEEL_ADMIN_TOKEN to enable it".into(),
        )
        .response();
    }
    if !api.keys.is_admin(req.headers()) {
        let mut r = GatewayError::Unauthorized.response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let (parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let path = parts.uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["admin", "v1", "interactions"]) => list(api, &query).await,
        (&Method::GET, ["admin", "v1", "interactions", id]) => show(api, id).await,
        (&Method::GET, ["admin", "v1", "interactions", id, "raw"]) => privacy::raw(api, id).await,
        (&Method::GET, ["admin", "v1", "stats"]) => stats(api).await,
        (&Method::GET, ["admin", "v1", "feedback"]) => list_feedback(api, &query).await,
        (&Method::GET, ["admin", "v1", "events"]) => list_events(api, &query).await,
        (&Method::GET, ["admin", "v1", "models"]) => models::list(api).await,
        (&Method::POST, ["admin", "v1", "models"]) => models::register(api, body).await,
        (&Method::GET, ["admin", "v1", "models", route, "versions", version]) => {
            models::show_version(api, route, version).await
        }
        (
            &Method::POST,
            ["admin", "v1", "models", route, "versions", version, verdict @ ("approve" | "reject")],
        ) => models::judge(api, route, version, *verdict == "approve", body).await,
        (&Method::GET, ["admin", "v1", "rollouts"]) => models::list_rollouts(api, &query).await,
        (&Method::POST, ["admin", "v1", "rollouts"]) => models::start_rollout(api, body).await,
        (&Method::GET, ["admin", "v1", "rollouts", id]) => models::show_rollout(api, id).await,
        (&Method::POST, ["admin", "v1", "rollouts", id, op]) => {
            models::command(api, id, op, body).await
        }
        (&Method::POST, ["admin", "v1", "evals"]) => evals::create(api, &query, body).await,
        (&Method::GET, ["admin", "v1", "evals"]) => evals::list(api, &query).await,
        (&Method::GET, ["admin", "v1", "evals", id]) => evals::show(api, id).await,
        (_, ["admin", "v1", "evals", ..]) => GatewayError::MethodNotAllowed {
            message: "POST /admin/v1/evals runs an evaluation; GET reads them".into(),
            allow: None,
        }
        .response(),
        (&Method::GET, ["admin", "v1", "datasets"]) => datasets::list(api, &query).await,
        (&Method::POST, ["admin", "v1", "datasets"]) => datasets::create(api, &query, body).await,
        (&Method::GET, ["admin", "v1", "datasets", id]) => datasets::show(api, id).await,
        (&Method::GET, ["admin", "v1", "datasets", id, "files", name]) => {
            datasets::file(api, id, name).await
        }
        (_, ["admin", "v1", "datasets", ..]) => GatewayError::MethodNotAllowed {
            message: "datasets are immutable: POST /admin/v1/datasets builds one, GET reads them"
                .into(),
            allow: None,
        }
        .response(),
        (&Method::POST, ["admin", "v1", "privacy", "forget"]) => privacy::forget(api, body).await,
        (&Method::POST, ["admin", "v1", "privacy", "purge"]) => {
            let dry_run = query
                .get("dry_run")
                .is_some_and(|v| v.is_empty() || v == "true" || v == "1");
            privacy::purge(api, dry_run).await
        }
        (_, ["admin", "v1", "interactions" | "stats" | "feedback" | "events", ..]) => {
            GatewayError::MethodNotAllowed {
                message: "this admin endpoint only accepts GET".into(),
                allow: None,
            }
            .response()
        }
        (_, ["admin", "v1", "privacy", ..]) => GatewayError::MethodNotAllowed {
            message:
                "privacy actions are POST /admin/v1/privacy/forget and POST /admin/v1/privacy/purge"
                    .into(),
            allow: None,
        }
        .response(),
        _ => (GatewayError::NotFound(format!("no admin endpoint at {path}"))).response(),
    }
}

/// The query string's parameters (`application/x-www-form-urlencoded`, as
/// browsers and HTTP clients write it); a repeated name keeps its last value.
fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn json_response(status: StatusCode, v: &Value) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full(Bytes::from(
        serde_json::to_vec(v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Runs a store call on the blocking pool and maps failures to a 500.
async fn blocking<T: Send + 'static>(
    api: &Arc<Admin>,
    f: impl FnOnce(&dyn crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response<ResponseBody>> {
    let store = api.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admin store call failed");
            Err(GatewayError::Internal.response())
        }
        Err(_) => Err(GatewayError::Internal.response()),
    }
}

/// The `limit` parameter, or the 400 response explaining it. The response is
/// large, but this runs once per admin call, far from the hot path.
#[allow(clippy::result_large_err)]
fn parse_limit(query: &HashMap<String, String>) -> Result<usize, Response<ResponseBody>> {
    match query.get("limit").map(|l| l.parse::<usize>()) {
        None => Ok(20),
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(GatewayError::Coded {
            code: "invalid_limit",
            message: format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
        }
        .response()),
    }
}

fn non_empty(query: &HashMap<String, String>, key: &str) -> Option<String> {
    query.get(key).filter(|v| !v.is_empty()).cloned()
}

/// A page of items as `{"object":"list","data":[...],"has_more","next_before"}`;
/// `rows` holds up to `limit + 1` items, the extra one only telling that more exist.
fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> String,
    to_json: impl Fn(&T) -> Value,
) -> Response<ResponseBody> {
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next = if has_more { rows.last().map(&id) } else { None };
    let data: Vec<Value> = rows.iter().map(to_json).collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "has_more": has_more, "next_before": next}),
    )
}

async fn list_feedback(
    api: &Arc<Admin>,
    query: &HashMap<String, String>,
) -> Response<ResponseBody> {
    let limit = match parse_limit(query) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let since_ms = match query.get("since").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_since(s, std::time::SystemTime::now()) {
            Some(ms) => Some(ms),
            None => {
                return GatewayError::Coded {
 code: "invalid_since",
 message: "since must be an RFC 3339 time (2026-11-25T10:00:00Z), a date, unix seconds, or an age like 30m, 24h, 7d".into(),
 }
 .response()
            }
        },
    };
    let q = FeedbackQuery {
        limit: limit + 1,
        before: non_empty(query, "before"),
        since_ms,
        kind: non_empty(query, "type"),
        route: non_empty(query, "route"),
        interaction_id: non_empty(query, "interaction_id"),
    };
    match blocking(api, move |s| s.list_feedback(&q)).await {
        Ok(rows) => page(rows, limit, |r| r.id.clone(), feedback_json),
        Err(resp) => resp,
    }
}

fn feedback_json(row: &crate::store::FeedbackRow) -> Value {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("object".into(), Value::from("feedback"));
    }
    v
}

async fn list(api: &Arc<Admin>, query: &HashMap<String, String>) -> Response<ResponseBody> {
    let limit = match parse_limit(query) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let q = ListQuery {
        // One extra row tells whether another page exists.
        limit: limit + 1,
        before: query.get("before").filter(|b| !b.is_empty()).cloned(),
        route: query.get("route").filter(|r| !r.is_empty()).cloned(),
        segment: query.get("segment").filter(|r| !r.is_empty()).cloned(),
    };
    let mut rows = match blocking(api, move |s| s.list_interactions(&q)).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next = if has_more {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let data: Vec<Value> = rows.iter().map(summary_json).collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "has_more": has_more, "next_before": next}),
    )
}

fn summary_json(row: &InteractionRow) -> Value {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("object".into(), Value::from("interaction"));
    }
    v
}

/// A body stored as JSON text is shown as JSON; anything else as a string.
fn body_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))
}

async fn show(api: &Arc<Admin>, id: &str) -> Response<ResponseBody> {
    let key = id.to_string();
    let found = blocking(api, move |s| {
        let row = s.get_interaction(&key)?;
        let feedback = match &row {
            Some(_) => s.list_feedback(&FeedbackQuery {
                limit: MAX_LIMIT,
                interaction_id: Some(key),
                ..Default::default()
            })?,
            None => Vec::new(),
        };
        Ok((row, feedback))
    });
    let (row, feedback) = match found.await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(row) = row else {
        return (GatewayError::NotFound(format!("no interaction with id {id}"))).response();
    };
    let mut v = summary_json(&row);
    if let Some(o) = v.as_object_mut() {
        o.insert("request".into(), body_json(&row.request_body));
        o.insert(
            "response".into(),
            row.response_body.as_deref().map_or(Value::Null, body_json),
        );
        o.insert(
            "feedback".into(),
            Value::from(feedback.iter().map(feedback_json).collect::<Vec<_>>()),
        );
    }
    json_response(StatusCode::OK, &v)
}

async fn list_events(api: &Arc<Admin>, query: &HashMap<String, String>) -> Response<ResponseBody> {
    let limit = match parse_limit(query) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let before = non_empty(query, "before");
    let kind = non_empty(query, "kind");
    match blocking(api, move |s| {
        s.list_events(limit + 1, before.as_deref(), kind.as_deref())
    })
    .await
    {
        Ok(rows) => page(
            rows,
            limit,
            |r| r.id.clone(),
            |r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("object".into(), Value::from("event"));
                }
                v
            },
        ),
        Err(resp) => resp,
    }
}

async fn stats(api: &Arc<Admin>) -> Response<ResponseBody> {
    let stats = match blocking(api, |s| s.stats()).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let m = &api.metrics;
    let mut v = serde_json::to_value(&stats).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "capture".into(),
            json!({
                "queue_depth": m.capture_queue_depth.get(),
                "queue_bytes": m.capture_queue_bytes.get(),
                "queue_capacity": m.capture_queue_capacity.load(Ordering::Relaxed),
                "written_total": m.capture_written.load(Ordering::Relaxed),
                "dropped_total": m.capture_dropped.load(Ordering::Relaxed),
            }),
        );
    }
    json_response(StatusCode::OK, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query("limit=5&route=support%20bot&before=&x");
        assert_eq!(q["limit"], "5");
        assert_eq!(q["route"], "support bot");
        assert_eq!(q["before"], "");
        assert_eq!(q["x"], "");
        let q = parse_query("route=a+b&since=2026-12-01T00%3A00%3A00Z&route=c%2Fd");
        assert_eq!(q["route"], "c/d", "the last of a repeated name");
        assert_eq!(q["since"], "2026-12-01T00:00:00Z");
    }
}
