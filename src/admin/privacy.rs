//! Admin privacy actions: reading a raw payload (always audited), erasing a
//! user's data, and running a retention sweep on demand.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use super::Admin;
use super::{blocking, json_response};
use crate::audit;
use crate::crypto::vault::VaultError;
use crate::error::GatewayError;
use crate::http1::body::{ClientBody, ResponseBody};
use crate::privacy::retention;

/// `GET /admin/v1/interactions/{id}/raw`: decrypts the unredacted payload. The
/// read is written to the audit log before anything is returned; if the audit
/// write fails, nothing is returned.
pub async fn raw(api: &Arc<Admin>, id: &str) -> http::Response<ResponseBody> {
    if api.privacy.vault.is_none() {
        return GatewayError::NotFound(
            "raw payloads are not readable: privacy.keep_raw is off or its key is not configured"
                .into(),
        )
        .response();
    }
    let key = id.to_string();
    let sealed = match blocking(api, move |s| s.get_raw(&key)).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return (GatewayError::NotFound(format!("no raw payload kept for interaction {id}")))
                .response()
        }
        Err(resp) => return resp,
    };
    let Some(vault) = api.privacy.vault.as_ref() else {
        return GatewayError::Internal.response();
    };
    let plain = match vault.open(&sealed, id.as_bytes()) {
        Ok(p) => p,
        Err(e @ VaultError::WrongKey(_)) => {
            return GatewayError::Coded {
                code: "wrong_key",
                message: e.to_string(),
            }
            .response()
        }
        Err(e) => {
            tracing::error!(error = %e, id, "raw payload cannot be opened");
            return GatewayError::Coded {
                code: "raw_unreadable",
                message: e.to_string(),
            }
            .response();
        }
    };
    let subject = id.to_string();
    let key_id = sealed.key_id.clone();
    let audited = blocking(api, move |s| {
        audit::record(
            s,
            "admin",
            "raw_payload_read",
            Some(subject),
            json!({ "key_id": key_id }),
        )
    })
    .await;
    if let Err(resp) = audited {
        return resp;
    }
    let mut v: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        for k in ["request", "response"] {
            // Bodies were stored as text; show JSON bodies as JSON.
            if let Some(Value::String(text)) = o.get(k) {
                if let Ok(parsed) = serde_json::from_str::<Value>(text) {
                    o.insert(k.into(), parsed);
                }
            }
        }
        o.insert("interaction_id".into(), Value::from(id));
        o.insert("key_id".into(), Value::from(sealed.key_id));
        o.insert("audited".into(), Value::from(true));
    }
    json_response(StatusCode::OK, &v)
}

/// `POST /admin/v1/privacy/forget` with `{"user": "<raw id>"}`: deletes every
/// interaction, feedback and raw payload tied to that user.
pub async fn forget(api: &Arc<Admin>, body: ClientBody) -> http::Response<ResponseBody> {
    let bytes = match super::read_bytes(api, body, 64 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let user = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("user").and_then(Value::as_str).map(str::to_string))
        .filter(|u| !u.is_empty());
    let Some(user) = user else {
        return (GatewayError::InvalidField {
            param: "user".into(),
            message: "send {\"user\": \"<the user's id as the app sends it>\"}".into(),
        })
        .response();
    };
    // Records still in the capture queue would land after the delete: let the
    // writer catch up first (it normally takes milliseconds).
    for _ in 0..100 {
        if api.metrics.capture_queue_depth.get() <= 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The user's hash under the current key and under every earlier key.
    let user_hash = api.user_hasher.hash(&user);
    let hashes: Vec<String> = std::iter::once(user_hash.clone())
        .chain(api.previous_hashers.iter().map(|h| h.hash(&user)))
        .collect();
    let subject = user_hash.clone();
    let done = blocking(api, move |s| {
        let removed = s.forget_user(&hashes)?;
        audit::record(
            s,
            "admin",
            "user_forgotten",
            Some(subject),
            json!({ "removed": removed }),
        )?;
        Ok(removed)
    })
    .await;
    match done {
        Ok(removed) => json_response(
            StatusCode::OK,
            &json!({ "user_hash": user_hash, "removed": removed }),
        ),
        Err(resp) => resp,
    }
}

/// `POST /admin/v1/privacy/purge[?dry_run=true]`: one retention sweep now.
pub async fn purge(api: &Arc<Admin>, dry_run: bool) -> http::Response<ResponseBody> {
    let cfg = api.config.retention.clone();
    match blocking(api, move |s| retention::sweep(s, &cfg, "admin", dry_run)).await {
        Ok((cut, removed)) => json_response(
            StatusCode::OK,
            &json!({
                "dry_run": dry_run,
                "capture_before_ms": cut.capture_before_ms,
                "raw_before_ms": cut.raw_before_ms,
                "removed": removed,
            }),
        ),
        Err(resp) => resp,
    }
}
