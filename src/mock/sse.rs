//! Server-sent event streams: events written into one buffer and cut into
//! frames, stopping once an injected disconnect is due.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::Response;
use serde::Serialize;

use super::body::{paced, write_json, MockBody};
use super::directives::Directives;

/// Accumulates SSE events in one buffer and cuts it into frames, so a stream costs one
/// allocation for its bytes; it also stops recording once the injected disconnect is due.
pub(super) struct Events {
    buf: Vec<u8>,
    ends: Vec<usize>,
    left: Option<usize>,
    delay: Duration,
}

impl Events {
    pub(super) fn new(d: &Directives<'_>) -> Self {
        Events {
            buf: Vec::with_capacity(4096),
            ends: Vec::with_capacity(32),
            left: d.disconnect_after,
            delay: Duration::from_millis(d.chunk_delay_ms.unwrap_or(0)),
        }
    }

    pub(super) fn aborted(&self) -> bool {
        self.left == Some(0)
    }

    /// Records one event; content events are what `disconnect_after` counts.
    pub(super) fn push<T: Serialize>(&mut self, name: Option<&str>, value: &T, content: bool) {
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

    /// Appends `data: [DONE]` and sends it in one frame with the last `tail`
    /// events, dropping the frame ends between them.
    pub(super) fn done(mut self, tail: usize) -> Response<MockBody> {
        self.buf.extend_from_slice(b"data: [DONE]\n\n");
        let end = self.buf.len();
        let keep = self.ends.len().saturating_sub(tail);
        self.ends.truncate(keep);
        self.ends.push(end);
        self.into_response()
    }

    pub(super) fn into_response(self) -> Response<MockBody> {
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
