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

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::time::Sleep;

/// Model name reported when a request does not name one.
const DEFAULT_MODEL: &str = "mock-model";
/// How long open connections may drain after shutdown before they are dropped.
const DRAIN: Duration = Duration::from_secs(1);
/// Pause before an injected disconnect, so frames already produced reach the socket first.
const ABORT_GRACE: Duration = Duration::from_millis(20);
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

/// Error used to make hyper drop a connection or reset a stream on purpose.
#[derive(Debug)]
struct MockAbort;

impl std::fmt::Display for MockAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock upstream aborted the response")
    }
}

impl std::error::Error for MockAbort {}

type Reply = Result<Response<MockBody>, MockAbort>;

/// Response body: either one buffer, or a sequence of frames paced by a timer and possibly
/// ending in an error. A hand-written body avoids a task and a channel per stream.
enum MockBody {
    Full(Option<Bytes>),
    Stream(Box<Paced>),
}

struct Paced {
    frames: std::vec::IntoIter<Bytes>,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    abort: bool,
    aborting: bool,
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = MockAbort;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, MockAbort>>> {
        let paced = match self.get_mut() {
            MockBody::Full(data) => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            MockBody::Stream(paced) => paced,
        };
        loop {
            if let Some(sleep) = paced.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                paced.sleep = None;
            }
            if paced.aborting {
                return Poll::Ready(Some(Err(MockAbort)));
            }
            match paced.frames.next() {
                Some(frame) => {
                    if !paced.delay.is_zero() && paced.frames.len() > 0 {
                        paced.sleep = Some(Box::pin(tokio::time::sleep(paced.delay)));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                // Pausing before the error lets hyper flush what was already written, since
                // a body error makes it drop its write buffer.
                None if paced.abort => {
                    paced.aborting = true;
                    paced.sleep = Some(Box::pin(tokio::time::sleep(ABORT_GRACE)));
                }
                None => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(data) => data.is_none(),
            MockBody::Stream(p) => p.frames.len() == 0 && !p.abort && p.sleep.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            MockBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Per-request behaviour parsed from `x-mock` or a `mock:` model prefix.
#[derive(Default)]
struct Directives<'a> {
    status: Option<u16>,
    delay_ms: Option<u64>,
    chunks: Option<usize>,
    chunk_delay_ms: Option<u64>,
    disconnect_after: Option<usize>,
    no_usage: bool,
    hang: bool,
    reply: Option<&'a str>,
    reply_words: Option<usize>,
    /// Bytes of built-in prose to answer with, for payloads the size and shape of real ones.
    prose: Option<usize>,
    /// Usage carries `prompt_tokens_details` and `completion_tokens_details`, as OpenAI's does.
    usage_details: bool,
}

impl<'a> Directives<'a> {
    fn parse(spec: &'a str) -> Self {
        let mut d = Directives::default();
        for item in spec.split(',') {
            let item = item.trim();
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let number = || value.trim().parse::<u64>().ok();
            let count = || number().map(|n| (n as usize).min(MAX_WORDS));
            match key.trim() {
                "status" => d.status = number().and_then(|n| u16::try_from(n).ok()),
                "delay_ms" => d.delay_ms = number(),
                "chunks" => d.chunks = count().filter(|&n| n > 0),
                "chunk_delay_ms" => d.chunk_delay_ms = number(),
                "disconnect_after" => d.disconnect_after = count(),
                "no_usage" => d.no_usage = true,
                "hang" => d.hang = true,
                "reply" => d.reply = Some(value),
                "reply_words" => d.reply_words = count(),
                "prose" => d.prose = count(),
                "usage_details" => d.usage_details = true,
                _ => {}
            }
        }
        d
    }
}

/// Applies the behaviours that do not depend on the endpoint; `Some` is the final answer.
async fn prelude(d: &Directives<'_>) -> Result<Option<Response<MockBody>>, MockAbort> {
    if d.hang {
        // The connection task drops this future when the client goes away or on shutdown.
        std::future::pending::<()>().await;
    }
    if let Some(ms) = d.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if d.disconnect_after == Some(0) {
        return Err(MockAbort);
    }
    match d.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) if status.as_u16() >= 400 => {
            let code = match status.as_u16() {
                429 => Some("rate_limit_exceeded"),
                401 => Some("invalid_api_key"),
                404 => Some("not_found"),
                500..=599 => Some("server_error"),
                _ => None,
            };
            let message = format!("mock upstream returned status {}", status.as_u16());
            Ok(Some(error(status, &message, code)))
        }
        _ => Ok(None),
    }
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

fn paced(frames: Vec<Bytes>, delay: Duration, abort: bool) -> MockBody {
    MockBody::Stream(Box::new(Paced {
        frames: frames.into_iter(),
        delay,
        sleep: None,
        abort,
        aborting: false,
    }))
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<MockBody> {
    let mut buf = Vec::with_capacity(512);
    write_json(&mut buf, value);
    let mut resp = Response::new(MockBody::Full(Some(Bytes::from(buf))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn write_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(buf, value).expect("mock json serialization cannot fail");
}

/// OpenAI-shaped error; the `type` follows the status class the way OpenAI reports it.
fn error(status: StatusCode, message: &str, code: Option<&str>) -> Response<MockBody> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    json_response(status, &body)
}

/// Accumulates SSE events in one buffer and cuts it into frames, so a stream costs one
/// allocation for its bytes; it also stops recording once the injected disconnect is due.
struct Events {
    buf: Vec<u8>,
    ends: Vec<usize>,
    left: Option<usize>,
    delay: Duration,
}

impl Events {
    fn new(d: &Directives<'_>) -> Self {
        Events {
            buf: Vec::with_capacity(4096),
            ends: Vec::with_capacity(32),
            left: d.disconnect_after,
            delay: Duration::from_millis(d.chunk_delay_ms.unwrap_or(0)),
        }
    }

    fn aborted(&self) -> bool {
        self.left == Some(0)
    }

    /// Records one event; content events are what `disconnect_after` counts.
    fn push<T: Serialize>(&mut self, name: Option<&str>, value: &T, content: bool) {
        if self.aborted() {
            return;
        }
        if let Some(name) = name {
            self.buf.extend_from_slice(b"event: ");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(b"data: ");
        write_json(&mut self.buf, value);
        self.buf.extend_from_slice(b"\n\n");
        self.ends.push(self.buf.len());
        if let (true, Some(left)) = (content, self.left.as_mut()) {
            *left -= 1;
        }
    }

    fn into_response(self) -> Response<MockBody> {
        let abort = self.aborted();
        let all = Bytes::from(self.buf);
        let mut start = 0;
        let frames = self
            .ends
            .iter()
            .map(|&end| {
                let frame = all.slice(start..end);
                start = end;
                frame
            })
            .collect();
        let mut resp = Response::new(paced(frames, self.delay, abort));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Builds the reply text: an override or `prefix + echo`, cut to `limit` words, then padded
/// to `pad_to` words so a requested chunk count can always be met. Returns whether it was cut.
fn reply_text(
    prefix: &str,
    echo: &str,
    d: &Directives<'_>,
    limit: Option<u64>,
    pad_to: Option<usize>,
) -> (String, bool) {
    let mut text = match (d.reply, d.reply_words, d.prose) {
        (Some(reply), _, _) => reply.to_owned(),
        (None, Some(n), _) => numbered_words(String::with_capacity(n * 7), 1, n),
        (None, None, Some(n)) => prose(n),
        (None, None, None) => {
            let mut s = String::with_capacity(prefix.len() + echo.len());
            s.push_str(prefix);
            s.push_str(echo);
            s
        }
    };
    let mut truncated = false;
    if let Some(limit) = limit.map(|l| l.min(MAX_WORDS as u64) as usize) {
        if words(&text) > limit {
            let last = text.split_whitespace().nth(limit.wrapping_sub(1));
            let end = last.map_or(0, |w| {
                w.as_ptr() as usize - text.as_ptr() as usize + w.len()
            });
            text.truncate(end);
            truncated = true;
        }
    }
    text.truncate(text.trim_end().len());
    let have = words(&text);
    let text = numbered_words(text, have + 1, pad_to.unwrap_or(0));
    (text, truncated)
}

/// Appends "word<from>" up to "word<to>" to `text`, separated by single spaces.
fn numbered_words(mut text: String, from: usize, to: usize) -> String {
    for k in from..=to {
        if !text.is_empty() {
            text.push(' ');
        }
        let _ = write!(text, "word{k}");
    }
    text
}

/// A model's answer as an assistant writes one: prose with numbers and a code block, so a
/// payload built from it costs what a real one does to escape, parse and scan. ASCII only,
/// so any byte offset is a character boundary.
const PROSE: &str = "\
The retries you describe all fire at the same moment, which is why the upstream keeps \
answering 429: after a rate-limit error every worker waits exactly 2 seconds and then \
sends again, so the next burst is as large as the first one. Two changes fix this. First, \
grow the wait after each failure (exponential backoff), starting at 0.5 s and doubling up \
to a cap of 30 s. Second, add random jitter so that 50 clients do not wake up together.

Here is a version of your helper with both changes:

```python
import random
import time

def call_with_retry(send, max_attempts=6, base=0.5, cap=30.0):
    for attempt in range(max_attempts):
        response = send()
        if response.status_code not in (429, 500, 502, 503):
            return response
        retry_after = response.headers.get(\"retry-after\")
        if retry_after is not None:
            delay = float(retry_after)
        else:
            delay = random.uniform(0, min(cap, base * 2 ** attempt))
        time.sleep(delay)
    raise RuntimeError(f\"gave up after {max_attempts} attempts\")
```

A few notes on the numbers. With 6 attempts the longest total wait is about 0.5 + 1 + 2 + \
4 + 8 + 16 = 31.5 s, which fits inside your 60 s job timeout. If the server sends a \
Retry-After header, honour it: it knows its own window better than any guess. Finally, \
only retry requests that are safe to repeat; a POST that charges a card should carry an \
idempotency key before you let the loop send it twice.";

/// About `n` bytes of [`PROSE`], repeated as needed and cut after the last whole word.
fn prose(n: usize) -> String {
    let mut text = String::with_capacity(n + PROSE.len());
    while text.len() < n {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(PROSE);
    }
    // Keep the word that ends exactly at `n`, drop one cut in two.
    let cut = match text.as_bytes().get(n) {
        Some(b) if !b.is_ascii_whitespace() => text[..n].rfind(char::is_whitespace),
        _ => Some(n),
    };
    text.truncate(cut.unwrap_or(0).min(text.len()));
    text.truncate(text.trim_end().len());
    text
}

/// Splits `s` into word-sized pieces that concatenate back to `s` (each piece carries the
/// whitespace before its word, like model tokens), grouped into `n` pieces when asked.
fn pieces(s: &str, n: Option<usize>) -> Vec<&str> {
    let mut cuts = Vec::with_capacity(16);
    let mut prev_ws = false;
    for (i, c) in s.char_indices() {
        let ws = c.is_whitespace();
        if i == 0 || (ws && !prev_ws) {
            cuts.push(i);
        }
        prev_ws = ws;
    }
    cuts.push(s.len());
    let k = cuts.len() - 1;
    let n = n.map_or(k, |n| n.min(k));
    (0..n)
        .map(|j| &s[cuts[j * k / n]..cuts[(j + 1) * k / n]])
        .collect()
}

/// Wraps text as a one-field JSON object string, used for tool arguments and JSON mode.
fn wrap_json(key: &str, text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + key.len() + 8);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_json(&mut out, &text);
    out.push(b'}');
    String::from_utf8(out).expect("json output is utf-8")
}

/// Text of a message content that is either a string or an array of `{type, text}` parts.
fn text_of(raw: &RawValue) -> Cow<'_, str> {
    #[derive(Deserialize)]
    struct Part<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
    }
    let s = raw.get();
    if let Ok(text) = serde_json::from_str::<&str>(s) {
        return Cow::Borrowed(text);
    }
    if let Ok(text) = serde_json::from_str::<String>(s) {
        return Cow::Owned(text);
    }
    let parts = serde_json::from_str::<Vec<Part<'_>>>(s).unwrap_or_default();
    let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
    Cow::Owned(texts.join(" "))
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
}

/// All zero: the mock has no prompt cache, no audio, no reasoning and no predicted output;
/// the fields are there for the shape and size of a real answer.
#[derive(Serialize, Default)]
struct PromptDetails {
    cached_tokens: usize,
    audio_tokens: usize,
}

#[derive(Serialize, Default)]
struct CompletionDetails {
    reasoning_tokens: usize,
    audio_tokens: usize,
    accepted_prediction_tokens: usize,
    rejected_prediction_tokens: usize,
}

impl Usage {
    fn new(prompt: usize, completion: usize) -> Self {
        let total_tokens = prompt + completion;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }
}

/// Outer shape of chat and text completions and their chunks. `usage` is absent when `None`
/// and `null` when `Some(None)`, matching how OpenAI streams with `include_usage`.
#[derive(Serialize)]
struct Envelope<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

/// What every envelope of one completion shares.
struct Head<'a> {
    id: String,
    created: u64,
    model: &'a str,
    usage: Usage,
    /// Whether usage appears at all: the directive can veto it, and streams need opting in.
    with_usage: bool,
}

impl<'a> Head<'a> {
    fn new(prefix: &str, model: Option<&'a str>, mut usage: Usage, d: &Directives<'_>) -> Self {
        if d.usage_details {
            usage.prompt_tokens_details = Some(PromptDetails::default());
            usage.completion_tokens_details = Some(CompletionDetails::default());
        }
        let id = format!("{prefix}{}", next_id());
        let model = model.unwrap_or(DEFAULT_MODEL);
        let with_usage = !d.no_usage;
        Head {
            id,
            created: now(),
            model,
            usage,
            with_usage,
        }
    }

    fn wrap<C>(
        &self,
        object: &'static str,
        choices: C,
        usage: Option<Option<&'a Usage>>,
    ) -> Envelope<'_, C> {
        let (id, created, model) = (&self.id, self.created, self.model);
        Envelope {
            id,
            object,
            created,
            model,
            choices,
            usage,
        }
    }

    /// The answer to a non-streaming request.
    fn full<C: Serialize>(&self, object: &'static str, choices: C) -> Response<MockBody> {
        let usage = Some(Some(&self.usage)).filter(|_| self.with_usage);
        json_response(StatusCode::OK, &self.wrap(object, choices, usage))
    }

    /// One stream chunk; with usage enabled every chunk carries `"usage": null`.
    fn chunk<C: Serialize>(
        &self,
        ev: &mut Events,
        object: &'static str,
        choices: C,
        content: bool,
    ) {
        let usage = self.with_usage.then_some(None);
        ev.push(None, &self.wrap(object, choices, usage), content);
    }

    /// Ends a stream: the usage chunk with no choices if enabled, then `[DONE]`.
    /// A real server writes both right behind the final chunk, so they share
    /// its frame instead of waiting out another chunk delay each.
    fn close(&self, mut ev: Events, object: &'static str) -> Response<MockBody> {
        if ev.aborted() {
            return ev.into_response();
        }
        if self.with_usage {
            ev.push(
                None,
                &self.wrap(object, [(); 0], Some(Some(&self.usage))),
                false,
            );
        }
        ev.buf.extend_from_slice(b"data: [DONE]\n\n");
        let end = ev.buf.len();
        let tail_events = if self.with_usage { 2 } else { 1 };
        // Drop the frame ends of the final chunk and the usage chunk so that
        // they and [DONE] go out as one frame.
        let keep = ev.ends.len().saturating_sub(tail_events);
        ev.ends.truncate(keep);
        ev.ends.push(end);
        ev.into_response()
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Whether a stream asked for usage chunks.
fn wants_usage(options: Option<&StreamOptions>) -> bool {
    options.and_then(|o| o.include_usage) == Some(true)
}

#[derive(Deserialize)]
struct ChatReq<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Vec<ChatMsg<'a>>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[serde(borrow)]
    tools: Option<Vec<ToolDef<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow)]
    response_format: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct ChatMsg<'a> {
    #[serde(borrow, default)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

/// Word count of all messages and the text of the last user message.
fn conversation<'a>(messages: &[ChatMsg<'a>]) -> (usize, Cow<'a, str>) {
    let mut count = 0;
    let mut last_user = Cow::Borrowed("");
    for msg in messages {
        let text = msg.content.map_or(Cow::Borrowed(""), text_of);
        count += words(&text);
        if msg.role == "user" {
            last_user = text;
        }
    }
    (count, last_user)
}

/// A tool in chat form (`{function: {name}}`) or Responses form (`{name}`).
#[derive(Deserialize)]
struct ToolDef<'a> {
    #[serde(borrow)]
    function: Option<Named<'a>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Choice<'a, M> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<M>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<M>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    logprobs: (),
    finish_reason: Option<&'a str>,
}

