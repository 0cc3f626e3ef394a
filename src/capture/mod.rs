//! Capture: what the hot path records about each call, and the bounded queue that
//! hands records to the batching writer thread.
//!
//! The hot path only moves bytes it already holds into an [`Interaction`] and
//! calls [`CaptureQueue::submit`], which never blocks: when the queue is full the
//! record is dropped and counted in `flywheel_capture_dropped_total`. Parsing,
//! stream assembly, token estimation and user-id hashing happen on the writer
//! thread ([`writer`]), never on the request path.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::metrics::Metrics;
use crate::runtime::shard::Slot;

/// How a request ended: a field of the record and a label of the request
/// metrics, defined in metrics so that metrics never imports capture.
pub use crate::metrics::Outcome;

pub mod assemble;
pub mod id;
pub mod issued;
pub mod tokens;
pub mod writer;

/// The OpenAI endpoints the gateway understands; anything else is passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Models,
    Passthrough,
}

impl Endpoint {
    pub fn classify(method: &http::Method, path: &str) -> Endpoint {
        let post = method == http::Method::POST;
        match path {
            "/v1/chat/completions" if post => Endpoint::ChatCompletions,
            "/v1/completions" if post => Endpoint::Completions,
            "/v1/embeddings" if post => Endpoint::Embeddings,
            "/v1/responses" if post => Endpoint::Responses,
            "/v1/models" if method == http::Method::GET => Endpoint::Models,
            _ => Endpoint::Passthrough,
        }
    }

    /// The path of a known endpoint: [`Endpoint::classify`] matches it exactly.
    pub fn path(self) -> Option<&'static str> {
        match self {
            Endpoint::ChatCompletions => Some("/v1/chat/completions"),
            Endpoint::Completions => Some("/v1/completions"),
            Endpoint::Embeddings => Some("/v1/embeddings"),
            Endpoint::Responses => Some("/v1/responses"),
            Endpoint::Models => Some("/v1/models"),
            Endpoint::Passthrough => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Models => "models",
            Endpoint::Passthrough => "passthrough",
        }
    }

    /// Whether the gateway must read the JSON body (for `model`, `stream`, `user`).
    pub fn reads_body(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Embeddings
                | Endpoint::Responses
        )
    }
}

/// Everything the hot path knows about one finished call.
///
/// The bodies are copies, not slices of what the connections read: a record
/// waits in the queue for up to a flush interval, and a slice would keep the
/// whole read buffer of its client or upstream connection alive that long, so
/// the connection would allocate a new buffer for its next message, and the
/// writer thread would free the old one (a free across threads, the costly
/// kind for the allocator). A request body over [`COPY_REQUEST_BODY_MAX`] is
/// shared instead: copying it would cost more than the buffer it may keep
/// alive, and such a body mostly arrives in several reads, joined into a
/// buffer of its own already.
#[derive(Debug)]
pub struct Interaction {
    pub id: uuid::Uuid,
    /// The slot of the shard that made the record: its id waits in that part
    /// of the [`issued::Issued`] map, and its bytes count against that
    /// shard's share of the queue, until the writer is done with it.
    pub slot: Slot,
    pub received_at: SystemTime,
    pub endpoint: Endpoint,
    pub method: http::Method,
    /// Borrowed for the endpoints the gateway knows (see [`Endpoint::path`]).
    pub path: std::borrow::Cow<'static, str>,
    pub route: Arc<str>,
    pub version: Arc<str>,
    pub upstream: Arc<str>,
    pub requested_model: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    pub stream: bool,
    pub request_body: Bytes,
    /// The response body as received (JSON, SSE text or other), up to the capture limit.
    pub response: Vec<u8>,
    pub response_is_sse: bool,
    pub truncated: bool,
    pub latency: Duration,
    /// When the response began: its head for a whole body, its first frame
    /// for a stream (a stream's time to first token is found by the writer
    /// from `arrivals`).
    pub first_byte: Option<Duration>,
    /// When each frame of a streamed response arrived (empty for whole bodies).
    pub arrivals: Arrivals,
    pub app: Option<Arc<str>>,
    /// The raw user id; it lives only in memory until the writer hashes it.
    pub user: Option<String>,
    pub session: Option<String>,
    /// The user segment: the client key's, else the `x-flywheel-segment` header.
    pub segment: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub error: Option<String>,
}

