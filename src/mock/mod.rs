//! Mock OpenAI-compatible upstream for Flywheel's integration tests, benchmark and demo.
//!
//! It is a real HTTP/1.1 and h2c server that answers the OpenAI endpoints (chat completions,
//! completions, embeddings, responses, models) with deterministic content, plain JSON or SSE
//! streams. Each request may pick a behaviour (errors, delays, chunking, disconnects, hangs)
//! through the `x-mock` header or a `mock:` model prefix, so tests can provoke upstream faults
//! without any real provider; `prose=N` and `usage_details` give answers the size and shape of
//! real ones for the benchmark.
//!
//! This module must never be used for production routing, and it must never open a network
//! connection of its own: the only socket it touches is the listener it is handed.
//!
//! Layout: this file serves, routes and decodes each JSON request once;
//! `directives` reads the per-request behaviour and applies the faults that
//! come before any endpoint runs; `chat`, `completions`, `embeddings` and
//! `responses` build each endpoint's answer from `envelope` (the shapes chat
//! and text completions share), `text` (reply text) and `sse` (event
//! streams); `body` is the response body that paces frames and injects
//! disconnects.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde::Deserialize;
use serde_json::{json, Value};

mod body;
mod chat;
mod completions;
mod directives;
mod embeddings;
mod envelope;
mod responses;
mod sse;
mod text;

use self::body::{error, json_response, paced, MockAbort, MockBody, Reply};
use self::chat::{chat, ChatReq};
use self::completions::{completions, CompletionReq};
use self::directives::{prelude, Directives};
use self::embeddings::{embeddings, EmbeddingReq};
use self::responses::{responses, ResponsesReq};

/// Model name reported when a request does not name one.
const DEFAULT_MODEL: &str = "mock-model";
/// How long open connections may drain after shutdown before they are dropped.
const DRAIN: Duration = Duration::from_secs(1);
/// Upper bound for directive-driven sizes, so a typo cannot exhaust memory.
const MAX_WORDS: usize = 65_536;

/// The only global state: a counter that makes ids unique within the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves the mock upstream on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    // Every connection task holds a receiver; the sender tells them to drain, and its
    // `closed()` tells us when the last one is gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Accept errors such as fd exhaustion are transient: back off, don't spin.
                    tracing::warn!(%error, "mock upstream accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Streaming chunks are tiny, so Nagle's algorithm would only add latency.
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(stream), service_fn(handle));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.changed() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
    Ok(())
}

async fn handle(req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.map_err(|_| MockAbort)?.to_bytes();
    let header = parts.headers.get("x-mock").and_then(|v| v.to_str().ok());
    let path = parts.uri.path();
    let post = parts.method == Method::POST;
    match path {
        "/v1/chat/completions" if post => json_endpoint(&bytes, header, chat).await,
        "/v1/completions" if post => json_endpoint(&bytes, header, completions).await,
        "/v1/embeddings" if post => json_endpoint(&bytes, header, embeddings).await,
        "/v1/responses" if post => json_endpoint(&bytes, header, responses).await,
        _ => {
            let d = Directives::parse(header.unwrap_or(""));
            if let Some(early) = prelude(&d).await? {
                return Ok(early);
            }
            if path == "/v1/models" && parts.method == Method::GET {
                let mut resp = Response::new(MockBody::Full(Some(Bytes::from_static(MODELS))));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(resp)
            } else if path == "/v1/_echo" || path.starts_with("/v1/_echo/") {
                Ok(echo(&parts, &bytes))
            } else {
                let message = format!("invalid url ({} {path})", parts.method);
                Ok(error(StatusCode::NOT_FOUND, &message, Some("not_found")))
            }
        }
    }
}

/// The fixed model list; `created` is a constant so the answer never changes.
const MODELS: &[u8] = concat!(
    r#"{"object":"list","data":[{"id":"mock-model","object":"model","#,
    r#""created":1700000000,"owned_by":"mock"}]}"#
)
.as_bytes();

/// Reflects the request so tests can see exactly what the gateway forwarded.
fn echo(parts: &http::request::Parts, body: &[u8]) -> Response<MockBody> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            // Repeated headers are folded the way HTTP allows, so none is lost.
            Some(Value::String(prev)) => *prev = format!("{prev}, {value}"),
            _ => drop(headers.insert(name.as_str().to_owned(), Value::from(value))),
        }
    }
    let echo = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
    });
    json_response(StatusCode::OK, &echo)
}

/// Request types that may carry directives in their `model` field.
trait Modeled {
    fn model(&self) -> Option<&str>;
}

macro_rules! modeled {
    ($($t:ident),*) => {$(
        impl Modeled for $t<'_> {
            fn model(&self) -> Option<&str> {
                self.model.as_deref()
            }
        }
    )*};
}
modeled!(ChatReq, CompletionReq, EmbeddingReq, ResponsesReq);

/// Parses a JSON body once, resolves directives (header first, then model), runs the
/// prelude, and only then reports a malformed body, so fault injection works on any input.
async fn json_endpoint<'a, T, F>(bytes: &'a [u8], header: Option<&'a str>, build: F) -> Reply
where
    T: Deserialize<'a> + Modeled,
    F: FnOnce(&T, &Directives<'_>) -> Response<MockBody>,
{
    let parsed = serde_json::from_slice::<T>(bytes);
    let spec = header.or_else(|| parsed.as_ref().ok()?.model()?.strip_prefix("mock:"));
    let d = Directives::parse(spec.unwrap_or(""));
    if let Some(early) = prelude(&d).await? {
        return Ok(early);
    }
    let reply = match &parsed {
        Ok(req) => build(req, &d),
        Err(e) => {
            let message = format!("could not parse the json body: {e}");
            error(StatusCode::BAD_REQUEST, &message, None)
        }
    };
    // A non-streaming disconnect sends the headers and a prefix of the body, then dies.
    let (head, body) = reply.into_parts();
    let body = match (d.disconnect_after, body) {
        (Some(n), MockBody::Full(Some(data))) => {
            paced(vec![data.slice(..n.min(data.len()))], Duration::ZERO, true)
        }
        (_, body) => body,
    };
    Ok(Response::from_parts(head, body))
}