impl<'a, M> Choice<'a, M> {
    fn new(index: usize, finish_reason: Option<&'a str>) -> Self {
        let (message, delta, text) = (None, None, None);
        Choice {
            index,
            message,
            delta,
            text,
            logprobs: (),
            finish_reason,
        }
    }
}

/// Both a full chat message and a stream delta; absent fields are skipped, so a delta
/// carries only what changed and `content: Some(None)` is an explicit null.
#[derive(Serialize, Default)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<()>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl<'a> ToolCall<'a> {
    /// The first mention of a call carries id, type and name; fragments only arguments.
    fn new(
        index: Option<usize>,
        id: Option<&'a str>,
        name: Option<&'a str>,
        arguments: &'a str,
    ) -> Self {
        let kind = id.map(|_| "function");
        ToolCall {
            index,
            id,
            kind,
            function: FunctionCall { name, arguments },
        }
    }
}

fn chat(req: &ChatReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    const CHUNK: &str = "chat.completion.chunk";
    let (prompt, last_user) = conversation(&req.messages);
    let stream = req.stream == Some(true);
    let tool_allowed = req.tool_choice.is_none_or(|c| c.get() != "\"none\"");
    let tool = req
        .tools
        .as_ref()
        .and_then(|t| t.first())
        .filter(|_| tool_allowed);
    let tool = tool.map(|t| {
        let nested = t.function.as_ref().and_then(|f| f.name.as_deref());
        nested.or(t.name.as_deref()).unwrap_or("tool")
    });
    let format = req.response_format.as_ref().and_then(|f| f.kind.as_deref());
    let json_mode = matches!(format, Some("json_object" | "json_schema"));
    let prefix = if tool.is_some() { "" } else { "mock reply: " };
    let limit = req.max_completion_tokens.or(req.max_tokens);
    let pad = d.chunks.filter(|_| stream);
    let (text, truncated) = reply_text(prefix, &last_user, d, limit, pad);
    let content: Cow<'_, str> = match (tool, json_mode) {
        (Some(_), _) => Cow::Owned(wrap_json("query", &text)),
        (None, true) => Cow::Owned(wrap_json("reply", &text)),
        (None, false) => Cow::Borrowed(&text),
    };
    let choices = req.n.unwrap_or(1).clamp(1, 64) as usize;
    let usage = Usage::new(prompt.max(1), words(&text).max(1) * choices);
    let mut head = Head::new("chatcmpl-", req.model.as_deref(), usage, d);
    let finish = match (tool, truncated) {
        (Some(_), _) => "tool_calls",
        (None, true) => "length",
        (None, false) => "stop",
    };
    let call_id = head.id.replacen("chatcmpl-", "call_", 1);
    let text_content = Some(&*content).filter(|_| tool.is_none());
    if !stream {
        let choices: Vec<_> = (0..choices)
            .map(|index| Choice {
                message: Some(Message {
                    role: Some("assistant"),
                    content: Some(text_content),
                    tool_calls: tool
                        .map(|t| [ToolCall::new(None, Some(&call_id), Some(t), &content)]),
                    refusal: Some(()),
                }),
                ..Choice::new(index, Some(finish))
            })
            .collect();
        return head.full("chat.completion", choices);
    }
    head.with_usage &= wants_usage(req.stream_options.as_ref());
    let mut ev = Events::new(d);
    for index in 0..choices {
        let opening = Message {
            role: Some("assistant"),
            content: Some(text_content.map(|_| "")),
            tool_calls: tool.map(|t| [ToolCall::new(Some(0), Some(&call_id), Some(t), "")]),
            refusal: None,
        };
        let delta = |delta| {
            [Choice {
                delta: Some(delta),
                ..Choice::new(index, None)
            }]
        };
        head.chunk(&mut ev, CHUNK, delta(opening), false);
        for piece in pieces(&content, d.chunks) {
            let delta = delta(match tool {
                None => Message {
                    content: Some(Some(piece)),
                    ..Message::default()
                },
                Some(_) => {
                    let call = ToolCall::new(Some(0), None, None, piece);
                    Message {
                        tool_calls: Some([call]),
                        ..Message::default()
                    }
                }
            });
            head.chunk(&mut ev, CHUNK, delta, true);
        }
        let last = Choice {
            delta: Some(Message::default()),
            ..Choice::new(index, Some(finish))
        };
        head.chunk(&mut ev, CHUNK, [last], false);
    }
    head.close(ev, CHUNK)
}

