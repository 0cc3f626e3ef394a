//! The label values that come from fixed sets: how a request ended, and a
//! response status. Each has a bounded number of values, so neither can turn
//! a label into a per-user or free-text dimension.
//!
//! [`Outcome`] lives here, below capture and the proxy that record it, so that
//! metrics never imports either of them.

use std::fmt;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with a success status and the response was delivered.
    Ok,
    /// The upstream answered with an error status, was unreachable, or failed mid-stream.
    UpstreamError,
    /// The client went away before the response was complete.
    ClientClosed,
    /// The upstream did not answer in time.
    Timeout,
    /// The gateway refused the request (bad input, auth, size).
    Rejected,
}

impl Outcome {
    /// Every outcome, in declaration order (their discriminants index this).
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::UpstreamError,
        Outcome::ClientClosed,
        Outcome::Timeout,
        Outcome::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientClosed => "client_closed",
            Outcome::Timeout => "timeout",
            Outcome::Rejected => "rejected",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        self.as_str().encode(encoder)
    }
}

/// The `status` label: a code in 100..=599, or `other` for anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Code(u16),
    Other,
}

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        match self {
            Status::Code(code) => code.encode(encoder),
            Status::Other => "other".encode(encoder),
        }
    }
}
