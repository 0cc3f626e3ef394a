//! The feedback endpoint over HTTP: authenticate the caller, read the body
//! within its limits, and hand it to [`super::submit`] on the blocking pool.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::FeedbackError;
use crate::auth::Keys;
use crate::capture::CaptureQueue;
use crate::config::Config;
use crate::error::GatewayError;
use crate::headers::USER_HEADER;
use crate::http1::body::{read_whole, ClientBody, ResponseBody};
use crate::http1::budget::BodyBudget;
use crate::metrics::Metrics;
use crate::privacy::Privacy;
use crate::privacy::UserHasher;
use crate::store::FeedbackStore;

/// What the endpoint needs, wired at start.
pub struct Endpoint {
    pub config: Arc<Config>,
    pub store: Arc<dyn FeedbackStore>,
    /// Calls whose records are still on their way to the store.
    pub capture: CaptureQueue,
    pub privacy: Arc<Privacy>,
    /// Hashes user ids given with feedback, with the same key as capture.
    pub user_hasher: UserHasher,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<Keys>,
    pub body_budget: Arc<BodyBudget>,
}

/// `POST /v1/feedback`: authorized like proxied calls, validated, stored, and
/// answered 201 with the feedback's id (the same id again for a retry with the
/// same idempotency key).
pub async fn handle(fb: Arc<Endpoint>, req: Request<ClientBody>) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let app = match fb.keys.authenticate(&parts.headers) {
        Ok(caller) => caller.app,
        Err(e) => return e.response(),
    };
    let limit = super::MAX_BODY_BYTES.min(fb.config.server.max_body_bytes);
    let timeout = fb.config.server.body_timeout;
    let (body, _reserved) =
        match read_whole(body, &parts.headers, limit, &fb.body_budget, timeout).await {
            Ok(b) => b,
            Err(fault) => return fault.to_error(limit).response(),
        };
    let header_key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let new = match super::parse(&body, header_key) {
        Ok(n) => n,
        Err(e) => return GatewayError::from(e).response(),
    };
    let user_hash = new
        .user
        .as_deref()
        .or_else(|| parts.headers.get(USER_HEADER).and_then(|v| v.to_str().ok()))
        .map(|u| fb.user_hasher.hash(u));
    let worker = fb.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let pending = |id| {
            worker
                .capture
                .pending(id)
                .map(|s| (s.route.to_string(), s.version.to_string()))
        };
        let redact = |mut v: serde_json::Value| {
            worker.privacy.value(&mut v)?;
            Ok(v)
        };
        let mut new = new;
        // An idempotency key is matched, not read: one that holds personal
        // data is kept as its keyed hash, which matches the same way.
        if let Some(k) = &new.idempotency_key {
            match worker.privacy.text(k) {
                Ok((_, 0)) => {}
                Ok(_) => new.idempotency_key = Some(worker.user_hasher.hash(k)),
                Err(_) => return Err(FeedbackError::Store("redaction failed".into())),
            }
        }
        super::submit(
            worker.store.as_ref(),
            &pending,
            new,
            app.as_deref(),
            user_hash,
            &redact,
        )
    })
    .await;
    let (row, replayed) = match stored {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if let FeedbackError::Store(cause) = &e {
                tracing::error!(error = %cause, "feedback write failed");
            }
            return GatewayError::from(e).response();
        }
        Err(_) => return GatewayError::Internal.response(),
    };
    if !replayed {
        fb.metrics.feedback(
            &row.route,
            &row.version,
            &row.kind,
            row.label.as_deref().unwrap_or(""),
        );
    }
    let answer = serde_json::json!({
        "id": row.id,
        "object": "feedback",
        "interaction_id": row.interaction_id,
        "type": row.kind,
        "created_at": row.created_at_ms / 1000,
    });
    let mut r = Response::new(ResponseBody::full(
        serde_json::to_vec(&answer).unwrap_or_default(),
    ));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}
