//! The bodies the edge passes: a request body as a handler gets it
//! ([`ClientBody`]: read whole by the own HTTP/1.1 server, or hyper's for
//! HTTP/2 and TLS), reading one whole within its limits ([`read_whole`]),
//! and the body of every response ([`ResponseBody`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::budget::{BodyBudget, Reserved};
use crate::error::GatewayError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the handler gets it.
pub enum ClientBody {
    /// From hyper's server: HTTP/2, and every connection over TLS.
    Incoming(hyper::body::Incoming),
    /// Read whole before the handler was called, with its share of the
    /// body budget.
    Read(Bytes, Reserved),
    /// Why the body could not be read whole.
    Fault(BodyFault),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Longer than `server.max_body_bytes`, declared or as it came.
    TooLarge,
    /// Not all there within `server.body_timeout_secs`.
    TimedOut,
    /// Badly framed, or the connection ended inside it.
    Malformed,
    /// Not read: the request was refused on its head (no valid key).
    Refused,
    /// Not read: it does not fit in `server.body_budget_bytes` now.
    Busy,
}

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyFault::TooLarge => "the request body is too large",
            BodyFault::TimedOut => "the request body did not arrive in time",
            BodyFault::Malformed => "the request body could not be read",
            BodyFault::Refused => "the request was refused before its body was read",
            BodyFault::Busy => "the request body does not fit in the body budget",
        })
    }
}

impl std::error::Error for BodyFault {}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Incoming(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
            ClientBody::Read(b, _) if b.is_empty() => Poll::Ready(None),
            ClientBody::Read(b, _) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(b))))),
            ClientBody::Fault(f) => Poll::Ready(Some(Err(Box::new(*f)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Incoming(b) => b.is_end_stream(),
            ClientBody::Read(b, _) => b.is_empty(),
            ClientBody::Fault(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Incoming(b) => b.size_hint(),
            ClientBody::Read(b, _) => SizeHint::with_exact(b.len() as u64),
            ClientBody::Fault(_) => SizeHint::default(),
        }
    }
}

/// The body of every response the gateway sends.
pub enum ResponseBody {
    Full(Option<Bytes>),
    /// A body produced as it goes (the proxy's tee of an upstream answer).
    Stream(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
    /// Chunks produced by a task as they come (admin progress, file downloads);
    /// the task sees the receiver dropped when the client goes away.
    Channel(tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>),
}

impl ResponseBody {
    pub fn full(b: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Full(Some(b.into()))
    }

    pub fn empty() -> ResponseBody {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            ResponseBody::Stream(s) => s.as_mut().poll_frame(cx),
            ResponseBody::Channel(rx) => rx.poll_recv(cx).map(|c| c.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.as_ref().is_none_or(|b| b.is_empty()),
            ResponseBody::Stream(s) => s.is_end_stream(),
            ResponseBody::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Stream(s) => s.size_hint(),
            ResponseBody::Channel(_) => SizeHint::default(),
        }
    }
}

/// Reads a request body whole, within `limit` bytes and the server's body
/// time limit (`timeout`), holding its size in the body budget: the declared
/// length before anything is read, else as it arrives. The budget is held
/// until the returned reservation is dropped.
pub async fn read_whole(
    body: ClientBody,
    headers: &http::HeaderMap,
    limit: u64,
    budget: &Arc<BodyBudget>,
    timeout: Duration,
) -> Result<(Bytes, Reserved), BodyFault> {
    let mut body = match body {
        ClientBody::Read(b, _) if b.len() as u64 > limit => return Err(BodyFault::TooLarge),
        ClientBody::Read(b, reserved) => return Ok((b, reserved)),
        ClientBody::Fault(fault) => return Err(fault),
        ClientBody::Incoming(b) => b,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyFault::TooLarge);
    }
    let mut reserved = match declared {
        Some(0) => Reserved::default(),
        Some(n) => budget.reserve(n).ok_or(BodyFault::Busy)?,
        None => budget.empty(),
    };
    let collect = async move {
        // The first chunk is kept as it came; only a body in several is copied.
        let mut first: Option<Bytes> = None;
        let mut rest = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| BodyFault::Malformed)?.into_data() else {
                continue;
            };
            // Once a second chunk came, `rest` holds the first one too.
            let have = match &first {
                Some(f) if rest.is_empty() => f.len(),
                _ => rest.len(),
            };
            let total = (have + data.len()) as u64;
            if total > limit {
                return Err(BodyFault::TooLarge);
            }
            if !reserved.cover(total) {
                return Err(BodyFault::Busy);
            }
            match &first {
                None => first = Some(data),
                Some(f) => {
                    if rest.is_empty() {
                        let size = declared.unwrap_or(0).min(limit) as usize;
                        rest.reserve(size.max(f.len() + data.len()));
                        rest.extend_from_slice(f);
                    }
                    rest.extend_from_slice(&data);
                }
            }
        }
        let bytes = if rest.is_empty() {
            first.unwrap_or_default()
        } else {
            rest.freeze()
        };
        Ok((bytes, reserved))
    };
    // A small body has mostly arrived with the head: one look before a timer
    // is set up for it (which reads the clock and makes a timer entry).
    let mut collect = std::pin::pin!(collect);
    let collected = match std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await {
        Poll::Ready(c) => c,
        Poll::Pending => tokio::time::timeout(timeout, collect)
            .await
            .map_err(|_| BodyFault::TimedOut)?,
    };
    collected
}

impl BodyFault {
    /// The error a client is answered with when its body could not be read
    /// within `limit` bytes.
    pub fn to_error(self, limit: u64) -> GatewayError {
        match self {
            BodyFault::TooLarge => GatewayError::PayloadTooLarge { limit },
            BodyFault::TimedOut => GatewayError::RequestTimeout,
            BodyFault::Refused => GatewayError::Unauthorized,
            BodyFault::Busy => GatewayError::Busy,
            BodyFault::Malformed => {
                GatewayError::BadRequest("the request body could not be read".into())
            }
        }
    }
}

impl From<Bytes> for ResponseBody {
    fn from(b: Bytes) -> ResponseBody {
        ResponseBody::full(b)
    }
}
