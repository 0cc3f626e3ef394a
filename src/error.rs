//! Errors the gateway itself answers with, and their one mapping to an HTTP
//! status plus OpenAI-shaped JSON (`{"error":{"message","type","param","code"}}`).
//!
//! Upstream answers, including upstream errors, are passed through untouched;
//! only failures the gateway detects become a [`GatewayError`]. Messages are for
//! clients: they name what went wrong without leaking internals (no upstream
//! addresses, no paths, no stack of causes).

use bytes::Bytes;
use http::StatusCode;

use crate::capture::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(String),
    /// A named request field is missing or wrong.
    #[error("{message}")]
    InvalidField { param: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("invalid or missing API key; send it as `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("the upstream model server could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream model server did not answer within {0}")]
    UpstreamTimeout(&'static str),
    #[error("the upstream model server sent an invalid response")]
    UpstreamProtocol,
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// The request bodies in flight fill `server.body_budget_bytes`.
    #[error("the gateway is holding as many request bodies as it may; retry shortly")]
    Busy,
    #[error("internal gateway error")]
    Internal,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest(_) | GatewayError::InvalidField { .. } => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::Conflict(_) => StatusCode::CONFLICT,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::UpstreamUnreachable | GatewayError::UpstreamProtocol => {
                StatusCode::BAD_GATEWAY
            }
            GatewayError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::ShuttingDown | GatewayError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI error `type` and `code` fields.
    pub fn type_and_code(&self) -> (&'static str, &'static str) {
        match self {
            GatewayError::BadRequest(_) => ("invalid_request_error", "invalid_request"),
            GatewayError::InvalidField { .. } => ("invalid_request_error", "invalid_value"),
            GatewayError::Conflict(_) => ("invalid_request_error", "conflict"),
            GatewayError::Forbidden(_) => ("permission_error", "forbidden"),
            GatewayError::PayloadTooLarge { .. } => ("invalid_request_error", "payload_too_large"),
            GatewayError::Unauthorized => ("invalid_request_error", "invalid_api_key"),
            GatewayError::RequestTimeout => ("invalid_request_error", "request_timeout"),
            GatewayError::NotFound(_) => ("invalid_request_error", "not_found"),
            GatewayError::UpstreamUnreachable => ("upstream_error", "upstream_unreachable"),
            GatewayError::UpstreamTimeout(_) => ("upstream_error", "upstream_timeout"),
            GatewayError::UpstreamProtocol => ("upstream_error", "upstream_protocol_error"),
            GatewayError::ShuttingDown => ("server_error", "shutting_down"),
            GatewayError::Busy => ("server_error", "overloaded"),
            GatewayError::Internal => ("server_error", "internal_error"),
        }
    }

    /// Seconds a client should wait before it tries again, for the errors
    /// that pass with time (sent as `Retry-After`).
    pub fn retry_after(&self) -> Option<&'static str> {
        match self {
            GatewayError::Busy => Some("1"),
            _ => None,
        }
    }

    /// How a request that ended with this error is recorded.
    pub fn outcome(&self) -> Outcome {
        match self {
            GatewayError::UpstreamTimeout(_) => Outcome::Timeout,
            GatewayError::UpstreamUnreachable
            | GatewayError::UpstreamProtocol
            | GatewayError::Internal => Outcome::UpstreamError,
            _ => Outcome::Rejected,
        }
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> Bytes {
        let param = match self {
            GatewayError::InvalidField { param, .. } => Some(param.as_str()),
            _ => None,
        };
        error_json_param(&self.to_string(), self.type_and_code(), param)
    }

    /// The same error as one SSE event, for a stream that already started.
    pub fn sse_event(&self) -> Bytes {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.body());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// Serializes an OpenAI-shaped error object.
pub fn error_json(message: &str, kind_code: (&str, &str)) -> Bytes {
    error_json_param(message, kind_code, None)
}

/// An OpenAI-shaped error object naming the request field at fault.
pub fn error_json_param(message: &str, (kind, code): (&str, &str), param: Option<&str>) -> Bytes {
    let v = serde_json::json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_openai_shaped() {
        let e = GatewayError::PayloadTooLarge { limit: 10 };
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "payload_too_large");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("10 bytes"));
        assert!(e.sse_event().starts_with(b"data: {") && e.sse_event().ends_with(b"\n\n"));
    }

    #[test]
    fn statuses() {
        assert_eq!(GatewayError::UpstreamUnreachable.status(), 502);
        assert_eq!(GatewayError::UpstreamTimeout("first byte").status(), 504);
        assert_eq!(GatewayError::Unauthorized.status(), 401);
        assert_eq!(GatewayError::BadRequest("x".into()).status(), 400);
        assert_eq!(
            GatewayError::UpstreamTimeout("x").outcome(),
            Outcome::Timeout
        );
    }
}
