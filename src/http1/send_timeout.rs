//! The send timeout for the connections hyper serves (h2c, and every TLS
//! connection): a client that takes none of the bytes written to it for
//! `server.send_timeout_secs` has its connection fail, as the gateway's own
//! HTTP/1.1 server does for plain TCP (`server::Conn::send`).
//!
//! [`SendTimed`] wraps the connection's socket. Writes and flushes the
//! socket takes at once arm nothing. One that has to wait starts a timer,
//! which only a flush that completes drops: that is when every byte written
//! so far (for TLS, also what the TLS layer buffered) has reached the
//! kernel. A write taken whole is no proof that the client reads, since the
//! TLS layer takes bytes into its own buffer while the socket is full. When
//! the timer fires, the next write or flush fails with `TimedOut`: hyper ends
//! the connection, which drops its requests, so their upstream calls are
//! cancelled and recorded as `client_closed`.
//!
//! This sees only the socket. An HTTP/2 client that keeps reading the socket
//! but grants no flow-control window stalls its own stream, not the socket,
//! and is not caught here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A socket whose writes fail once one has waited `timeout` with no flush
/// completing since.
pub struct SendTimed<T> {
    io: T,
    timeout: Duration,
    /// Armed by a write or flush that had to wait, until a flush completes.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> SendTimed<T> {
    pub fn new(io: T, timeout: Duration) -> SendTimed<T> {
        SendTimed {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Passes a write's or flush's outcome on. `flushed`: everything written
    /// has reached the socket, which ends any wait. A call that must wait
    /// arms the timer; while it is armed, past the timeout, the outcome is
    /// an error.
    fn timed<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<R>>,
        flushed: bool,
    ) -> Poll<io::Result<R>> {
        if flushed {
            self.stalled = None;
            return r;
        }
        if r.is_ready() && self.stalled.is_none() {
            return r;
        }
        let timeout = self.timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took none of the response within server.send_timeout_secs",
            ))),
            Poll::Pending => r,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        this.timed(cx, r, false)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.timed(cx, r, false)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        let flushed = r.is_ready();
        this.timed(cx, r, flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        let flushed = r.is_ready();
        this.timed(cx, r, flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Writes into a pipe nobody reads fail after the timeout; writes the
    /// other end keeps taking do not.
    #[tokio::test]
    async fn a_write_nobody_takes_fails_after_the_timeout() {
        let (near, far) = tokio::io::duplex(1024);
        let mut io = SendTimed::new(near, Duration::from_millis(200));
        io.write_all(&[1u8; 1024]).await.unwrap();
        let start = std::time::Instant::now();
        let err = io.write_all(&[2u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(start.elapsed() < Duration::from_secs(5));

        // A reader that keeps up: each flush completes within the timeout,
        // so nothing fails though the whole transfer takes longer.
        let (near, mut far2) = tokio::io::duplex(64);
        let mut io = SendTimed::new(near, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut n = 0;
            while n < 64 * 12 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                n += tokio::io::AsyncReadExt::read(&mut far2, &mut buf)
                    .await
                    .unwrap();
            }
            n
        });
        for _ in 0..12 {
            io.write_all(&[3u8; 64]).await.unwrap();
            io.flush().await.unwrap();
        }
        assert_eq!(reader.await.unwrap(), 64 * 12);
        drop(far);
    }
}
