//! HTTP/1.1 toward plain-TCP clients, served by the gateway itself.
//!
//! hyper's server runs a general state machine per connection: it passes the
//! request body to the service through a channel, parses the head into a
//! header map with its own bookkeeping, and encodes the response through
//! buffers of its own. Here one loop per connection does the exchange: it reads
//! a request head ([`httparse`]), checks on the head that the request is
//! authorized (one that is not gets its 401 without its body being read, and
//! the connection closes), reads the body whole (every route reads its body
//! whole before it answers) within `server.max_body_bytes` and
//! `server.body_timeout_secs`, calls the handler, and writes the response: a
//! whole body with its head in one write, a streamed one chunk by chunk as it
//! comes. While the handler waits on the upstream, and while a response
//! streams, the socket is watched: a client that closes its connection drops
//! the handler's future (or the body), which cancels the upstream call and
//! records the call as `client_closed`. So does a client that takes none of
//! a response for `server.send_timeout_secs`.
//!
//! Requests may be pipelined; each is answered in turn. A connection that
//! starts with the HTTP/2 preface (h2c with prior knowledge) is handed back,
//! with what has been read, to be served by hyper, as is every connection
//! over TLS. On shutdown an idle connection closes at once and a busy one
//! after its response, which says `connection: close`.
//!
//! Framing follows RFC 9112, strictly, because a gateway that draws a
//! request's boundary where a proxy in front of it does not can be made to
//! serve a request nobody checked (request smuggling). A body is framed by
//! `Transfer-Encoding: chunked` or `Content-Length`. A request with any other
//! transfer coding gets 501; `chunked` twice or an empty `Transfer-Encoding`,
//! both framings at once, a malformed head or a chunked body off the grammar
//! (a line not ended by CRLF, a chunk extension that is not
//! `;name[=token|"quoted"]`, space around the size, a trailer line that is
//! not a field) get 400; a head over 64 KiB or 100 header lines 431; all as
//! OpenAI-shaped JSON, and the connection is closed. So does an HTTP/1.1
//! request without exactly one valid `Host` line (RFC 9112 §3.2), and a
//! target that is not origin-form, absolute-form with an `http(s)` scheme
//! (whose authority then replaces the `Host` value, §3.2.2), `*` for
//! OPTIONS or authority-form for CONNECT (which the handler answers 405).
//! `Expect: 100-continue` is answered when the body is about to be read.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::body::{BodyFault, BoxError, ClientBody, ResponseBody};
use super::budget::{BodyBudget, Reserved};
use super::framing::{parse_length, poll_fill, Coding, Decoded, Framer, Framing, SendError};
use super::idle::{Activity, Busy, Watched};
use crate::error::error_json_param;

/// The most header lines and bytes a request head may have.
const MAX_HEADERS: usize = 100;
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Pipelined requests read ahead while one is being answered, at most.
const MAX_READ_AHEAD: usize = 256 * 1024;
/// Response bodies up to this size are copied beside their head and sent in one write.
const COPY_BODY_BYTES: usize = 32 * 1024;
/// After a response that ends its connection, how long and how much more is
/// read and dropped before the socket is closed: closing with unread bytes
/// (a body refused, pipelined requests) resets the connection, and the client
/// may lose the response. A client that closes its side ends this at once.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a connection served here ended.
pub enum Ended {
    Closed,
    /// It opened with the HTTP/2 preface: the socket and what was read from it.
    Http2(TcpStream, BytesMut),
}

/// A request head that could not be taken, and the status that says why.
struct Reject(StatusCode, &'static str, &'static str);

struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// `Length(0)` when the request has no body.
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

struct Conn {
    io: TcpStream,
    /// Bytes read and not yet taken as a head or body.
    buf: BytesMut,
    /// A response head (and a small body) being written.
    out: Vec<u8>,
    /// Where a head's header lines lie, kept for the connection's life.
    spans: Vec<Span>,
    /// How long a write may wait for the client to take bytes.
    send_timeout: Duration,
}

/// A header line's name and value, as byte ranges of its head.
type Span = ((usize, usize), (usize, usize));

