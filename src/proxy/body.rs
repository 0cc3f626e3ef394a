//! Response bodies: a whole body already in memory, or [`TeeBody`], which
//! forwards an upstream body frame by frame as it arrives while keeping a copy
//! for capture, and, when the gateway asked for usage on the client's behalf,
//! hides the extra usage event from the client.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};

use super::call::Call;
use super::upstream::UpstreamBody;
use crate::capture::{Arrivals, Outcome};
use crate::error::GatewayError;
use crate::http1::body::BoxError;

/// Forwards an upstream body while teeing it into the call's capture record.
pub struct TeeBody {
    upstream: UpstreamBody,
    call: Call,
    deadline: Pin<Box<tokio::time::Sleep>>,
    sse: bool,
    filter: Option<UsageFilter>,
    /// A copy of the upstream's body as it arrived (a usage chunk hidden from
    /// the client included), up to `cap` (see [`crate::capture::Interaction`]).
    captured: Vec<u8>,
    cap: usize,
    truncated: bool,
    /// When the response began: set by the caller for a whole body, at the
    /// first frame for a stream.
    first_byte: Option<Duration>,
    /// When each frame of an SSE stream arrived, for the writer to tell when
    /// the first token did (a role-only opening chunk is not one).
    arrivals: Arrivals,
    /// Bytes to send before anything else (the rest of a filtered stream, or an error event).
    out: Option<Bytes>,
    /// An error to end the body with, for non-SSE bodies that cannot carry an error event.
    abort: Option<BoxError>,
    /// Bytes of a body of declared length still to come: the call is
    /// finished before its last bytes go out, since the client takes the
    /// body as complete once it has them all.
    remaining: Option<u64>,
    done: bool,
}

impl TeeBody {
    /// `length` is the body's declared length, when it is forwarded as is.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstream: UpstreamBody,
        call: Call,
        deadline: Instant,
        sse: bool,
        hide_usage: bool,
        cap: usize,
        first_byte: Option<Duration>,
        length: Option<u64>,
    ) -> TeeBody {
        let hide_usage = sse && hide_usage;
        // A body of known length gets its copy's room at once rather than by
        // doubling, which would ask for up to twice the room.
        let room = length.map_or(0, |n| n.min(cap as u64) as usize);
        TeeBody {
            upstream,
            call,
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
            sse,
            filter: hide_usage.then(UsageFilter::default),
            captured: Vec::with_capacity(room),
            cap,
            truncated: false,
            first_byte,
            arrivals: Arrivals::default(),
            out: None,
            abort: None,
            remaining: length.filter(|_| !hide_usage),
            done: false,
        }
    }

    /// Sends `prefix`, the start of the body already read from the
    /// upstream, before the rest.
    pub fn with_prefix(mut self, prefix: Bytes) -> TeeBody {
        self.tee(&prefix);
        self.count_out(prefix.len());
        self.out = Some(prefix).filter(|p| !p.is_empty());
        self
    }

    /// Counts bytes going out against a declared length, and finishes the
    /// call when they are the last.
    fn count_out(&mut self, n: usize) {
        let Some(left) = self.remaining.as_mut() else {
            return;
        };
        *left = left.saturating_sub(n as u64);
        if *left == 0 {
            self.remaining = None;
            self.done = true;
            self.finish(self.outcome(), None);
        }
    }

    fn outcome(&self) -> Outcome {
        if self.call.status < 400 {
            Outcome::Ok
        } else {
            Outcome::UpstreamError
        }
    }

    fn tee(&mut self, data: &Bytes) {
        let room = self.cap - self.captured.len();
        if data.len() > room {
            self.truncated = true;
        }
        self.captured
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        let captured = std::mem::take(&mut self.captured);
        self.call.set_arrivals(std::mem::take(&mut self.arrivals));
        self.call
            .finish(outcome, captured, self.truncated, self.first_byte, error);
    }

    /// Ends the body after an upstream failure: SSE clients get an OpenAI-style
    /// error event, other bodies are cut so the client sees an incomplete response.
    fn fail(&mut self, err: GatewayError) {
        self.done = true;
        let message = err.to_string();
        if self.sse {
            let mut out = self
                .filter
                .as_mut()
                .and_then(UsageFilter::finish)
                .map(BytesMut::from)
                .unwrap_or_default();
            out.extend_from_slice(&err.sse_event());
            self.out = Some(out.freeze());
        } else {
            self.abort = Some(message.clone().into());
        }
        self.finish(super::call::outcome_of(&err), Some(message));
    }

    fn poll_tee(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(out) = self.out.take() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if let Some(e) = self.abort.take() {
                return Poll::Ready(Some(Err(e)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            if self.deadline.as_mut().poll(cx).is_ready() {
                self.fail(GatewayError::UpstreamTimeout("the total time limit"));
                continue;
            }
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    self.out = self.filter.as_mut().and_then(UsageFilter::finish);
                    self.finish(self.outcome(), None);
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "upstream body failed");
                    self.fail(GatewayError::UpstreamProtocol);
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if self.sse {
                            let at = self.call.start.elapsed();
                            self.first_byte.get_or_insert(at);
                            self.tee(&data);
                            self.arrivals.push(self.captured.len(), at);
                        } else {
                            self.first_byte
                                .get_or_insert_with(|| self.call.start.elapsed());
                            self.tee(&data);
                        }
                        self.count_out(data.len());
                        let forward = match &mut self.filter {
                            Some(f) => f.push(data),
                            None => Some(data),
                        };
                        if let Some(b) = forward.filter(|b| !b.is_empty()) {
                            return Poll::Ready(Some(Ok(Frame::data(b))));
                        }
                    }
                    // Trailers pass through as they are.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut().poll_tee(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_none() && self.abort.is_none()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // Dropped before the upstream body ended: the client went away. Dropping
        // `upstream` right after closes that connection, cancelling the generation.
        if !self.call.is_finished() {
            self.finish(Outcome::ClientClosed, None);
        }
    }
}

