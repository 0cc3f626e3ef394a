//! Feedback on interactions: validation of `POST /v1/feedback` bodies and the
//! logic that stores them (ids, timestamps, idempotency, the interaction check).
//! The HTTP handler only adapts requests to [`parse`] and [`submit`].
//!
//! Feedback never reaches the store unvalidated, and free text (corrections,
//! comments) never reaches it unredacted once redaction is configured.

pub mod http;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::crypto;
use crate::error::GatewayError;
use crate::store::{FeedbackInsert, FeedbackRow, FeedbackStore, StoreError};

/// Longest correction accepted, in bytes of JSON.
pub const MAX_CORRECTION_BYTES: usize = 256 * 1024;
/// Longest comment accepted, in bytes.
pub const MAX_COMMENT_BYTES: usize = 16 * 1024;
/// Largest `metadata` object accepted, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Largest feedback request body accepted.
pub const MAX_BODY_BYTES: u64 = 512 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeedbackError {
    /// A field is missing or wrong: `param` names it.
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("no interaction with id {0}; send the x-flywheel-interaction-id of a response from this gateway")]
    UnknownInteraction(String),
    #[error("idempotency key {0:?} was already used for different feedback")]
    KeyReused(String),
    #[error("storage failed")]
    Store(String),
}

impl From<StoreError> for FeedbackError {
    fn from(e: StoreError) -> Self {
        FeedbackError::Store(e.to_string())
    }
}

fn invalid(param: &str, message: impl Into<String>) -> FeedbackError {
    FeedbackError::Invalid {
        param: param.to_string(),
        message: message.into(),
    }
}

impl From<FeedbackError> for GatewayError {
    fn from(e: FeedbackError) -> GatewayError {
        match e {
            FeedbackError::Invalid { param, message } => {
                GatewayError::InvalidField { param, message }
            }
            FeedbackError::UnknownInteraction(_) => GatewayError::NotFound(e.to_string()),
            FeedbackError::KeyReused(_) => GatewayError::Conflict(e.to_string()),
            FeedbackError::Store(_) => GatewayError::Internal,
        }
    }
}

/// Validated feedback, before it gets an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedback {
    pub interaction_id: uuid::Uuid,
    pub kind: &'static str,
    pub value: Value,
    pub label: Option<&'static str>,
    pub score: Option<f64>,
    pub scale: Option<[f64; 2]>,
    pub user: Option<String>,
    pub metadata: Map<String, Value>,
    pub idempotency_key: Option<String>,
    /// SHA-256 of the validated content, to tell a retry from a reused key.
    pub request_hash: String,
}

const FIELDS: [&str; 7] = [
    "interaction_id",
    "type",
    "value",
    "scale",
    "user",
    "metadata",
    "idempotency_key",
];

