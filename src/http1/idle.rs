//! Closing HTTP/1 connections that send no request: an idle keep-alive
//! connection, or one trickling its request headers, is closed once a whole
//! `server.header_timeout_secs` has passed with no request in flight and none
//! started.
//!
//! Hyper can do this itself (its header-read timeout), but it arms a timer
//! for every request, which costs a timer insert and removal per request. This
//! watch wakes once per period per connection, and a request only counts
//! itself in and out with atomic adds on its connection's [`Activity`].
//! Measured with `bench/instructions.sh` (serving threads): 1.3k fewer
//! instructions per request than hyper's timer.
//!
//! A connection is closed between one and two periods after its last request
//! ended, and one period after it was accepted if it never completed a
//! request head. HTTP/2 connections, whose streams and pings hyper manages,
//! are left alone once a request shows they are HTTP/2.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};

use super::body::{BoxError, ResponseBody};

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

    /// One look at the connection, a period after the last: whether it has
    /// gone the whole period with no request in flight and none started.
    /// `last_idle` carries what the previous look saw.
    fn quiet_since(&self, last_idle: &mut Option<u64>) -> bool {
        let started = self.started.load(Relaxed);
        let idle = self.busy.load(Relaxed) == 0;
        let quiet = idle && *last_idle == Some(started);
        *last_idle = idle.then_some(started);
        quiet
    }
}

/// Serves a connection until it ends, or until its [`Activity`] has been
/// quiet for a whole `period` (then the connection is dropped, which closes
/// it).
pub fn close_when_idle<F: Future<Output = ()>>(
    conn: F,
    activity: Arc<Activity>,
    period: Duration,
) -> CloseWhenIdle<F> {
    CloseWhenIdle {
        conn: Box::pin(conn),
        activity,
        period,
        sleep: Box::pin(tokio::time::sleep(period)),
        alarm: Arc::new(Alarm::default()),
        // Accepting counts as a look that found the connection idle.
        last_idle: Some(0),
    }
}

/// See [`close_when_idle`]. The timer is polled only when it has fired: it
/// is registered with the `Alarm`'s waker, not the task's, so the many
/// wake-ups of a busy connection cost one atomic swap here, not a poll of
/// the timer.
pub struct CloseWhenIdle<F> {
    conn: Pin<Box<F>>,
    activity: Arc<Activity>,
    period: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    alarm: Arc<Alarm>,
    last_idle: Option<u64>,
}

/// Wakes the connection's task when its timer fires, and says so. The task's
/// waker is set at the first poll (a task keeps its waker for life); the
/// timer is armed from then on.
#[derive(Default)]
struct Alarm {
    fired: AtomicBool,
    task: OnceLock<Waker>,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Relaxed);
        if let Some(task) = self.task.get() {
            task.wake_by_ref();
        }
    }
}

impl<F: Future<Output = ()>> Future for CloseWhenIdle<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // The connection first: a request head it has read starts its
        // request before the look below.
        if this.conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let armed = this.alarm.task.get().is_some();
        if armed && !this.alarm.fired.swap(false, Relaxed) {
            return Poll::Pending;
        }
        if this.activity.http2.load(Relaxed) {
            // Left to hyper: the timer is not armed again.
            return Poll::Pending;
        }
        if !armed {
            let _ = this.alarm.task.set(cx.waker().clone());
        }
        let alarm = Waker::from(this.alarm.clone());
        while this
            .sleep
            .as_mut()
            .poll(&mut Context::from_waker(&alarm))
            .is_ready()
        {
            if this.activity.quiet_since(&mut this.last_idle) {
                return Poll::Ready(());
            }
            // From now, not from the last deadline: looks stay a whole period
            // apart even when this task was not polled for a while.
            let next = tokio::time::Instant::now() + this.period;
            this.sleep.as_mut().reset(next);
        }
        Poll::Pending
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
    body: ResponseBody,
    _busy: Busy,
}

impl Watched {
    pub fn new(body: ResponseBody, busy: Busy) -> Watched {
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

    /// A connection that never ends by itself, and how long until the watch
    /// closed it.
    async fn closed_after(activity: &Arc<Activity>, period: Duration) -> Duration {
        let start = tokio::time::Instant::now();
        close_when_idle(std::future::pending(), activity.clone(), period).await;
        start.elapsed()
    }

    /// The watch closes a connection only after a full period without any
    /// request, and never while a response is still being sent.
    #[tokio::test(start_paused = true)]
    async fn closes_only_after_a_whole_quiet_period() {
        let period = Duration::from_secs(30);
        // Never a request: one period.
        assert_eq!(
            closed_after(&Arc::new(Activity::default()), period).await,
            period
        );

        // A response in flight for three periods, then quiet: closed between
        // one and two periods after it ended.
        let activity = Arc::new(Activity::default());
        let busy = activity.enter(http::Version::HTTP_11);
        let watch = {
            let a = activity.clone();
            tokio::spawn(async move { closed_after(&a, period).await })
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

        // Requests one after another, each starting within a period of the
        // last one's end: never closed.
        let activity = Arc::new(Activity::default());
        let watch = {
            let a = activity.clone();
            tokio::spawn(async move { closed_after(&a, period).await })
        };
        for _ in 0..10 {
            tokio::time::sleep(period / 2).await;
            drop(activity.enter(http::Version::HTTP_11));
        }
        assert!(!watch.is_finished(), "closed although requests kept coming");
        watch.abort();

        // HTTP/2: left to hyper.
        let activity = Arc::new(Activity::default());
        drop(activity.enter(http::Version::HTTP_2));
        let h2 = tokio::time::timeout(period * 10, closed_after(&activity, period)).await;
        assert!(h2.is_err(), "an HTTP/2 connection was closed as idle");
    }

    /// A watch whose task was not polled for several periods (a stalled
    /// thread) still needs a whole quiet period after a request: its looks
    /// are a period apart from the time it looked, not from a stale deadline.
    #[tokio::test(start_paused = true)]
    async fn looks_stay_a_period_apart_after_a_stall() {
        let period = Duration::from_secs(30);
        let activity = Arc::new(Activity::default());
        let mut watch = Box::pin(close_when_idle(
            std::future::pending(),
            activity.clone(),
            period,
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(watch.as_mut().poll(&mut cx).is_pending());
        // Three periods without a poll, and a request just before the next.
        tokio::time::advance(period * 3).await;
        drop(activity.enter(http::Version::HTTP_11));
        assert!(
            watch.as_mut().poll(&mut cx).is_pending(),
            "closed at once after a request"
        );
        tokio::time::advance(period).await;
        assert!(
            watch.as_mut().poll(&mut cx).is_ready(),
            "a quiet period later it closes"
        );
    }

    /// The connection's own end ends the watch at once.
    #[tokio::test(start_paused = true)]
    async fn a_connection_that_ends_is_not_held() {
        let start = tokio::time::Instant::now();
        let conn = tokio::time::sleep(Duration::from_secs(5));
        close_when_idle(conn, Arc::new(Activity::default()), Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
