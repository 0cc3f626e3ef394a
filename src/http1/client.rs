//! Keep-alive HTTP/1.1 connections to a plain-TCP upstream, spoken to by the
//! request that holds them.
//!
//! A general client (hyper-util's pooled `Client`) runs every connection as a
//! task of its own and passes each request and response between that task and
//! the caller's through channels: a few task wake-ups per call, often across
//! worker threads. Here a call checks a connection out of the pool and does
//! the exchange itself, in the task that serves the client: it writes the
//! request (head and body in one `writev`), reads and parses the response
//! head ([`httparse`]), and then reads the body inside the response body
//! ([`PooledBody`]), framed by `Content-Length`, chunked coding or the end of
//! the connection (RFC 9112 §6.3). Header values are slices of the buffer
//! the head was read into, not copies. While a large request is still going
//! out the socket is read too, so an answer that comes early (a 413) is
//! returned rather than waited past. When the body has ended and the
//! connection may carry another request it goes back to the pool; a body
//! dropped early (the client left) closes its connection, as does any error.
//!
//! Responses are read as strictly as requests are in [`super::server`], with the
//! same code (`Framer`, the chunked decoder): a head of at most 256 KiB
//! (interim responses before it included) and 128 lines, whether it arrives
//! in pieces or whole; `Transfer-Encoding` only as `chunked`, once; one
//! number per `Content-Length` line; chunk lines ended by CRLF, with
//! extensions that follow their grammar and sum to 16 KiB at most over a
//! body; a trailer section of field lines bounded in bytes and count. A
//! response off these rules is an error (502 to the client) and its
//! connection is closed, rather than a body cut where the upstream did not
//! mean it.
//!
//! Idle connections are not read. A connection the upstream closed while it
//! sat idle, or on which it sent bytes no request asked for, is found at
//! checkout (a peek at its socket) and dropped, as is one whose answer came
//! with more bytes than it framed: such bytes would otherwise be read as the
//! next request's answer, and reach another client. (Bytes sent after the
//! next request went out cannot be told from its answer.) One
//! that fails as a request is written, before any of it went out, sends that
//! request again on a new connection.
//!
//! HTTPS and HTTP/2 upstreams use the general client (see `proxy::upstream`).

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use crossbeam_utils::CachePadded;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

pub use super::framing::SendError;
use super::framing::{poll_fill, Chunked, Decoded, Framer, Framing, MAX_HEADERS, MAX_HEAD_BYTES};
use crate::runtime::shard::SLOTS;

/// The idle connections to one upstream origin.
pub struct Pool {
    connector: HttpConnector,
    /// The origin (`http://host:port`) connections are made to.
    origin: Uri,
    /// One idle list per shard (by shard id, modulo the count): a shard takes
    /// and returns its connections under a lock no other shard uses, so the
    /// lock never waits. With one shared list the shards met on its lock at
    /// checkouts and checkins, a futex wait and wake each time.
    stripes: Box<[CachePadded<Mutex<Vec<Idle>>>]>,
    /// The most idle connections each shard keeps.
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
    /// The shard whose runtime the socket belongs to (see `crate::runtime::shard`).
    home: u32,
}

/// One connection, with the bytes read from it and not yet used.
struct Conn {
    io: TcpStream,
    read: BytesMut,
    /// The request head being written; kept to reuse its allocation.
    head: Vec<u8>,
    /// The first-byte time limit of the request in flight. One timer serves
    /// every request the connection carries: moving a registered timer's
    /// deadline later is one atomic update in tokio, where a timer per
    /// request costs an insert into the timer wheel and a removal (about 800
    /// instructions a request, `bench/instructions.sh`).
    limit: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            read: BytesMut::new(),
            head: Vec::with_capacity(1024),
            // Set for each request before it is sent.
            limit: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Reads what the socket holds onto the end of `read`; `Ok(0)` once the
    /// upstream has closed its side.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        poll_fill(&self.io, &mut self.read, cx)
    }

    /// Reads until a whole response head has arrived, or the first-byte
    /// limit has passed. What each read adds is parsed before the next, so
    /// a wake-up finds nothing unparsed (the buffer starts empty: a pooled
    /// connection is handed out only then).
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        head_only: bool,
    ) -> Poll<Result<Head, SendError>> {
        loop {
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(closed_early("it answered"))),
                Poll::Ready(Ok(_)) => match parse_head(&mut self.read, head_only) {
                    Ok(Some(head)) => return Poll::Ready(Ok(head)),
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => break,
            }
        }
        self.limit
            .as_mut()
            .poll(cx)
            .map(|()| Err(SendError::TimedOut))
    }

    /// Still open, with nothing unasked-for to read. The kernel is asked
    /// (a peek that does not wait), not the runtime's readiness flag: that
    /// flag is raised only when the runtime next polls its events, so bytes
    /// an upstream sent after its last answer could sit unseen in the socket
    /// while a request that came at once (the next one of a pipeline, say)
    /// takes the connection, and that request would get them as its answer.
    /// The cost is one `recvfrom` per checkout.
    fn reusable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(&self.io).peek(&mut probe),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }
}