/// Validates a feedback body. `header_key` is the `Idempotency-Key` header, used
/// when the body has no `idempotency_key`.
pub fn parse(body: &[u8], header_key: Option<&str>) -> Result<NewFeedback, FeedbackError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("request body is not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(invalid("body", "request body must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            unknown,
            format!(
                "unknown field `{unknown}`; expected one of {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let id_text =
        match obj.get("interaction_id") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(invalid("interaction_id", "interaction_id must be a string")),
            None => return Err(invalid(
                "interaction_id",
                "interaction_id is required: the x-flywheel-interaction-id header of the response",
            )),
        };
    let interaction_id = uuid::Uuid::parse_str(id_text).map_err(|_| {
        invalid(
            "interaction_id",
            format!("interaction_id {id_text:?} is not a valid id"),
        )
    })?;
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some(k) => k,
        None => {
            return Err(invalid(
                "type",
                "type is required: one of thumbs, rating, correction, comment, outcome",
            ))
        }
    };
    let value = obj.get("value").cloned().unwrap_or(Value::Null);
    if value.is_null() {
        return Err(invalid("value", "value is required"));
    }
    let scale_given = obj.get("scale");
    if scale_given.is_some() && kind != "rating" {
        return Err(invalid("scale", "scale only applies to type rating"));
    }
    let (kind, label, score, scale, value): (&'static str, Option<&'static str>, Option<f64>, Option<[f64; 2]>, Value) = match kind {
        "thumbs" => match value.as_str() {
            Some("up") => ("thumbs", Some("up"), Some(1.0), None, value),
            Some("down") => ("thumbs", Some("down"), Some(0.0), None, value),
            _ => return Err(invalid("value", "a thumbs value must be \"up\" or \"down\"")),
        },
        "rating" => {
            let scale = match scale_given {
                None => [1.0, 5.0],
                Some(Value::Array(a)) if a.len() == 2 && a.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)) => {
                    [a[0].as_f64().unwrap_or(0.0), a[1].as_f64().unwrap_or(0.0)]
                }
                Some(_) => return Err(invalid("scale", "scale must be [min, max] with two numbers, e.g. [1, 5]")),
            };
            if scale[0] >= scale[1] {
                return Err(invalid("scale", "scale must be [min, max] with min < max"));
            }
            let Some(x) = value.as_f64().filter(|x| x.is_finite()) else {
                return Err(invalid("value", "a rating value must be a number"));
            };
            if x < scale[0] || x > scale[1] {
                return Err(invalid("value", format!("rating {x} is outside the scale [{}, {}]", scale[0], scale[1])));
            }
            ("rating", None, Some((x - scale[0]) / (scale[1] - scale[0])), Some(scale), value)
        }
        "correction" => {
            match &value {
                Value::String(s) if !s.trim().is_empty() => {}
                Value::Object(m) => {
                    let has_content = m.get("content").is_some_and(|c| c.is_string() || c.is_array());
                    let has_tools = m.get("tool_calls").is_some_and(Value::is_array);
                    if !has_content && !has_tools {
                        return Err(invalid("value", "a correction message needs `content` or `tool_calls`"));
                    }
                    if let Some(role) = m.get("role") {
                        if role != "assistant" {
                            return Err(invalid("value", "a correction message must have role \"assistant\""));
                        }
                    }
                }
                _ => return Err(invalid("value", "a correction must be a non-empty string or an assistant message object")),
            }
            if value.to_string().len() > MAX_CORRECTION_BYTES {
                return Err(invalid("value", format!("a correction must be at most {MAX_CORRECTION_BYTES} bytes")));
            }
            ("correction", None, None, None, value)
        }
        "comment" => match value.as_str() {
            Some(s) if s.trim().is_empty() => return Err(invalid("value", "a comment must not be empty")),
            Some(s) if s.len() > MAX_COMMENT_BYTES => {
                return Err(invalid("value", format!("a comment must be at most {MAX_COMMENT_BYTES} bytes")))
            }
            Some(_) => ("comment", None, None, None, value),
            None => return Err(invalid("value", "a comment value must be a string")),
        },
        "outcome" => match value.as_bool() {
            Some(true) => ("outcome", Some("success"), Some(1.0), None, value),
            Some(false) => ("outcome", Some("failure"), Some(0.0), None, value),
            None => return Err(invalid("value", "an outcome value must be true or false")),
        },
        other => {
            return Err(invalid(
                "type",
                format!("unknown feedback type {other:?}; use thumbs, rating, correction, comment or outcome"),
            ))
        }
    };
    let user = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => return Err(invalid("user", "user must be a string of 1 to 256 bytes")),
    };
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            if Value::Object(m.clone()).to_string().len() > MAX_METADATA_BYTES {
                return Err(invalid(
                    "metadata",
                    format!("metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"),
                ));
            }
            m.clone()
        }
        Some(_) => return Err(invalid("metadata", "metadata must be a JSON object")),
    };
    let key = match obj.get("idempotency_key") {
        None | Some(Value::Null) => header_key.map(str::to_string),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(invalid(
                "idempotency_key",
                "idempotency_key must be a string",
            ))
        }
    };
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 255 {
            return Err(invalid(
                "idempotency_key",
                "idempotency_key must be 1 to 255 bytes",
            ));
        }
    }
    let canonical = serde_json::json!([
        interaction_id.to_string(),
        kind,
        value,
        scale,
        user,
        metadata
    ]);
    Ok(NewFeedback {
        interaction_id,
        kind,
        value,
        label,
        score,
        scale,
        user,
        metadata,
        idempotency_key: key,
        request_hash: crypto::hex(&crypto::sha256(canonical.to_string().as_bytes())),
    })
}

/// Where the interaction was served, looked up first among ids still in the
/// capture pipeline, then in the store.
pub type Lookup<'a> = &'a (dyn Fn(uuid::Uuid) -> Option<(String, String)> + Sync);

