//! Closing HTTP/1 connections that send no request: an idle keep-alive
//! connection, or one trickling its request headers, is closed once a whole
//! `server.header_timeout_secs` has passed with no request in flight and none
//! started.
//!
//! Hyper can do this itself (its header-read timeout), but it arms a timer
//! for every request, which costs a timer insert and removal per request. This
//! watch wakes once per period per connection, and a request only counts
//! itself in and out with atomic adds on its connection's [`Activity`].
//! Measured with `bench/instructions.sh`: hyper's timer cost 1.5k instructions
//! per request, this watch 0.7k (most of it polling the watch's timer beside
//! the connection each time the connection's task wakes), so 0.76k fewer.
//!
//! A connection is closed between one and two periods after its last request
//! ended, and one period after it was accepted if it never completed a
//! request head. HTTP/2 connections, whose streams and pings hyper manages,
//! are left alone once a request shows they are HTTP/2.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};

use super::body::{BoxError, ProxyBody};

/// The requests of one client connection, as its watch sees them.
#[derive(Default)]
pub struct Activity {
    /// Requests whose response has not been sent (or dropped) yet.
    busy: AtomicU32,
    /// Requests started since the connection opened.
    started: AtomicU64,
    http2: AtomicBool,
}

impl Activity {
    /// Counts a request in until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, version: http::Version) -> Busy {
        if version == http::Version::HTTP_2 {
            self.http2.store(true, Relaxed);
        }
        self.started.fetch_add(1, Relaxed);
        self.busy.fetch_add(1, Relaxed);
        Busy(self.clone())
    }

    /// Resolves when the connection has gone a whole `period` with no request
    /// in flight and none started; never for an HTTP/2 connection.
    pub async fn idle(&self, period: Duration) {
        // Accepting counts as a look that found the connection idle.
        let mut last_idle = Some(0);
        loop {
            tokio::time::sleep(period).await;
            if self.http2.load(Relaxed) {
                return std::future::pending().await;
            }
            let started = self.started.load(Relaxed);
            let idle = self.busy.load(Relaxed) == 0;
            if idle && last_idle == Some(started) {
                return;
            }
            last_idle = idle.then_some(started);
        }
    }
}

/// A request in flight on its connection.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

/// A response body that keeps its request counted in until hyper has sent
/// it (or dropped it: the client went away).
pub struct Watched {
    body: ProxyBody,
    _busy: Busy,
}

impl Watched {
    pub fn new(body: ProxyBody, busy: Busy) -> Watched {
        Watched { body, _busy: busy }
    }
}

impl Body for Watched {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watch closes a connection only after a full period without any
    /// request, and never while a response is still being sent.
    #[tokio::test(start_paused = true)]
    async fn idle_only_after_a_whole_quiet_period() {
        let period = Duration::from_secs(30);
        let activity = Arc::new(Activity::default());
        let start = tokio::time::Instant::now();
        // Never a request: one period.
        activity.idle(period).await;
        assert_eq!(start.elapsed(), period);

        // A response in flight for three periods, then quiet: closed between
        // one and two periods after it ended.
        let activity = Arc::new(Activity::default());
        let busy = activity.enter(http::Version::HTTP_11);
        let watch = {
            let a = activity.clone();
            tokio::spawn(async move { a.idle(period).await })
        };
        tokio::time::sleep(period * 3 + Duration::from_secs(1)).await;
        assert!(
            !watch.is_finished(),
            "closed while a response was in flight"
        );
        drop(busy);
        let ended = tokio::time::Instant::now();
        watch.await.unwrap();
        let quiet = ended.elapsed();
        assert!(quiet >= period && quiet <= period * 2, "{quiet:?}");

        // HTTP/2: left to hyper.
        let activity = Arc::new(Activity::default());
        drop(activity.enter(http::Version::HTTP_2));
        let h2 = tokio::time::timeout(period * 10, activity.idle(period)).await;
        assert!(h2.is_err(), "an HTTP/2 connection was closed as idle");
    }
}