#[derive(Deserialize)]
struct CompletionReq<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

fn completions(req: &CompletionReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    const OBJECT: &str = "text_completion";
    // A list of prompts answers the first one, which is all the gateway tests need.
    let prompt = match req.prompt.map(RawValue::get) {
        Some(list) if list.starts_with('[') => serde_json::from_str::<Vec<&RawValue>>(list)
            .ok()
            .and_then(|list| Some(text_of(list.first()?).into_owned()))
            .map_or(Cow::Borrowed(""), Cow::Owned),
        _ => req.prompt.map_or(Cow::Borrowed(""), text_of),
    };
    let stream = req.stream == Some(true);
    let pad = d.chunks.filter(|_| stream);
    let (text, truncated) = reply_text("mock completion: ", &prompt, d, req.max_tokens, pad);
    let choices = req.n.unwrap_or(1).clamp(1, 64) as usize;
    let usage = Usage::new(words(&prompt).max(1), words(&text).max(1) * choices);
    let mut head = Head::new("cmpl-", req.model.as_deref(), usage, d);
    let finish = Some(if truncated { "length" } else { "stop" });
    let choice = |index, text, finish| Choice::<()> {
        text: Some(text),
        ..Choice::new(index, finish)
    };
    if !stream {
        let choices: Vec<_> = (0..choices)
            .map(|index| choice(index, &*text, finish))
            .collect();
        return head.full(OBJECT, choices);
    }
    head.with_usage &= wants_usage(req.stream_options.as_ref());
    let mut ev = Events::new(d);
    for index in 0..choices {
        for piece in pieces(&text, d.chunks) {
            head.chunk(&mut ev, OBJECT, [choice(index, piece, None)], true);
        }
        head.chunk(&mut ev, OBJECT, [choice(index, "", finish)], false);
    }
    head.close(ev, OBJECT)
}