/// Removes the usage-only event (`"choices": []` with a `usage` object) from an
/// SSE stream, forwarding every other event as soon as it is complete. A chunk
/// that holds only whole events and no usage object passes through untouched,
/// without a copy.
#[derive(Default)]
pub struct UsageFilter {
    pending: BytesMut,
}

impl UsageFilter {
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.pending.is_empty() && ends_with_event_boundary(&chunk) && !has_usage_object(&chunk)
        {
            return Some(chunk);
        }
        self.pending.extend_from_slice(&chunk);
        let end = last_boundary(&self.pending)?;
        let complete = self.pending.split_to(end).freeze();
        if !has_usage_object(&complete) {
            return Some(complete);
        }
        Some(drop_usage_events(&complete))
    }

    /// What is left when the stream ends (an unterminated last event).
    pub fn finish(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = self.pending.split().freeze();
        Some(if has_usage_object(&rest) {
            drop_usage_events(&rest)
        } else {
            rest
        })
    }
}

fn ends_with_event_boundary(b: &[u8]) -> bool {
    b.ends_with(b"\n\n") || b.ends_with(b"\r\n\r\n")
}

/// Index just past the last blank line (event boundary), if any.
fn last_boundary(b: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::rfind(b, b"\n\n").map(|i| i + 2);
    let crlf = memchr::memmem::rfind(b, b"\r\n\r\n").map(|i| i + 4);
    lf.max(crlf)
}

/// Whether `"usage"` is followed by an object (not `null`) anywhere in `b`.
fn has_usage_object(b: &[u8]) -> bool {
    memchr::memmem::find_iter(b, b"\"usage\"").any(|i| {
        let rest = &b[i + 7..];
        let rest = rest.iter().skip_while(|c| c.is_ascii_whitespace());
        let mut rest = rest
            .skip_while(|c| **c == b':')
            .skip_while(|c| c.is_ascii_whitespace());
        rest.next() == Some(&b'{')
    })
}

/// Rebuilds a run of complete events without the usage-only ones.
fn drop_usage_events(b: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(b.len());
    let mut start = 0;
    while start < b.len() {
        let end = memchr::memmem::find(&b[start..], b"\n\n")
            .map(|i| start + i + 2)
            .unwrap_or(b.len());
        let event = &b[start..end];
        if !is_usage_only_event(event) {
            out.extend_from_slice(event);
        }
        start = end;
    }
    out.freeze()
}

fn is_usage_only_event(event: &[u8]) -> bool {
    if !has_usage_object(event) {
        return false;
    }
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    #[derive(serde::Deserialize)]
    struct Chunk {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<serde::de::IgnoredAny>,
    }
    matches!(
        serde_json::from_str::<Chunk>(&data),
        Ok(Chunk { choices: Some(c), usage: Some(_) }) if c.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const USAGE: &str = "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n";

    fn run(chunks: &[&str]) -> String {
        let mut f = UsageFilter::default();
        let mut out = String::new();
        for c in chunks {
            if let Some(b) = f.push(Bytes::copy_from_slice(c.as_bytes())) {
                out.push_str(std::str::from_utf8(&b).unwrap());
            }
        }
        if let Some(b) = f.finish() {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    #[test]
    fn passes_content_and_drops_usage_event() {
        let a = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
        let out = run(&[a, USAGE, "data: [DONE]\n\n"]);
        assert_eq!(out, format!("{a}data: [DONE]\n\n"));
    }

    #[test]
    fn handles_events_split_across_chunks() {
        let (u1, u2) = USAGE.split_at(30);
        let out = run(&[
            "data: {\"choices\":[{\"delta\":{}}]}\n",
            "\n",
            u1,
            u2,
            "data: [DONE]\n\n",
        ]);
        assert_eq!(
            out,
            "data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn keeps_usage_riding_on_a_content_chunk() {
        let e = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{\"total_tokens\":3}}\n\n";
        assert_eq!(run(&[e]), e);
    }

    #[test]
    fn usage_object_detection() {
        assert!(has_usage_object(br#"{"usage" : {"a":1}}"#));
        assert!(!has_usage_object(br#"{"usage":null}"#));
        assert!(!has_usage_object(br#"{"content":"usage"}"#));
    }
}