impl Pool {
    pub fn new(
        connector: HttpConnector,
        origin: Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Pool {
        Pool {
            connector,
            origin,
            stripes: (0..SLOTS).map(|_| CachePadded::default()).collect(),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `req` (origin-form URI, `Host` set, no `Content-Length`) on a
    /// pooled connection, or a new one, and returns the response once its
    /// head has arrived, within `limit` of the call.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Bytes>,
        limit: Duration,
    ) -> Result<Response<PooledBody>, SendError> {
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(conn) = self.checkout() {
            match self.exchange(conn, &req, deadline).await {
                Err(Refused::Unsent) => {}
                Ok(resp) => return Ok(resp),
                Err(Refused::Failed(e)) => return Err(e),
            }
        }
        let conn = tokio::time::timeout_at(deadline, self.connect())
            .await
            .map_err(|_| SendError::TimedOut)??;
        match self.exchange(conn, &req, deadline).await {
            Ok(resp) => Ok(resp),
            Err(Refused::Unsent) => Err(SendError::Connect(
                "the connection closed before the request was sent".into(),
            )),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    async fn exchange(
        self: &Arc<Self>,
        mut conn: Conn,
        req: &Request<Bytes>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<PooledBody>, Refused> {
        conn.limit.as_mut().reset(deadline);
        encode_head(&mut conn.head, req);
        let body = req.body();
        let total = conn.head.len() + body.len();
        let mut written = 0;
        let head_only = req.method() == Method::HEAD;
        let result = poll_fn(|cx| {
            while written < total {
                let (head, body) = (&conn.head[..], &body[..]);
                let slices = if written < head.len() {
                    [IoSlice::new(&head[written..]), IoSlice::new(body)]
                } else {
                    [
                        IoSlice::new(&body[written - head.len()..]),
                        IoSlice::new(&[]),
                    ]
                };
                match Pin::new(&mut conn.io).poll_write_vectored(cx, &slices) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()))
                    }
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    // An upstream may answer before it has read the whole
                    // request (a 413, say) and stop reading.
                    Poll::Pending => return conn.poll_head(cx, head_only),
                }
            }
            conn.poll_head(cx, head_only)
        })
        .await;
        match result {
            Ok(head) => {
                let mut resp = Response::new(PooledBody {
                    framing: head.framing,
                    // Answered before the request was all sent: the rest of
                    // it would be read as the next request.
                    keep_alive: head.keep_alive && written == total,
                    conn: Some(conn),
                    pool: self.clone(),
                });
                *resp.status_mut() = head.status;
                *resp.version_mut() = head.version;
                *resp.headers_mut() = head.headers;
                Ok(resp)
            }
            // Nothing went out: the request may go again elsewhere.
            Err(SendError::Io(_)) if written == 0 => Err(Refused::Unsent),
            Err(e) => Err(Refused::Failed(e)),
        }
    }

    /// The most recently used idle connection of this shard that is still
    /// open. Another shard's connections stay: their sockets wake that
    /// shard's thread, not this one.
    fn checkout(&self) -> Option<Conn> {
        let home = crate::runtime::shard::current();
        let mut idle = self.stripe(home);
        while let Some(at) = idle.iter().rposition(|i| i.home == home) {
            let Idle {
                mut conn, since, ..
            } = idle.remove(at);
            if since.elapsed() < self.idle_timeout && conn.reusable() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, conn: Conn) {
        if self.max_idle == 0 || !conn.read.is_empty() {
            return;
        }
        let home = crate::runtime::shard::current();
        let mut idle = self.stripe(home);
        // Stamped under the lock, entries stay in `since` order (checkout
        // removes without reordering), so the expired ones are a prefix.
        let now = Instant::now();
        let expired = idle.partition_point(|i| now.duration_since(i.since) >= self.idle_timeout);
        idle.drain(..expired);
        if idle.len() >= self.max_idle {
            // The oldest goes: the newest is the likeliest to still be open.
            idle.remove(0);
        }
        idle.push(Idle {
            conn,
            since: now,
            home,
        });
    }

    fn stripe(&self, home: u32) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        let stripe = &self.stripes[home as usize % SLOTS];
        stripe.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        Ok(Conn::new(io.into_inner()))
    }
}

/// The upstream closed the connection before `what`.
fn closed_early(what: &str) -> SendError {
    let message = format!("the upstream closed the connection before {what}");
    SendError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, message))
}