#[derive(Deserialize)]
struct EmbeddingReq<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    input: Option<Value>,
    dimensions: Option<u64>,
    #[serde(borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

fn embeddings(req: &EmbeddingReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    // A flat number array is one tokenized input; otherwise each array element is one input.
    let inputs: Vec<&Value> = match &req.input {
        Some(Value::Array(list)) if !list.iter().all(Value::is_number) => list.iter().collect(),
        Some(input) if input.as_array().is_none_or(|l| !l.is_empty()) => vec![input],
        _ => Vec::new(),
    };
    if inputs.is_empty() {
        let message = "'input' must be a non-empty string or array";
        return error(StatusCode::BAD_REQUEST, message, None);
    }
    let dims = req.dimensions.unwrap_or(8).clamp(1, 8192) as usize;
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            // Text is hashed as is, token arrays by their JSON form.
            let text = input
                .as_str()
                .map_or_else(|| Cow::Owned(input.to_string()), Cow::Borrowed);
            tokens += input.as_array().map_or_else(|| words(&text), Vec::len);
            let vector = embed(&text, dims);
            let embedding = if base64 {
                let raw: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Vector::Base64(base64_encode(&raw))
            } else {
                Vector::Floats(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = tokens.max(1);
    let mut body = json!({"object": "list", "data": data, "model": model});
    if !d.no_usage {
        body["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    }
    json_response(StatusCode::OK, &body)
}

/// Deterministic unit vector: FNV-1a of the text seeds a splitmix64 sequence.
fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Deserialize)]
struct ResponsesReq<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    instructions: Option<Cow<'a, str>>,
    max_output_tokens: Option<u64>,
    stream: Option<bool>,
}

/// One streamed Responses API event; `rest` holds the event-specific fields.
#[derive(Serialize)]
struct TypedEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    rest: Value,
}

