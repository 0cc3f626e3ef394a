//! Keep-alive HTTP/1.1 connections to a plain-TCP upstream, each driven by the
//! request that holds it.
//!
//! A general client (hyper-util's pooled `Client`) runs every connection as a
//! task of its own and passes each request and response between that task and
//! the caller's through channels: a few task wake-ups per call, often across
//! worker threads. Here a call checks a connection out of the pool and polls it
//! itself, first while waiting for the response head and then inside the
//! response body ([`PooledBody`]), so the whole exchange runs in the task that
//! serves the client. When the body has ended and the connection is ready for
//! another request it goes back to the pool; a body dropped early (the client
//! left) closes its connection, as does any error.
//!
//! Idle connections are not polled. A connection the upstream closed while it
//! sat idle is found at checkout (polling it then sees the end of the stream)
//! and dropped; one that closes just as a request is sent refuses that request
//! unsent, and the request goes again on a new connection.
//!
//! HTTPS and HTTP/2 upstreams use the general client (see `upstream.rs`).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Connection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error(transparent)]
    Protocol(#[from] hyper::Error),
    #[error("{0}")]
    Other(String),
    /// No response head within the first-byte time limit.
    #[error("no response within the time limit")]
    TimedOut,
}

/// The idle connections to one upstream origin.
pub struct Pool {
    connector: HttpConnector,
    /// The origin (`http://host:port`) connections are made to.
    origin: Uri,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
    /// The shard whose runtime the socket belongs to (see `super::shard`).
    home: u32,
}

/// One connection: the handle requests are sent through and the state
/// machine that does the reading and writing, polled by its holder.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Pin<Box<Connection>>,
    /// The driver has finished (closed or failed) and must not be polled again.
    ended: bool,
    /// The first-byte time limit of the request in flight. One timer serves
    /// every request the connection carries: moving a registered timer's
    /// deadline later is one atomic update in tokio, where a timer per
    /// request costs an insert into the timer wheel and a removal (about 800
    /// instructions a request, `bench/instructions.sh`).
    limit: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    /// Polls the driver unless it has ended; true once it has.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.ended {
            if let Poll::Ready(result) = self.driver.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream connection failed");
                }
                self.ended = true;
            }
        }
        self.ended
    }

    /// Still open and waiting for a request.
    fn reusable(&mut self) -> bool {
        !self.drive(&mut Context::from_waker(Waker::noop())) && self.sender.is_ready()
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
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) on a pooled connection, or a
    /// new one, and returns the response once its head has arrived, within
    /// `limit` of the call.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
        limit: Duration,
    ) -> Result<Response<PooledBody>, SendError> {
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(conn) = self.checkout() {
            match self.exchange(conn, req, deadline).await {
                Ok(resp) => return Ok(resp),
                Err(Refused::Unsent(r)) => req = *r,
                Err(Refused::Failed(e)) => return Err(e),
            }
        }
        let conn = tokio::time::timeout_at(deadline, self.connect())
            .await
            .map_err(|_| SendError::TimedOut)??;
        match self.exchange(conn, req, deadline).await {
            Ok(resp) => Ok(resp),
            Err(Refused::Unsent(_)) => Err(SendError::Connect(
                "the connection closed before the request was sent".into(),
            )),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    async fn exchange(
        self: &Arc<Self>,
        mut conn: Conn,
        req: Request<Full<Bytes>>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<PooledBody>, Refused> {
        conn.limit.as_mut().reset(deadline);
        let mut response = std::pin::pin!(conn.sender.try_send_request(req));
        let result = poll_fn(|cx| {
            conn.drive(cx);
            if let Poll::Ready(r) = response.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            conn.limit.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match result {
            Some(Ok(resp)) => Ok(resp.map(|body| PooledBody {
                inner: body,
                conn: Some(conn),
                pool: self.clone(),
            })),
            Some(Err(mut e)) => match e.take_message() {
                Some(req) => Err(Refused::Unsent(Box::new(req))),
                None => Err(Refused::Failed(e.into_error().into())),
            },
            // The connection goes with the call: it may still answer.
            None => Err(Refused::Failed(SendError::TimedOut)),
        }
    }

    /// The most recently used idle connection of this shard that is still
    /// open. Another shard's connections stay: their sockets wake that
    /// shard's thread, not this one.
    fn checkout(&self) -> Option<Conn> {
        let home = super::shard::current();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
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

    fn checkin(&self, mut conn: Conn) {
        if self.max_idle == 0 || !conn.reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
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
            home: super::shard::current(),
        });
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let (sender, driver) = http1::handshake(io).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
            ended: false,
            // Set for each request before it is sent.
            limit: Box::pin(tokio::time::sleep(Duration::ZERO)),
        })
    }
}

enum Refused {
    /// The connection closed before the request was written; it may go again.
    Unsent(Box<Request<Full<Bytes>>>),
    Failed(SendError),
}

/// A response body that drives its connection, and returns the connection to
/// the pool when the body has ended.
pub struct PooledBody {
    inner: Incoming,
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut result = Pin::new(&mut this.inner).poll_frame(cx);
        if result.is_pending() {
            // The body's bytes come from the connection: read, then look again.
            if let Some(conn) = &mut this.conn {
                conn.drive(cx);
                result = Pin::new(&mut this.inner).poll_frame(cx);
            }
        }
        if let Poll::Ready(None) = result {
            if let Some(mut conn) = this.conn.take() {
                // One more turn lets the connection finish the exchange and
                // ask for the next request.
                conn.drive(cx);
                this.pool.checkin(conn);
            }
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn get() -> Request<Full<Bytes>> {
        Request::builder()
            .uri("/x")
            .header("host", "test")
            .body(Full::new(Bytes::new()))
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
}