enum Refused {
    /// The connection failed before any of the request was written; it may go again.
    Unsent,
    Failed(SendError),
}

/// Writes the request line and headers, with the body's length, into `out`.
fn encode_head(out: &mut Vec<u8>, req: &Request<Bytes>) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A body always has its length; so does a request whose method expects
    // one, when it is empty (RFC 9110 §8.6).
    let len = req.body().len();
    let expects_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if len > 0 || expects_body {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head and how its body is framed.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a complete response head off the front of `buf`, skipping interim
/// (1xx) responses; `None` while the head is still incomplete.
fn parse_head(buf: &mut BytesMut, head_only: bool) -> Result<Option<Head>, SendError> {
    // Room for the usual head; a head with more lines is parsed again with
    // room for the most allowed.
    match parse_head_with::<48>(buf, head_only) {
        Err(SendError::Malformed(TOO_MANY_HEADERS)) => {
            parse_head_with::<MAX_HEADERS>(buf, head_only)
        }
        parsed => parsed,
    }
}

const TOO_MANY_HEADERS: &str = "the response has too many header lines";

fn parse_head_with<const N: usize>(
    buf: &mut BytesMut,
    head_only: bool,
) -> Result<Option<Head>, SendError> {
    const TOO_LARGE: SendError = SendError::Malformed("the response head is too large");
    // Interim responses skipped on the way, which count toward the limit.
    let mut skipped = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; N];
        let mut parsed = httparse::Response::new(&mut headers);
        let len = match parsed.parse(buf) {
            // The limit holds for a head that arrived whole, too: one read
            // can bring in much more than the limit once the buffer has grown.
            Ok(httparse::Status::Complete(len)) if skipped + len > MAX_HEAD_BYTES => {
                return Err(TOO_LARGE)
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if skipped + buf.len() > MAX_HEAD_BYTES => {
                return Err(TOO_LARGE)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(SendError::Malformed(TOO_MANY_HEADERS))
            }
            Err(_) => {
                return Err(SendError::Malformed(
                    "the response head is not valid HTTP/1.1",
                ))
            }
        };
        let code = parsed.code.unwrap_or_default();
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(SendError::Malformed("the upstream switched protocols"));
            }
            buf.advance(len);
            skipped += len;
            continue;
        }
        let status = StatusCode::from_u16(code)
            .map_err(|_| SendError::Malformed("the response status is not valid"))?;
        // Where each header's name and value sit in `buf` (on the stack, like
        // the parser's array): the parser's view borrows `buf`, and the values
        // become slices of it once it is split off.
        let base = buf.as_ptr() as usize;
        let mut spans = [(0usize, 0usize, 0usize, 0usize); N];
        let count = parsed.headers.len();
        for (span, h) in spans.iter_mut().zip(parsed.headers.iter()) {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            *span = (name, name + h.name.len(), value, value + h.value.len());
        }
        let head = buf.split_to(len).freeze();
        // Room for the two headers the gateway adds to every response.
        let mut headers = HeaderMap::with_capacity(count + 2);
        // The headers that frame the body and say whether the connection
        // stays open are read as they go by: comparing standard names is
        // cheap, where looking them up afterwards hashes each name again.
        let mut framing = Framer::default();
        for &(n0, n1, v0, v1) in &spans[..count] {
            let name = HeaderName::from_bytes(&head[n0..n1])
                .map_err(|_| SendError::Malformed("a header name is not valid"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(v0..v1))
                .map_err(|_| SendError::Malformed("a header value is not valid"))?;
            framing.see(&name, &value)?;
            headers.append(name, value);
        }
        let keep_alive = framing.keeps_alive(version);
        if framing.coding.is_some() && framing.length.is_some() {
            // Transfer-Encoding overrides Content-Length, which a proxy must
            // then not pass on (RFC 9112 §6.3): the body's length is not that.
            headers.remove(header::CONTENT_LENGTH);
        }
        let framing = framing.framing(status, head_only)?;
        return Ok(Some(Head {
            status,
            version,
            headers,
            keep_alive: keep_alive && !matches!(framing, Framing::UntilClose),
            framing,
        }));
    }
}