impl Interaction {
    /// What the record holds in memory while queued, near enough: the
    /// struct, its bodies and its texts.
    pub fn queued_bytes(&self) -> i64 {
        let texts = self.user.as_ref().map_or(0, String::len)
            + self.session.as_ref().map_or(0, String::len)
            + self.segment.as_ref().map_or(0, String::len)
            + self.error.as_ref().map_or(0, String::len)
            + self.path.len()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        (std::mem::size_of::<Interaction>()
            + self.request_body.len()
            + self.response.capacity()
            + self.arrivals.heap_bytes()
            + texts) as i64
    }
}

/// When the frames of a streamed response arrived: for each, the length of
/// the captured copy once it was in and the time since the request arrived.
///
/// Which frame carried the first token is decided on the writer thread, where
/// the stream is parsed anyway; the hot path only appends two numbers per
/// frame. The first token almost always comes within the first few frames,
/// so the list keeps at most [`Arrivals::MAX`] of them; a stream whose first
/// token comes later records no time to first token rather than a wrong one.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// (captured length, microseconds since the request arrived), in order.
    frames: Vec<(u32, u32)>,
}

impl Arrivals {
    pub const MAX: usize = 1024;

    /// Notes that the captured copy is `captured` bytes long at `at`. A frame
    /// that added nothing to the copy (the copy is full) is not noted.
    pub fn push(&mut self, captured: usize, at: Duration) {
        let end = u32::try_from(captured).unwrap_or(u32::MAX);
        if self.frames.len() >= Self::MAX || self.frames.last().is_some_and(|f| f.0 >= end) {
            return;
        }
        if self.frames.is_empty() {
            self.frames.reserve_exact(16);
        }
        let micros = u32::try_from(at.as_micros()).unwrap_or(u32::MAX);
        self.frames.push((end, micros));
    }

    /// When the first `len` bytes of the captured copy had all arrived, if
    /// a noted frame completed them.
    pub fn time_of(&self, len: usize) -> Option<Duration> {
        let i = self.frames.partition_point(|f| (f.0 as usize) < len);
        self.frames
            .get(i)
            .map(|f| Duration::from_micros(u64::from(f.1)))
    }

    fn heap_bytes(&self) -> usize {
        self.frames.capacity() * std::mem::size_of::<(u32, u32)>()
    }
}

/// Request bodies up to this size are copied into their record (see [`Interaction`]).
pub const COPY_REQUEST_BODY_MAX: usize = 64 * 1024;

/// The record's copy of a request body.
pub fn request_copy(body: &Bytes) -> Bytes {
    if body.len() <= COPY_REQUEST_BODY_MAX {
        Bytes::copy_from_slice(body)
    } else {
        body.clone()
    }
}

/// The first `cap` bytes of `data`, copied, and whether that cut it.
pub fn capped_copy(data: &[u8], cap: usize) -> (Vec<u8>, bool) {
    (data[..data.len().min(cap)].to_vec(), data.len() > cap)
}

pub(crate) enum Message {
    Record(Box<Interaction>),
    /// Write everything queued so far, then stop and acknowledge.
    Close(std::sync::mpsc::Sender<()>),
}

/// The sending side of the capture queue. Cheap to share.
///
/// It also keeps the [`issued::Issued`] map of ids handed out but not yet
/// committed: [`CaptureQueue::issue`] adds one when a call starts.
#[derive(Clone)]
pub struct CaptureQueue {
    tx: SyncSender<Message>,
    metrics: Arc<Metrics>,
    issued: Arc<issued::Issued>,
    /// Bytes of records each shard may have queued: its share of
    /// `capture.queue_max_bytes`.
    share_bytes: i64,
}