fn responses(req: &ResponsesReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    let n_id = next_id();
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let mut input_words = req.instructions.as_deref().map_or(0, words);
    // Input is a string or a list of message items shaped like chat messages.
    let mut last_user = Cow::Borrowed("");
    match req.input {
        Some(raw) if raw.get().starts_with('[') => {
            let items: Vec<ChatMsg<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
            let (count, last) = conversation(&items);
            input_words += count;
            last_user = last;
        }
        Some(raw) => {
            last_user = text_of(raw);
            input_words += words(&last_user);
        }
        None => {}
    }
    let stream = req.stream == Some(true);
    let (text, truncated) = reply_text(
        "mock reply: ",
        &last_user,
        d,
        req.max_output_tokens,
        d.chunks.filter(|_| stream),
    );
    let (id, msg_id, created) = (format!("resp_{n_id}"), format!("msg_{n_id}"), now());
    let output_tokens = words(&text).max(1);
    let usage = (!d.no_usage).then(|| {
        let (input, output) = (input_words.max(1), output_tokens);
        json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output})
    });
    let part = json!({"type": "output_text", "text": text, "annotations": []});
    let message = |status: &str, content: Value| {
        json!({"type": "message", "id": msg_id, "status": status, "role": "assistant",
               "content": content})
    };
    let item = message("completed", json!([part]));
    let status = if truncated { "incomplete" } else { "completed" };
    let object = |status: &str, output: Value, usage: Option<&Value>| {
        json!({"id": id, "object": "response", "created_at": created, "status": status,
               "model": model, "output": output, "usage": usage})
    };
    if !stream {
        return json_response(
            StatusCode::OK,
            &object(status, json!([item]), usage.as_ref()),
        );
    }
    // The event sequence, with content deltas in the middle; only deltas count as content.
    let pending = json!({"response": object("in_progress", json!([]), None)});
    let open_item = message("in_progress", json!([]));
    let at = |mut extra: Value| {
        extra["item_id"] = json!(msg_id);
        extra["output_index"] = json!(0);
        extra["content_index"] = json!(0);
        extra
    };
    let empty_part = json!({"type": "output_text", "text": "", "annotations": []});
    let head = [
        ("response.created", pending.clone()),
        ("response.in_progress", pending),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": open_item}),
        ),
        (
            "response.content_part.added",
            at(json!({"part": empty_part})),
        ),
    ];
    let deltas = pieces(&text, d.chunks).into_iter();
    let deltas = deltas.map(|piece| ("response.output_text.delta", at(json!({"delta": piece}))));
    let last = if truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    let done = object(status, json!([item]), usage.as_ref());
    let tail = [
        ("response.output_text.done", at(json!({"text": text}))),
        ("response.content_part.done", at(json!({"part": part}))),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
        (last, json!({"response": done})),
    ];
    let mut ev = Events::new(d);
    for (seq, (kind, rest)) in head.into_iter().chain(deltas).chain(tail).enumerate() {
        let event = TypedEvent {
            kind,
            sequence_number: seq as u64,
            rest,
        };
        ev.push(Some(kind), &event, kind == "response.output_text.delta");
    }
    ev.into_response()
}