/// A response body read from its connection by whoever polls it; the
/// connection goes back to the pool when the body has ended.
pub struct PooledBody {
    framing: Framing,
    keep_alive: bool,
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl PooledBody {
    /// The body has ended: the connection goes back to the pool if the
    /// response allows it.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                self.pool.checkin(conn);
            }
        }
    }

    fn fail(&mut self, e: SendError) -> Poll<Option<Result<Frame<Bytes>, SendError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = SendError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SendError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = &mut this.conn else {
                return Poll::Ready(None);
            };
            match this.framing.decode(&mut conn.read) {
                Ok(Decoded::Data(data)) => {
                    if this.is_end_stream() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::More) => {}
                Err(e) => return this.fail(e),
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) if this.framing.ends_at_close() => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return this.fail(closed_early("the body ended")),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(e.into()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
            || matches!(
                self.framing,
                Framing::Length(0) | Framing::Chunked(Chunked::Done, _)
            )
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            _ if self.conn.is_none() => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::gen::{mutate, Outcome, Rng};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A raw HTTP/1.1 server that answers `ok` to each request it reads and,
    /// with `close_after_one`, closes every connection after its first answer
    /// without saying so. Returns its origin and the count of accepted connections.
    async fn server(close_after_one: bool) -> (Uri, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let n = match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(answer).await.is_err() {
                                return;
                            }
                            if close_after_one {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (origin.parse().unwrap(), accepted)
    }

    fn pool(origin: Uri) -> Arc<Pool> {
        Arc::new(Pool::new(
            HttpConnector::new(),
            origin,
            4,
            Duration::from_secs(30),
        ))
    }

    fn get() -> Request<Bytes> {
        Request::builder()
            .uri("/x")
            .header("host", "test")
            .body(Bytes::new())
            .unwrap()
    }

    async fn body(resp: Response<PooledBody>) -> Bytes {
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn reuses_a_connection_once_its_body_has_ended() {
        let (origin, accepted) = server(false).await;
        let pool = pool(origin);
        for _ in 0..3 {
            let resp = pool.send(get(), Duration::from_secs(30)).await.unwrap();
            assert_eq!(body(resp).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn replaces_a_connection_the_upstream_closed_while_idle() {
        let (origin, accepted) = server(true).await;
        let pool = pool(origin);
        for _ in 0..3 {
            let resp = pool.send(get(), Duration::from_secs(30)).await.unwrap();
            assert_eq!(body(resp).await, "ok");
            // Let the close reach this side before the next checkout.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_body_dropped_early_closes_its_connection() {
        let (origin, accepted) = server(false).await;
        let pool = pool(origin);
        let resp = pool.send(get(), Duration::from_secs(30)).await.unwrap();
        drop(resp);
        let resp = pool.send(get(), Duration::from_secs(30)).await.unwrap();
        assert_eq!(body(resp).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin: Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(listener);
        match pool(origin).send(get(), Duration::from_secs(30)).await {
            Err(SendError::Connect(_)) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a response from a closed port"),
        }
    }

    /// A raw server that answers the requests on each connection with the
    /// given answers in turn (each written in pieces of `piece` bytes with a
    /// pause between, so the client sees them across several reads), then
    /// closes it. Each request it reads (head and body, by its
    /// content-length) is sent on the returned channel.
    async fn scripted(
        answers: Vec<Vec<u8>>,
        piece: usize,
    ) -> (
        Uri,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let (answers, tx) = (answers.clone(), tx.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    for answer in answers {
                        let request = loop {
                            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                                let len: usize = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length: "))
                                    .map_or(0, |v| v.trim().parse().unwrap());
                                if seen.len() >= end + 4 + len {
                                    break seen.drain(..end + 4 + len).collect::<Vec<u8>>();
                                }
                            }
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        };
                        let _ = tx.send(request);
                        for part in answer.chunks(piece.max(1)) {
                            if sock.write_all(part).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                });
            }
        });
        (origin.parse().unwrap(), accepted, rx)
    }

    /// A listener on a free port, and its origin.
    async fn listen() -> (TcpListener, Uri) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        (listener, origin.parse().unwrap())
    }

    /// Sends `req` and reads the whole answer: status, headers and body, or
    /// the error that cut it short.
    async fn fetch(
        pool: &Arc<Pool>,
        req: Request<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), SendError> {
        let resp = pool.send(req, Duration::from_secs(5)).await?;
        let (parts, mut body) = resp.into_parts();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(&frame?.into_data().unwrap());
        }
        assert!(body.is_end_stream());
        Ok((parts.status, parts.headers, Bytes::from(out)))
    }

    fn post(body: &'static [u8]) -> Request<Bytes> {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/chat/completions?x=1")
            .header("host", "test")
            .header("content-type", "application/json")
            .body(Bytes::from_static(body))
            .unwrap()
    }

    #[tokio::test]
    async fn writes_the_request_with_its_length_and_reads_bodies_of_every_framing() {
        let answers = vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-up: a\r\nx-up: b\r\ncontent-length: 11\r\n\r\n{\"ok\":true}".to_vec(),
            // Chunked, with extensions and a trailer.
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n1 ; q=\"a b\"\r\n \r\n6\r\nworld!\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
            // Chunked coding wins over a length sent beside it.
            b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
            // An interim response first; an empty 204.
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            // Framed by the end of the connection.
            b"HTTP/1.1 200 OK\r\n\r\nto the end".to_vec(),
        ];
        let (origin, accepted, mut seen) = scripted(answers, 7).await;
        let pool = pool(origin);
        let (status, headers, body) = fetch(&pool, post(br#"{"a":1}"#)).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"ok":true}"#);
        let ups: Vec<_> = headers.get_all("x-up").iter().collect();
        assert_eq!(ups, ["a", "b"]);
        let request = String::from_utf8(seen.recv().await.unwrap()).unwrap();
        assert!(
            request.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\ncontent-type: application/json\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\ncontent-length: 7\r\n\r\n{\"a\":1}"),
            "{request}"
        );

        let (_, _, body) = fetch(&pool, get()).await.unwrap();
        assert_eq!(body, "hello world!");
        let request = String::from_utf8(seen.recv().await.unwrap()).unwrap();
        assert!(
            !request.contains("content-length"),
            "a GET without a body: {request}"
        );

        let (_, headers, body) = fetch(&pool, get()).await.unwrap();
        assert_eq!(body, "abc");
        assert!(headers.get("content-length").is_none());
        seen.recv().await.unwrap();

        let (status, _, body) = fetch(&pool, post(b"")).await.unwrap();
        assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
        let request = String::from_utf8(seen.recv().await.unwrap()).unwrap();
        assert!(request.contains("\r\ncontent-length: 0\r\n"), "{request}");

        let (_, _, body) = fetch(&pool, get()).await.unwrap();
        assert_eq!(body, "to the end");
        // Three answers on one connection; the last one ended it.
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert!(pool.checkout().is_none());
    }

    #[tokio::test]
    async fn a_large_request_body_arrives_whole() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        let (origin, _, mut seen) = scripted(vec![answer], 1024).await;
        let big: &'static [u8] = Box::leak(vec![b'x'; 3 * 1024 * 1024].into_boxed_slice());
        let (_, _, body) = fetch(&pool(origin), post(big)).await.unwrap();
        assert_eq!(body, "ok");
        let request = seen.recv().await.unwrap();
        assert!(request.ends_with(big));
    }

    #[tokio::test]
    async fn responses_that_end_the_connection_are_not_reused() {
        let answers = [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
            // More than was asked for: the connection cannot be trusted.
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
        ];
        for answer in answers {
            let (origin, accepted, _seen) = scripted(vec![answer.to_vec(); 2], 64).await;
            let pool = pool(origin);
            for _ in 0..2 {
                let (_, _, body) = fetch(&pool, get()).await.unwrap();
                assert_eq!(body, "ok");
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                2,
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
        // HTTP/1.0 that asks to stay open, and a HEAD's length without a body, are reused.
        let answers = vec![
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        ];
        let (origin, accepted, _seen) = scripted(answers, 64).await;
        let pool = pool(origin);
        assert_eq!(fetch(&pool, get()).await.unwrap().2, "ok");
        let mut head = get();
        *head.method_mut() = Method::HEAD;
        let (_, headers, body) = fetch(&pool, head).await.unwrap();
        assert_eq!(
            (headers["content-length"].as_bytes(), body.len()),
            (&b"5000"[..], 0)
        );
        assert_eq!(fetch(&pool, get()).await.unwrap().2, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn broken_answers_are_errors_and_close_the_connection() {
        let cases: [(&[u8], &str); 6] = [
            (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed"),
            (b"garbage\r\n\r\n", "malformed"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
                "conflicting",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
                "content-length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokay\r\n",
                "longer than its size",
            ),
        ];
        for (answer, expected) in cases {
            let (origin, _, _seen) = scripted(vec![answer.to_vec()], 64).await;
            let pool = pool(origin);
            let err = fetch(&pool, get()).await.unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{}: {err}",
                String::from_utf8_lossy(answer)
            );
            assert!(pool.checkout().is_none());
        }
        // Cut short: the connection closes inside the head, or inside a body.
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
        ] {
            let (origin, _, _seen) = scripted(vec![answer.to_vec()], 64).await;
            match fetch(&pool(origin), get()).await {
                Err(SendError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(answer)),
            }
        }
    }

    /// Bytes the upstream sent after an answer, which have reached the
    /// socket but not yet the runtime's notice (the runtime has not polled
    /// its events since: here the task blocks its thread; in the gateway, the
    /// next request of a pipeline comes at once), are found at checkout: the
    /// connection is closed, and the next request gets its own answer.
    #[tokio::test]
    async fn unasked_bytes_that_arrived_unnoticed_are_found_at_checkout() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin: Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (sent, unasked_sent) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (n, sock) in listener.incoming().enumerate() {
                let mut sock = sock.unwrap();
                let sent = sent.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let got = sock.read(&mut buf).unwrap();
                        seen.extend_from_slice(&buf[..got]);
                    }
                    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{n}{n}");
                    sock.write_all(answer.as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale")
                        .unwrap();
                    sent.send(()).unwrap();
                    let _ = sock.read(&mut buf);
                });
            }
        });
        let pool = pool(origin);
        let resp = pool.send(get(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(body(resp).await, "00");
        // Blocks the runtime's only thread, so its events are not polled.
        unasked_sent.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let resp = pool.send(get(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(body(resp).await, "11", "an answer meant for no one");
    }

    #[tokio::test]
    async fn an_answer_that_comes_before_the_whole_request_is_read_is_returned() {
        let (listener, origin) = listen().await;
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            let answer = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!";
            sock.write_all(answer).await.unwrap();
            // Reads no more of the request, and keeps the connection open.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let big: &'static [u8] = Box::leak(vec![b'x'; 32 * 1024 * 1024].into_boxed_slice());
        let pool = pool(origin);
        let (status, _, body) = fetch(&pool, post(big)).await.unwrap();
        assert_eq!(
            (status, &body[..]),
            (StatusCode::PAYLOAD_TOO_LARGE, &b"big!"[..])
        );
        assert!(
            pool.checkout().is_none(),
            "half a request is still in the connection"
        );
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out() {
        let (listener, origin) = listen().await;
        let held = tokio::spawn(async move { listener.accept().await });
        match pool(origin).send(get(), Duration::from_millis(200)).await {
            Err(SendError::TimedOut) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an answer from a silent upstream"),
        }
        drop(held);
    }

    /// The head limit holds for a head that is complete in the buffer, not
    /// only for one still arriving.
    #[test]
    fn a_whole_response_head_over_the_limit_is_refused() {
        let head = |n: usize| {
            let line = format!("x-big: {}\r\n", "a".repeat(n / 100));
            format!(
                "HTTP/1.1 200 OK\r\n{}content-length: 0\r\n\r\n",
                line.repeat(100)
            )
        };
        let mut buf = BytesMut::from(head(MAX_HEAD_BYTES - 2048).as_bytes());
        assert!(parse_head(&mut buf, false).unwrap().is_some());
        let mut buf = BytesMut::from(head(MAX_HEAD_BYTES + 1024).as_bytes());
        match parse_head(&mut buf, false) {
            Err(SendError::Malformed(m)) => assert!(m.contains("too large"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a head over the limit was taken"),
        }
        // Interim responses count toward it too.
        let interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_HEAD_BYTES / 25 + 1);
        let mut buf = BytesMut::from(format!("{interim}{}", head(100)).as_bytes());
        assert!(parse_head(&mut buf, false).is_err());
    }

    /// A well-formed response, the body it frames, and whether it ends
    /// only with the connection.
    fn well_formed(rng: &mut Rng) -> (Vec<u8>, Vec<u8>, bool) {
        let mut wire = Vec::new();
        if rng.below(4) == 0 {
            wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let status = rng.pick(&[
            "200 OK",
            "201 Created",
            "404 Not Found",
            "500 Oops",
            "204 No Content",
        ]);
        let version = rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]);
        wire.extend_from_slice(format!("{version} {status}\r\n").as_bytes());
        for _ in 0..rng.below(4) {
            let name = rng.pick(&["x-a", "content-type", "server", "connection"]);
            let value = rng.pick(&["keep-alive", "v", "a b", "text/plain", ""]);
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        const BODY: &[u8] = b"ab\r\n0 ;:\"\x00\xffHTTP/1.1";
        let mut body: Vec<u8> = (0..rng.below(48))
            .map(|_| BODY[rng.below(BODY.len())])
            .collect();
        if status.starts_with("204") {
            body.clear();
        }
        match rng.below(3) {
            0 if version == "HTTP/1.1" => {
                wire.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                let mut rest = &body[..];
                while !rest.is_empty() {
                    let n = 1 + rng.below(rest.len());
                    let ext = rng.pick(&["", ";a", " ; a=b", ";a=\"b c\""]);
                    wire.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
                    wire.extend_from_slice(&rest[..n]);
                    wire.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                if !status.starts_with("204") {
                    let trailers = rng.pick(&["", "x-t: 1\r\n"]);
                    wire.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
                }
            }
            1 if !status.starts_with("204") => {
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(&body);
                return (wire, body, true);
            }
            _ => {
                wire.extend_from_slice(
                    format!("content-length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                wire.extend_from_slice(&body);
            }
        }
        (wire, body, false)
    }

    /// Reads one response off `input` (see [`super::gen::frame`]).
    fn frame(input: &[u8], cuts: &[usize]) -> Outcome {
        crate::http1::gen::frame(input, cuts, |buf| {
            parse_head(buf, false)
                .map(|h| h.map(|h| h.framing))
                .map_err(drop)
        })
    }

    /// Random responses, well-formed and mutated, read whole and in random
    /// pieces: reading never panics or takes more than it was given, the
    /// way the bytes arrive never changes the verdict, and a well-formed
    /// response is framed exactly, leaving the bytes after it unread.
    #[test]
    fn response_framing_holds_for_random_input() {
        let after = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let mut rng = Rng(0x5eed_1234_abcd_0002);
        let start = Instant::now();
        for round in 0..20_000 {
            if start.elapsed() > Duration::from_secs(3) {
                break;
            }
            let (mut wire, body, until_close) = well_formed(&mut rng);
            let first = wire.len();
            if !until_close {
                wire.extend_from_slice(after);
            }
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
            }
        }
    }
}
