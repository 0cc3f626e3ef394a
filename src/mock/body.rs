//! The mock's response body, one buffer or a run of frames paced by a timer
//! that may end in an injected disconnect, and the plain JSON and
//! OpenAI-shaped error answers built on it.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;
use serde_json::json;
use tokio::time::Sleep;

/// Pause before an injected disconnect, so frames already produced reach the socket first.
const ABORT_GRACE: Duration = Duration::from_millis(20);

/// Error used to make hyper drop a connection or reset a stream on purpose.
#[derive(Debug)]
pub(super) struct MockAbort;

impl std::fmt::Display for MockAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock upstream aborted the response")
    }
}

impl std::error::Error for MockAbort {}

pub(super) type Reply = Result<Response<MockBody>, MockAbort>;

/// Response body: either one buffer, or a sequence of frames paced by a timer and possibly
/// ending in an error. A hand-written body avoids a task and a channel per stream.
pub(super) enum MockBody {
    Full(Option<Bytes>),
    Stream(Box<Paced>),
}

/// A stream's frames and its pacing; built only by [`paced`].
pub(super) struct Paced {
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

pub(super) fn paced(frames: Vec<Bytes>, delay: Duration, abort: bool) -> MockBody {
    MockBody::Stream(Box::new(Paced {
        frames: frames.into_iter(),
        delay,
        sleep: None,
        abort,
        aborting: false,
    }))
}

pub(super) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<MockBody> {
    let mut buf = Vec::with_capacity(512);
    write_json(&mut buf, value);
    let mut resp = Response::new(MockBody::Full(Some(Bytes::from(buf))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(super) fn write_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(buf, value).expect("mock json serialization cannot fail");
}

/// OpenAI-shaped error; the `type` follows the status class the way OpenAI reports it.
pub(super) fn error(status: StatusCode, message: &str, code: Option<&str>) -> Response<MockBody> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    json_response(status, &body)
}
