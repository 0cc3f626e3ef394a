//! The HTTP client the CLI uses to talk to a running gateway's admin API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid gateway url `{0}`; write e.g. http://127.0.0.1:8080")]
    Url(String),
    #[error("cannot reach the gateway at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
}

/// Sends `method path` with the admin token and returns the JSON answer.
pub async fn admin_call(
    base: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
) -> Result<Value, ClientError> {
    call(base, token, method, path, None).await
}

/// Sends a request with an optional JSON body and bearer token; returns the JSON answer.
pub async fn call(
    base: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ClientError> {
    let resp = open(base, token, method, path, body).await?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(base, e.to_string()))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&body).into_owned()));
    if !status.is_success() {
        return Err(api_error(status, &value));
    }
    Ok(value)
}

/// The error an unsuccessful answer means, with the gateway's message.
pub fn api_error(status: http::StatusCode, value: &Value) -> ClientError {
    let message = value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("gateway answered {status}"));
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}

fn unreachable(base: &str, message: String) -> ClientError {
    ClientError::Unreachable {
        url: base.to_string(),
        message,
    }
}

/// Sends a request and returns the answer as it arrives, whatever its status:
/// for long answers (build progress, file downloads). Only the wait for the
/// response head is bounded (30 s).
pub async fn open(
    base: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ClientError::Url(base.to_string()))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut req = http::Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let payload = match body {
        Some(v) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let req = req
        .body(Full::new(payload))
        .map_err(|_| ClientError::Url(base.to_string()))?;
    tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| unreachable(base, "timed out after 30 s".into()))?
        .map_err(|e| unreachable(base, error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Appends the given parameters, percent-encoded, to a path that already has a query.
pub(super) fn query<const N: usize>(path: &str, params: [(&str, Option<String>); N]) -> String {
    let mut out = path.to_string();
    for (k, v) in params {
        if let Some(v) = v {
            out.push_str(&format!("&{k}={}", encode(&v)));
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters, which is safe in a path
/// segment and in a query value alike.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query or path value.
pub(super) fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, COMPONENT).to_string()
}