/// What the server hands each request to.
pub trait Service: Send + Sync + 'static {
    /// Whether a request may go on to send its body, judged on its head
    /// alone: a request that will be refused costs no more memory than its
    /// head.
    fn admits(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool;

    /// Answers a request. `busy` counts it in on its connection until the
    /// response has been sent. The result is hyper's service shape, so
    /// hyper's connections call this future as it is, with no wrapper.
    fn call(
        self: Arc<Self>,
        req: Request<ClientBody>,
        busy: Busy,
    ) -> impl Future<Output = Result<Response<Watched>, Infallible>> + Send;

    /// The bounds every connection is held to.
    fn limits(&self) -> &Limits;
}

/// The bounds of a connection and of the request bodies read on it.
pub struct Limits {
    /// `server.max_body_bytes`.
    pub max_body: u64,
    /// How long a body may take to arrive whole.
    pub body_timeout: Duration,
    /// How long a write may wait for the client to take bytes.
    pub send_timeout: Duration,
    /// Bytes of request bodies in flight over every connection.
    pub body_budget: Arc<BodyBudget>,
}

/// Serves HTTP/1.x on `io` until the client closes, an error closes the
/// connection, or `stop` turns true.
pub async fn serve<S: Service>(
    svc: Arc<S>,
    io: TcpStream,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let limits = svc.limits();
    let mut conn = Conn {
        io,
        buf: BytesMut::with_capacity(8 * 1024),
        out: Vec::with_capacity(1024),
        spans: Vec::new(),
        send_timeout: limits.send_timeout,
    };
    let limit = limits.max_body;
    let body_timeout = limits.body_timeout;
    let mut first = true;
    loop {
        // A head; between requests the shutdown may end the connection.
        let head = loop {
            if first && !conn.buf.is_empty() {
                let n = conn.buf.len().min(H2_PREFACE.len());
                if conn.buf[..n] == H2_PREFACE[..n] {
                    if n == H2_PREFACE.len() {
                        return Ended::Http2(conn.io, conn.buf);
                    }
                } else {
                    first = false;
                }
            }
            if !first && !conn.buf.is_empty() {
                match parse_request(&mut conn.buf, &mut conn.spans) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(Reject(status, message, code)) => {
                        let resp = protocol_error(status, message, code);
                        let _ = conn
                            .write_response(resp, Version::HTTP_11, false, false)
                            .await;
                        conn.linger().await;
                        return Ended::Closed;
                    }
                }
            }
            let read = if conn.buf.is_empty() {
                tokio::select! {
                    biased;
                    r = conn.fill() => r,
                    _ = stop.changed() => return Ended::Closed,
                }
            } else {
                conn.fill().await
            };
            match read {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            }
        };
        first = false;
        // Counted in from here: the idle watch must not close a connection
        // whose body is still arriving (that has its own time limit).
        let busy = activity.enter(head.version);
        let mut keep_alive = head.keep_alive;
        let has_body = head.framing != Framing::Length(0);
        let body = if has_body && !svc.admits(&head.method, head.uri.path(), &head.headers) {
            // Refused on its head: the body is neither invited (no 100
            // Continue) nor read, the handler answers at once, and the
            // connection closes after, draining what still comes within the
            // linger's bounds.
            keep_alive = false;
            ClientBody::Fault(BodyFault::Refused)
        } else {
            match conn
                .read_body(
                    head.framing,
                    head.expect_continue,
                    limit,
                    body_timeout,
                    &svc.limits().body_budget,
                )
                .await
            {
                Ok((b, reserved)) => ClientBody::Read(b, reserved),
                Err(fault) => {
                    keep_alive = false;
                    ClientBody::Fault(fault)
                }
            }
        };
        let head_only = head.method == Method::HEAD;
        let version = head.version;
        let mut req = Request::new(body);
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = version;
        *req.headers_mut() = head.headers;
        let resp = {
            let handling = svc.clone().call(req, busy);
            let mut handling = std::pin::pin!(handling);
            loop {
                let watch = conn.buf.len() < MAX_READ_AHEAD;
                tokio::select! {
                    biased;
                    r = &mut handling => break r,
                    r = conn.fill(), if watch => match r {
                        // The client left: dropping the handler cancels the
                        // upstream call and records the call as client_closed.
                        Ok(0) | Err(_) => return Ended::Closed,
                        Ok(_) => {}
                    },
                }
            }
        };
        let Ok(resp) = resp;
        let keep_alive = keep_alive && !*stop.borrow_and_update();
        match conn
            .write_response(resp, version, head_only, keep_alive)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                conn.linger().await;
                return Ended::Closed;
            }
            Err(_) => return Ended::Closed,
        }
    }
}

