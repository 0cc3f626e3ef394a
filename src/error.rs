//! Errors the gateway itself answers with, and their one mapping to an HTTP
//! status plus OpenAI-shaped JSON (`{"error":{"message","type","param","code"}}`).
//!
//! Upstream answers, including upstream errors, are passed through untouched;
//! only failures the gateway detects become a [`GatewayError`]. Messages are for
//! clients: they name what went wrong without leaking internals (no upstream
//! addresses, no paths, no stack of causes).
//!
//! This is the one error edge. Modules keep typed errors of their own and
//! convert them into a `GatewayError` where they define them; every status
//! follows from the error's `code` through [`status_of_code`], which the CLI
//! also reads codes back with; and [`GatewayError::response`] is the only
//! place an error becomes an HTTP response. This module imports nothing of
//! the gateway's, so every layer may use it.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;

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
    /// A method the endpoint does not take; `allow` lists those it does.
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        allow: Option<&'static str>,
    },
    /// A failure named by its `code` alone (`invalid_limit`, `build_running`,
    /// ...); its status is the code's, from [`status_of_code`].
    #[error("{message}")]
    Coded { code: &'static str, message: String },
    #[error("internal gateway error")]
    Internal,
}

/// The HTTP status of every error code the gateway sends. The admin API
/// answers with it, and the CLI reads a status back from the code of an
/// error that ends a progress stream (which itself was a 200).
pub fn status_of_code(code: &str) -> StatusCode {
    match code {
        "invalid_request" | "invalid_value" | "invalid_limit" | "invalid_since"
        | "invalid_spec" | "cancelled" => StatusCode::BAD_REQUEST,
        "invalid_api_key" => StatusCode::UNAUTHORIZED,
        "forbidden" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "request_timeout" => StatusCode::REQUEST_TIMEOUT,
        "conflict" | "build_running" | "wrong_key" => StatusCode::CONFLICT,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "empty_dataset" => StatusCode::UNPROCESSABLE_ENTITY,
        "upstream_unreachable" | "upstream_protocol_error" => StatusCode::BAD_GATEWAY,
        "shutting_down" | "overloaded" => StatusCode::SERVICE_UNAVAILABLE,
        "upstream_timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        status_of_code(self.type_and_code().1)
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
            GatewayError::MethodNotAllowed { .. } => {
                ("invalid_request_error", "method_not_allowed")
            }
            GatewayError::Coded { code, .. } => {
                if status_of_code(code).is_server_error() {
                    ("server_error", code)
                } else {
                    ("invalid_request_error", code)
                }
            }
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

    /// The JSON body sent to the client.
    pub fn body(&self) -> Bytes {
        let param = match self {
            GatewayError::InvalidField { param, .. } => Some(param.as_str()),
            _ => None,
        };
        error_json_param(&self.to_string(), self.type_and_code(), param)
    }

    /// The error as a response: its status, the JSON body, and the headers
    /// that go with it (`Retry-After`, `Allow`).
    pub fn response<B: From<Bytes>>(&self) -> http::Response<B> {
        self.response_with(self.body())
    }

    /// [`Self::response`] with the body already made.
    pub fn response_with<B: From<Bytes>>(&self, body: Bytes) -> http::Response<B> {
        let mut r = http::Response::new(B::from(body));
        *r.status_mut() = self.status();
        let headers = r.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        if let GatewayError::MethodNotAllowed {
            allow: Some(allow), ..
        } = self
        {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        r
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
        assert_eq!(GatewayError::Busy.status(), 503);
        assert_eq!(GatewayError::Conflict("x".into()).status(), 409);
        assert_eq!(GatewayError::NotFound("x".into()).status(), 404);
        assert_eq!(GatewayError::RequestTimeout.status(), 408);
        assert_eq!(GatewayError::Forbidden("x".into()).status(), 403);
        assert_eq!(GatewayError::PayloadTooLarge { limit: 1 }.status(), 413);
        assert_eq!(GatewayError::ShuttingDown.status(), 503);
        assert_eq!(GatewayError::UpstreamProtocol.status(), 502);
        assert_eq!(GatewayError::Internal.status(), 500);
        let coded = |code| GatewayError::Coded {
            code,
            message: "m".into(),
        };
        assert_eq!(coded("empty_dataset").status(), 422);
        assert_eq!(coded("build_running").status(), 409);
        assert_eq!(coded("raw_unreadable").status(), 500);
        assert_eq!(coded("raw_unreadable").type_and_code().0, "server_error");
    }

    #[test]
    fn a_response_carries_its_status_and_headers() {
        let r: http::Response<Bytes> = GatewayError::Busy.response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["content-type"], "application/json");
        let r: http::Response<Bytes> = GatewayError::MethodNotAllowed {
            message: "no".into(),
            allow: Some("GET"),
        }
        .response();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET");
    }
}