impl CaptureQueue {
    /// Records that `id` was handed to a client, until its record is committed.
    pub fn issue(&self, id: uuid::Uuid, served: issued::Served) -> Slot {
        self.issued.insert(id, served)
    }

    /// Records where an issued id is served now.
    pub fn reissue(&self, slot: Slot, id: uuid::Uuid, served: issued::Served) {
        self.issued.insert_at(slot, id, served);
    }

    /// Where an issued but not yet committed interaction was served.
    pub fn pending(&self, id: uuid::Uuid) -> Option<issued::Served> {
        self.issued.get(id)
    }

    /// Hands a record to the writer without waiting. Returns false when it was
    /// dropped (queue full, its shard's share of `capture.queue_max_bytes`
    /// taken, or writer stopped); the drop is counted and logged.
    pub fn submit(&self, record: Interaction) -> bool {
        let (slot, size) = (record.slot, record.queued_bytes());
        let bytes = &self.metrics.capture_queue_bytes;
        let queued = bytes.get_at(slot);
        // A record bigger than the share still goes in when its shard has
        // nothing queued, so no size of record is refused for good.
        let result = if queued > 0 && queued + size > self.share_bytes {
            Err("capture queue holds its share of capture.queue_max_bytes")
        } else {
            // The gauges go up before the send so the writer's decrements can
            // never make them negative.
            self.metrics.capture_queue_depth.add(1);
            bytes.add_at(slot, size);
            self.tx
                .try_send(Message::Record(Box::new(record)))
                .map_err(|e| {
                    self.metrics.capture_queue_depth.add(-1);
                    bytes.add_at(slot, -size);
                    match e {
                        TrySendError::Full(_) => "capture queue is full",
                        TrySendError::Disconnected(_) => "capture writer has stopped",
                    }
                })
        };
        match result {
            Ok(()) => true,
            Err(reason) => {
                let dropped = self.metrics.capture_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Logging every drop under overload would add load exactly when
                // the system has none to spare: log the first and then every 1000th.
                if dropped == 1 || dropped % 1000 == 0 {
                    tracing::warn!(dropped_total = dropped, reason, "capture record dropped");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_find_the_frame_that_completed_a_prefix() {
        let ms = Duration::from_millis;
        let mut a = Arrivals::default();
        a.push(10, ms(1));
        a.push(10, ms(2));
        a.push(25, ms(50));
        a.push(40, ms(100));
        assert_eq!(a.time_of(1), Some(ms(1)));
        assert_eq!(a.time_of(10), Some(ms(1)));
        assert_eq!(a.time_of(11), Some(ms(50)));
        assert_eq!(a.time_of(40), Some(ms(100)));
        assert_eq!(a.time_of(41), None);
        let mut full = Arrivals::default();
        for i in 1..=Arrivals::MAX + 10 {
            full.push(i, ms(i as u64));
        }
        assert_eq!(full.time_of(Arrivals::MAX), Some(ms(Arrivals::MAX as u64)));
        assert_eq!(full.time_of(Arrivals::MAX + 1), None);
    }

    /// A known endpoint's static path is the one its classification matched,
    /// so a record's path reads the same borrowed or owned.
    #[test]
    fn known_endpoints_have_the_path_they_were_classified_by() {
        let all = [
            Endpoint::ChatCompletions,
            Endpoint::Completions,
            Endpoint::Embeddings,
            Endpoint::Responses,
            Endpoint::Models,
            Endpoint::Passthrough,
        ];
        for e in all {
            let method = if e == Endpoint::Models {
                http::Method::GET
            } else {
                http::Method::POST
            };
            match e.path() {
                Some(path) => assert_eq!(Endpoint::classify(&method, path), e),
                None => assert_eq!(e, Endpoint::Passthrough),
            }
        }
    }
}