/// An OpenAI-shaped error for a request that never reached the handler.
fn protocol_error(status: StatusCode, message: &str, code: &str) -> Response<ResponseBody> {
    let body = error_json_param(message, ("invalid_request_error", code), None);
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl Conn {
    /// Reads what the socket holds onto the end of `buf`; `Ok(0)` once the
    /// client has closed its side.
    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| poll_fill(&self.io, &mut self.buf, cx)).await
    }

    /// Reads a body framed by `framing` whole, holding its size in
    /// `budget`: a declared length before anything is read (or the client
    /// is invited to send it), a chunked body as its chunks arrive. A small
    /// body has mostly arrived with its head: it is taken without a timer.
    async fn read_body(
        &mut self,
        mut framing: Framing,
        expect_continue: bool,
        limit: u64,
        timeout: Duration,
        budget: &Arc<BodyBudget>,
    ) -> Result<(Bytes, Reserved), BodyFault> {
        let mut reserved = match framing {
            Framing::Length(n) if n > limit => return Err(BodyFault::TooLarge),
            Framing::Length(0) => Reserved::default(),
            Framing::Length(n) => budget.reserve(n).ok_or(BodyFault::Busy)?,
            _ => budget.empty(),
        };
        let mut body = BytesMut::new();
        if let Some(done) = self.take_body(&mut framing, &mut body, limit, &mut reserved)? {
            return Ok((done, reserved));
        }
        if expect_continue && self.buf.is_empty() {
            send(
                &self.io,
                self.send_timeout,
                b"HTTP/1.1 100 Continue\r\n\r\n",
            )
            .await
            .map_err(|_| BodyFault::Malformed)?;
        }
        let rest = async {
            loop {
                match self.fill().await {
                    Ok(0) | Err(_) => return Err(BodyFault::Malformed),
                    Ok(_) => {}
                }
                if let Some(done) = self.take_body(&mut framing, &mut body, limit, &mut reserved)? {
                    return Ok(done);
                }
            }
        };
        let body = tokio::time::timeout(timeout, rest)
            .await
            .unwrap_or(Err(BodyFault::TimedOut))?;
        Ok((body, reserved))
    }

    /// Moves what has arrived of the body from `buf` to `body`; the whole
    /// body once it has ended. A body that arrived in one piece is not copied.
    fn take_body(
        &mut self,
        framing: &mut Framing,
        body: &mut BytesMut,
        limit: u64,
        reserved: &mut Reserved,
    ) -> Result<Option<Bytes>, BodyFault> {
        loop {
            match framing.decode(&mut self.buf) {
                Ok(Decoded::End) => return Ok(Some(body.split().freeze())),
                Ok(Decoded::More) => return Ok(None),
                Ok(Decoded::Data(data)) => {
                    let total = (body.len() + data.len()) as u64;
                    if total > limit {
                        return Err(BodyFault::TooLarge);
                    }
                    if !reserved.cover(total) {
                        return Err(BodyFault::Busy);
                    }
                    if body.is_empty() && *framing == Framing::Length(0) {
                        return Ok(Some(data));
                    }
                    body.extend_from_slice(&data);
                }
                Err(_) => return Err(BodyFault::Malformed),
            }
        }
    }

    /// Writes a response, its body as it comes, watching the socket for the
    /// client leaving meanwhile. True when the whole response went out and
    /// the connection may carry another request.
    async fn write_response<B: Body<Data = Bytes, Error = BoxError>>(
        &mut self,
        resp: Response<B>,
        version: Version,
        head_only: bool,
        keep_alive: bool,
    ) -> io::Result<bool> {
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        let bodiless = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        // The framing headers are the server's to write; the ones it needs
        // to know are noted on the way, without a lookup per name.
        let (mut declared, mut dated) = (None, false);
        for (name, value) in &parts.headers {
            if name == header::CONTENT_LENGTH {
                declared = parse_length(value.as_bytes());
                continue;
            }
            if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
                continue;
            }
            dated |= name == header::DATE;
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !dated {
            out.extend_from_slice(b"date: ");
            push_date(out);
            out.extend_from_slice(b"\r\n");
        }
        let exact = body.size_hint().exact();
        // How the body goes out: its length known up front, chunked, or (to an
        // HTTP/1.0 client) until the connection closes. A whole body's own
        // length wins, except where a HEAD answer states the length a GET
        // would have had.
        let (length, chunked) = match (declared, exact) {
            _ if bodiless => (None, false),
            (Some(n), None) => (Some(n), false),
            (Some(n), Some(_)) if head_only => (Some(n), false),
            (_, Some(n)) => (Some(n), false),
            (None, None) if version == Version::HTTP_11 => (None, true),
            (None, None) => (None, false),
        };
        let keep_alive = keep_alive && (bodiless || head_only || length.is_some() || chunked);
        if let Some(n) = length {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        } else if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let send_body = !head_only && !bodiless;

        let mut body = std::pin::pin!(body);
        if exact.is_some() {
            // A whole body: with its head in one write when it is small.
            let data = match body.frame().await {
                Some(Ok(f)) => f.into_data().unwrap_or_default(),
                _ => Bytes::new(),
            };
            if send_body && data.len() <= COPY_BODY_BYTES {
                out.extend_from_slice(&data);
                send(&self.io, self.send_timeout, out).await?;
            } else {
                send(&self.io, self.send_timeout, out).await?;
                if send_body {
                    send(&self.io, self.send_timeout, &data).await?;
                }
            }
            let whole = !send_body || length.is_none_or(|n| n == data.len() as u64);
            return Ok(keep_alive && whole);
        }

        send(&self.io, self.send_timeout, out).await?;
        let mut sent = 0u64;
        loop {
            let watch = self.buf.len() < MAX_READ_AHEAD;
            let frame = tokio::select! {
                biased;
                f = body.frame() => f,
                r = self.fill(), if watch => match r {
                    // The client left: dropping the body ends the call as client_closed.
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Err(e) => return Err(e),
                    Ok(_) => continue,
                },
            };
            let data = match frame {
                None => break,
                // The body failed: the response is cut short, and the client
                // sees it end without its last chunk.
                Some(Err(_)) => return Ok(false),
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) if !d.is_empty() => d,
                    _ => continue,
                },
            };
            if !send_body {
                continue;
            }
            if let Some(n) = length {
                // Never more than the head said.
                let room = n.saturating_sub(sent);
                let take = (data.len() as u64).min(room) as usize;
                send(&self.io, self.send_timeout, &data[..take]).await?;
                sent += take as u64;
                if take < data.len() {
                    return Ok(false);
                }
                continue;
            }
            if !chunked {
                send(&self.io, self.send_timeout, &data).await?;
                continue;
            }
            let out = &mut self.out;
            out.clear();
            push_hex(out, data.len());
            out.extend_from_slice(b"\r\n");
            if data.len() <= COPY_BODY_BYTES {
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
                send(&self.io, self.send_timeout, out).await?;
            } else {
                send(&self.io, self.send_timeout, out).await?;
                send(&self.io, self.send_timeout, &data).await?;
                send(&self.io, self.send_timeout, b"\r\n").await?;
            }
        }
        if chunked && send_body {
            send(&self.io, self.send_timeout, b"0\r\n\r\n").await?;
        }
        Ok(keep_alive && (!send_body || length.is_none_or(|n| n == sent)))
    }

    /// Closes the sending side, then reads and drops what the client still
    /// sends, for a while, so that the close does not reset the connection
    /// before the client has read the response.
    async fn linger(&mut self) {
        if self.io.shutdown().await.is_err() {
            return;
        }
        let drain = async {
            let mut dropped = 0;
            while dropped < LINGER_BYTES {
                self.buf.clear();
                match self.fill().await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => dropped += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Writes all of `data`. A write the socket takes at once needs no timer;
/// one that has to wait fails after `timeout` without progress (a client
/// that stopped reading).
async fn send(io: &TcpStream, timeout: Duration, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match io.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(timeout, io.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Parses a complete request head off the front of `buf`; `None` while it is
/// still incomplete.
fn parse_request(buf: &mut BytesMut, spans: &mut Vec<Span>) -> Result<Option<Head>, Reject> {
    const TOO_LARGE: Reject = Reject(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "the request head is too large",
        "request_header_too_large",
    );
    const MALFORMED: Reject = Reject(
        StatusCode::BAD_REQUEST,
        "the request is not valid HTTP/1.1",
        "invalid_request",
    );
    const BAD_HOST: Reject = Reject(
        StatusCode::BAD_REQUEST,
        "the request must have one valid host header",
        "invalid_request",
    );
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(TOO_LARGE),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_LARGE),
        Err(_) => return Err(MALFORMED),
    };
    if len > MAX_HEAD_BYTES {
        return Err(TOO_LARGE);
    }
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method =
        Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()).map_err(|_| MALFORMED)?;
    // Where the target and each header sit in `buf`: the parser's view
    // borrows it, and they become slices of it once it is split off.
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| {
        let at = s.as_ptr() as usize - base;
        (at, at + s.len())
    };
    let path = span(parsed.path.unwrap_or_default().as_bytes());
    spans.clear();
    spans.extend(
        parsed
            .headers
            .iter()
            .map(|h| (span(h.name.as_bytes()), span(h.value))),
    );
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path.0..path.1)).map_err(|_| MALFORMED)?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut framer = Framer::default();
    let mut expect_continue = false;
    let mut hosts = 0;
    for &((n0, n1), (v0, v1)) in spans.iter() {
        let name = HeaderName::from_bytes(&head[n0..n1]).map_err(|_| MALFORMED)?;
        let value = HeaderValue::from_maybe_shared(head.slice(v0..v1)).map_err(|_| MALFORMED)?;
        if name == header::HOST {
            hosts += 1;
            if !valid_host(value.as_bytes()) {
                return Err(BAD_HOST);
            }
        }
        framer.see(&name, &value).map_err(|e| match e {
            SendError::Malformed(m) => Reject(StatusCode::BAD_REQUEST, m, "invalid_request"),
            _ => MALFORMED,
        })?;
        if name == header::EXPECT {
            expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        }
        headers.append(name, value);
    }
    let framing = match framer.coding {
        None => Framing::Length(framer.length.unwrap_or(0)),
        // Transfer codings are HTTP/1.1; a 1.0 peer may not frame by them.
        Some(_) if version == Version::HTTP_10 => return Err(MALFORMED),
        Some(Coding::Unsupported) => {
            return Err(Reject(
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is supported",
                "unsupported_transfer_encoding",
            ))
        }
        Some(Coding::Invalid) => {
            return Err(Reject(
                StatusCode::BAD_REQUEST,
                "the transfer-encoding is not valid: it must be chunked, once",
                "invalid_request",
            ))
        }
        // Both framings on one request is the classic smuggling shape: a
        // peer that reads the length sees a different request boundary. The
        // RFC lets a server refuse it (RFC 9112 §6.3), which is safer than
        // reading by the coding and closing after.
        Some(Coding::Chunked) if framer.length.is_some() => {
            return Err(Reject(
                StatusCode::BAD_REQUEST,
                "the request has both transfer-encoding and content-length",
                "invalid_request",
            ))
        }
        Some(Coding::Chunked) => Framing::CHUNKED,
    };
    // RFC 9112 §3.2: an HTTP/1.1 request names its host exactly once, an
    // HTTP/1.0 one at most once.
    if hosts > 1 || (hosts == 0 && version != Version::HTTP_10) {
        return Err(BAD_HOST);
    }
    let mut keep_alive = framer.keeps_alive(version);
    let uri = match head.get(path.0) {
        Some(b'/') if method != Method::CONNECT => uri,
        Some(b'*') if method == Method::OPTIONS && path.1 - path.0 == 1 => uri,
        // Authority-form, for CONNECT only (which the handler refuses: the
        // gateway opens no tunnels). Bytes after it would be tunnel data.
        _ if method == Method::CONNECT => {
            if uri.scheme().is_some() || uri.authority().is_none() || !uri.path().is_empty() {
                return Err(MALFORMED);
            }
            keep_alive = false;
            uri
        }
        // Absolute-form: the target's authority wins over the Host header
        // (RFC 9112 §3.2.2), and the handler gets the origin form it routes by.
        _ => absolute_form(uri, &mut headers)?,
    };
    Ok(Some(Head {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// An absolute-form target (`http://host/path`) in origin form, its
/// authority put in the `Host` header. Only `http` and `https` are taken,
/// and no user info (RFC 9110 §4.2.4).
fn absolute_form(uri: Uri, headers: &mut HeaderMap) -> Result<Uri, Reject> {
    const BAD_TARGET: Reject = Reject(
        StatusCode::BAD_REQUEST,
        "the request target is not valid",
        "invalid_request",
    );
    let scheme = uri.scheme_str().ok_or(BAD_TARGET)?;
    let authority = uri.authority().ok_or(BAD_TARGET)?.as_str();
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        || authority.contains('@')
        || !valid_host(authority.as_bytes())
    {
        return Err(BAD_TARGET);
    }
    let host = HeaderValue::from_str(authority).map_err(|_| BAD_TARGET)?;
    headers.insert(header::HOST, host);
    Ok(match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => Uri::from(pq.clone()),
        _ => Uri::from_static("/"),
    })
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC
/// 3986 §3.2.2): an IP literal in brackets or a registered name (which
/// covers IPv4), and a port of digits. Empty is valid: it is what a client
/// sends for a target without an authority.
pub(crate) fn valid_host(value: &[u8]) -> bool {
    let port = match value.first() {
        Some(b'[') => {
            let Some(end) = value.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &value[1..end];
            if literal.is_empty()
                || !literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return false;
            }
            &value[end + 1..]
        }
        _ => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            let name = &value[..end];
            let mut i = 0;
            while i < name.len() {
                match name[i] {
                    b'%' if name
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        i += 3
                    }
                    b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => i += 1,
                    _ => return false,
                }
            }
            &value[end..]
        }
    };
    match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn push_hex(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The current time as an HTTP date, formatted once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// A socket with bytes already read from it put back in front, for hyper to
/// serve a connection that opened with the HTTP/2 preface.
pub struct Prefixed {
    pub read: Bytes,
    pub io: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let n = this.read.len().min(out.remaining());
            out.put_slice(&this.read[..n]);
            this.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, out)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::gen::{mutate, Outcome, Rng};

    fn parse(text: &str) -> Result<Option<Head>, u16> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_request(&mut buf, &mut Vec::new()).map_err(|Reject(s, ..)| s.as_u16())
    }

    #[test]
    fn heads_frame_their_bodies() {
        let h = parse("POST /v1/x?a=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path(), "/v1/x");
        assert_eq!(h.uri.query(), Some("a=1"));
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        assert_eq!(h.headers["host"], "a");

        let h = parse("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::CHUNKED);
        assert!(h.keep_alive);

        let h = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.version, Version::HTTP_10);
        assert!(!h.keep_alive);
        let h = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h =
            parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\ncontent-length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(h.expect_continue);

        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        assert_eq!(parse("GARBAGE\r\n\r\n").err(), Some(400));
        assert_eq!(
            parse("POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n").err(),
            Some(400)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n").err(),
            Some(400)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\ncontent-length: 3, 3\r\n\r\n").err(),
            Some(400)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n").err(),
            Some(501)
        );
        for te in ["gzip, chunked", "chunked, gzip", "chunked;q=1"] {
            let head = format!("POST / HTTP/1.1\r\ntransfer-encoding: {te}\r\n\r\n");
            assert_eq!(parse(&head).err(), Some(501), "{te}");
        }
        for te in [
            "chunked, chunked",
            "chunked\r\ntransfer-encoding: chunked",
            "",
            ",",
            "chunked\r\ncontent-length: 5",
        ] {
            let head = format!("POST / HTTP/1.1\r\ntransfer-encoding: {te}\r\n\r\n");
            assert_eq!(parse(&head).err(), Some(400), "{te}");
        }
        assert_eq!(
            parse("POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n").err(),
            Some(400)
        );
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(431)
        );
        let long = format!(
            "GET / HTTP/1.1\r\nx-big: {}\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(parse(&long).err(), Some(431));
    }

    #[test]
    fn hosts_and_targets() {
        for host in [
            "",
            "a",
            "a.b-c_d~e",
            "A:1",
            "a:",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "%41b",
            "!$&'()*+,;=",
        ] {
            assert!(valid_host(host.as_bytes()), "{host:?}");
        }
        for host in [
            "a b", "a@b", "a:b", "a:1:2", "[::1", "[]", "[::1]x", "[g::]", "a/b", "%4", "%zz",
            "a\tb", "é",
        ] {
            assert!(!valid_host(host.as_bytes()), "{host:?}");
        }
        let h = parse("GET http://Up:8/p?q HTTP/1.1\r\nHost: other\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.uri, "/p?q");
        assert_eq!(h.headers["host"], "Up:8");
        let h = parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.uri, "*");
        let h = parse("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        for head in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT http://a:443/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET mailto:a@b HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(parse(head).err(), Some(400), "{head:?}");
        }
    }

    #[test]
    fn hex_sizes() {
        for (n, s) in [(0, "0"), (10, "a"), (255, "ff"), (4096, "1000")] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(out, s.as_bytes());
        }
    }

    /// A well-formed request and the body it frames.
    fn well_formed(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
        let method = rng.pick(&["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);
        let target = rng.pick(&["/", "/v1/chat/completions", "/a?b=c", "http://h:1/x"]);
        let version = rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]);
        let mut wire = format!("{method} {target} {version}\r\nhost: h\r\n").into_bytes();
        for _ in 0..rng.below(4) {
            let name = rng.pick(&["x-a", "accept", "user-agent", "connection"]);
            let value = rng.pick(&["keep-alive", "v", "a b", "*/*", ""]);
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        const BODY: &[u8] = b"ab\r\n0 ;:\"\x00\xff";
        let body: Vec<u8> = (0..rng.below(48))
            .map(|_| BODY[rng.below(BODY.len())])
            .collect();
        if version == "HTTP/1.1" && rng.below(2) == 0 {
            wire.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = 1 + rng.below(rest.len());
                let ext = rng.pick(&["", ";a", " ; a=b", ";a=\"b c\""]);
                wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            let trailers = rng.pick(&["", "x-t: 1\r\n", "a: \r\nb:c\r\n"]);
            wire.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
        } else if !body.is_empty() || rng.below(2) == 0 {
            wire.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            wire.extend_from_slice(&body);
        } else {
            wire.extend_from_slice(b"\r\n");
            return (wire, Vec::new());
        }
        (wire, body)
    }

    /// Reads one request off `input` (see [`super::gen::frame`]).
    fn frame(input: &[u8], cuts: &[usize]) -> Outcome {
        let mut spans = Vec::new();
        crate::http1::gen::frame(input, cuts, |buf| {
            parse_request(buf, &mut spans)
                .map(|h| h.map(|h| h.framing))
                .map_err(drop)
        })
    }

    /// Random requests, well-formed and mutated, read whole and in random
    /// pieces: reading never panics or takes more than it was given, the
    /// way the bytes arrive never changes the verdict, and a well-formed
    /// request is framed exactly, so the request after it is left whole.
    #[test]
    fn request_framing_holds_for_random_input() {
        let next = b"GET /next HTTP/1.1\r\nhost: h\r\n\r\n";
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let start = std::time::Instant::now();
        for round in 0..20_000 {
            if start.elapsed() > Duration::from_secs(3) {
                break;
            }
            let (mut wire, body) = well_formed(&mut rng);
            let first = wire.len();
            wire.extend_from_slice(next);
            let mutated = round % 4 != 0;
            if mutated {
                mutate(&mut rng, &mut wire);
            }
            let whole = frame(&wire, &[]);
            let mut cuts: Vec<usize> = (0..rng.below(6))
                .map(|_| rng.below(wire.len() + 1))
                .collect();
            cuts.sort_unstable();
            let pieces = frame(&wire, &cuts);
            let shown = wire.escape_ascii().to_string();
            assert_eq!(whole, pieces, "{shown} cut at {cuts:?}");
            if let Outcome::Framed(took, framed) = &whole {
                assert!(*took <= wire.len() && framed.len() <= *took, "{shown}");
            }
            if !mutated {
                assert_eq!(whole, Outcome::Framed(first, body), "{shown}");
                assert_eq!(
                    frame(&wire[first..], &[]),
                    Outcome::Framed(next.len(), Vec::new())
                );
            }
        }
    }
}