/// Stores validated feedback. Blocking: call from a blocking thread.
/// Returns the stored row and whether it was already there (an idempotent retry).
pub fn submit(
    store: &dyn FeedbackStore,
    pending: Lookup<'_>,
    new: NewFeedback,
    app: Option<&str>,
    user_hash: Option<String>,
    redact: &(dyn Fn(Value) -> Result<Value, crate::privacy::RedactionFailed> + Sync),
) -> Result<(FeedbackRow, bool), FeedbackError> {
    let id_text = new.interaction_id.to_string();
    let (route, version) = match pending(new.interaction_id) {
        Some(found) => found,
        None => store
            .interaction_served(&id_text)?
            .ok_or_else(|| FeedbackError::UnknownInteraction(id_text.clone()))?,
    };
    let value = match new.kind {
        // Free text is redacted like captured text; if that cannot run, the
        // feedback is refused rather than stored unredacted.
        "correction" | "comment" => {
            redact(new.value).map_err(|_| FeedbackError::Store("redaction failed".into()))?
        }
        _ => new.value,
    };
    // Metadata is free-form client text too.
    let metadata = match redact(Value::Object(new.metadata)) {
        Ok(Value::Object(m)) => m,
        _ => return Err(FeedbackError::Store("redaction failed".into())),
    };
    let row = FeedbackRow {
        id: uuid::Uuid::now_v7().to_string(),
        interaction_id: id_text,
        created_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        route,
        version,
        kind: new.kind.to_string(),
        value,
        label: new.label.map(str::to_string),
        score: new.score,
        scale: new.scale,
        app: app.map(str::to_string),
        user_hash,
        metadata,
        idempotency_key: new.idempotency_key,
        request_hash: new.request_hash,
    };
    match store.insert_feedback(&row)? {
        FeedbackInsert::Created => Ok((row, false)),
        FeedbackInsert::Existing(existing) if existing.request_hash == row.request_hash => {
            Ok((*existing, true))
        }
        FeedbackInsert::Existing(existing) => Err(FeedbackError::KeyReused(
            existing.idempotency_key.unwrap_or_default(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190f5a2-7b7e-7c3a-9f00-000000000001";

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn err_param(v: Value) -> String {
        match parse(&body(v), None) {
            Err(FeedbackError::Invalid { param, .. }) => param,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn accepts_each_type() {
        let t = parse(
            &body(serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "down"})),
            None,
        )
        .unwrap();
        assert_eq!(
            (t.kind, t.label, t.score),
            ("thumbs", Some("down"), Some(0.0))
        );
        let r = parse(&body(serde_json::json!({"interaction_id": ID, "type": "rating", "value": 4, "scale": [1, 5]})), None).unwrap();
        assert_eq!(r.score, Some(0.75));
        let r = parse(
            &body(serde_json::json!({"interaction_id": ID, "type": "rating", "value": 3})),
            None,
        )
        .unwrap();
        assert_eq!(r.scale, Some([1.0, 5.0]));
        let c = parse(&body(serde_json::json!({"interaction_id": ID, "type": "correction", "value": "right answer"})), None).unwrap();
        assert_eq!(c.kind, "correction");
        let c = parse(
            &body(serde_json::json!({"interaction_id": ID, "type": "correction", "value": {"role": "assistant", "content": "x"}})),
            None,
        )
        .unwrap();
        assert!(c.value.is_object());
        let o = parse(
            &body(serde_json::json!({"interaction_id": ID, "type": "outcome", "value": true})),
            Some("k1"),
        )
        .unwrap();
        assert_eq!(
            (o.label, o.idempotency_key.as_deref()),
            (Some("success"), Some("k1"))
        );
        let m = parse(&body(serde_json::json!({"interaction_id": ID, "type": "comment", "value": "meh", "metadata": {"a": 1}})), None).unwrap();
        assert_eq!(m.metadata["a"], 1);
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(
            err_param(serde_json::json!({"type": "thumbs", "value": "up"})),
            "interaction_id"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": "nope", "type": "thumbs", "value": "up"})
            ),
            "interaction_id"
        );
        assert_eq!(
            err_param(serde_json::json!({"interaction_id": ID, "type": "stars", "value": 1})),
            "type"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "sideways"})
            ),
            "value"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "rating", "value": 9, "scale": [1, 5]})
            ),
            "value"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "rating", "value": 3, "scale": [5, 1]})
            ),
            "scale"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "rating", "value": 3, "scale": "1-5"})
            ),
            "scale"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "up", "scale": [1, 5]})
            ),
            "scale"
        );
        assert_eq!(
            err_param(serde_json::json!({"interaction_id": ID, "type": "outcome", "value": "yes"})),
            "value"
        );
        assert_eq!(
            err_param(serde_json::json!({"interaction_id": ID, "type": "comment", "value": ""})),
            "value"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "comment", "value": "x".repeat(MAX_COMMENT_BYTES + 1)})
            ),
            "value"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "correction", "value": {"role": "user", "content": "x"}})
            ),
            "value"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "up", "metadata": [1]})
            ),
            "metadata"
        );
        assert_eq!(
            err_param(
                serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "up", "colour": 1})
            ),
            "colour"
        );
        assert_eq!(
            err_param(serde_json::json!({"interaction_id": ID, "type": "thumbs"})),
            "value"
        );
        assert!(matches!(
            parse(b"not json", None),
            Err(FeedbackError::Invalid { .. })
        ));
        assert!(matches!(
            parse(b"[]", None),
            Err(FeedbackError::Invalid { .. })
        ));
    }

    #[test]
    fn request_hash_tells_retries_from_reuse() {
        let a = parse(&body(serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "up", "idempotency_key": "k"})), None).unwrap();
        let b = parse(&body(serde_json::json!({"idempotency_key": "k", "value": "up", "type": "thumbs", "interaction_id": ID})), None).unwrap();
        let c = parse(&body(serde_json::json!({"interaction_id": ID, "type": "thumbs", "value": "down", "idempotency_key": "k"})), None).unwrap();
        assert_eq!(a.request_hash, b.request_hash);
        assert_ne!(a.request_hash, c.request_hash);
    }
}
