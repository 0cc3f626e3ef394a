//! One proxied call from arrival to capture: [`Call`] carries the record being
//! built and submits it exactly once, when the call ends however it ends. If the
//! handler or the response body is dropped early (the client went away), the
//! drop submits it as `client_closed`, so no call escapes capture.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;

use super::routing::VersionTarget;
use super::Proxy;
use crate::capture::issued::Served;
use crate::capture::{Endpoint, Interaction, Outcome};
use crate::error::GatewayError;
use crate::headers::{SEGMENT_HEADER, SESSION_HEADER, USER_HEADER};

/// Status recorded for a call whose client left before any response was sent
/// (nginx's convention; never sent on the wire).
pub const CLIENT_CLOSED_STATUS: u16 = 499;

pub struct Call {
    proxy: Arc<Proxy>,
    /// The version serving the call: the default until routing picks one.
    pub target: Arc<VersionTarget>,
    pub start: Instant,
    record: Option<Interaction>,
    /// Status of the response once it has been decided.
    pub status: u16,
}

impl Call {
    pub fn new(proxy: Arc<Proxy>, start: Instant, endpoint: Endpoint, parts: &Parts) -> Call {
        let headers = &parts.headers;
        let header = |name: http::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let metadata = headers
            .iter()
            .filter_map(|(name, value)| {
                let key = name.as_str().strip_prefix("x-flywheel-meta-")?;
                Some((key.to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        let target = proxy.routing.current().default.clone();
        proxy.metrics.in_flight.add(1);
        let received_at = SystemTime::now();
        let id = crate::capture::id::new_v7_at(received_at);
        let slot = proxy.capture.issue(
            id,
            Served {
                route: target.route.clone(),
                version: target.version.clone(),
            },
        );
        Call {
            record: Some(Interaction {
                id,
                slot,
                received_at,
                endpoint,
                method: parts.method.clone(),
                path: endpoint.path().map_or_else(
                    || parts.uri.path().to_string().into(),
                    std::borrow::Cow::Borrowed,
                ),
                route: target.route.clone(),
                version: target.version.clone(),
                upstream: target.upstream.label.clone(),
                requested_model: None,
                status: CLIENT_CLOSED_STATUS,
                outcome: Outcome::ClientClosed,
                stream: false,
                request_body: Bytes::new(),
                response: Vec::new(),
                response_is_sse: false,
                truncated: false,
                latency: Default::default(),
                first_byte: None,
                arrivals: Default::default(),
                app: None,
                user: header(USER_HEADER),
                session: header(SESSION_HEADER),
                segment: header(SEGMENT_HEADER),
                metadata,
                error: None,
            }),
            proxy,
            target,
            start,
            status: CLIENT_CLOSED_STATUS,
        }
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// A second attempt of the same request on another version: a new
    /// interaction (its own id and record) with the same request, user,
    /// session, app and metadata, timed from the original start.
    pub fn fork(&self, target: Arc<VersionTarget>) -> Call {
        let id = crate::capture::id::new_v7();
        let record = self.record.as_ref().map(|r| Interaction {
            id,
            slot: r.slot,
            received_at: r.received_at,
            endpoint: r.endpoint,
            method: r.method.clone(),
            path: r.path.clone(),
            route: r.route.clone(),
            version: r.version.clone(),
            upstream: r.upstream.clone(),
            requested_model: r.requested_model.clone(),
            status: CLIENT_CLOSED_STATUS,
            outcome: Outcome::ClientClosed,
            stream: r.stream,
            request_body: r.request_body.clone(),
            response: Vec::new(),
            response_is_sse: false,
            truncated: false,
            latency: Default::default(),
            first_byte: None,
            arrivals: Default::default(),
            app: r.app.clone(),
            user: r.user.clone(),
            session: r.session.clone(),
            segment: r.segment.clone(),
            metadata: r.metadata.clone(),
            error: None,
        });
        self.proxy.metrics.in_flight.add(1);
        let mut call = Call {
            proxy: self.proxy.clone(),
            target: self.target.clone(),
            start: self.start,
            record,
            status: CLIENT_CLOSED_STATUS,
        };
        call.set_target(target);
        call
    }

    /// Hands the call to the version routing chose.
    pub fn set_target(&mut self, target: Arc<VersionTarget>) {
        // Most calls stay on the default target they started with.
        if Arc::ptr_eq(&self.target, &target) {
            return;
        }
        if let Some(r) = self.record.as_mut() {
            r.route = target.route.clone();
            r.version = target.version.clone();
            r.upstream = target.upstream.label.clone();
            self.proxy.capture.reissue(
                r.slot,
                r.id,
                Served {
                    route: target.route.clone(),
                    version: target.version.clone(),
                },
            );
        }
        self.target = target;
    }

    /// The record under construction. Only valid before [`Call::finish`].
    pub fn record(&mut self) -> &mut Interaction {
        self.record.as_mut().expect("call already finished")
    }

    pub fn id(&self) -> uuid::Uuid {
        self.record.as_ref().map(|r| r.id).unwrap_or_default()
    }

    pub fn is_finished(&self) -> bool {
        self.record.is_none()
    }

    /// Completes the record with a copy of a whole response body (cut at the
    /// capture limit) and hands it to the capture queue.
    pub fn finish_with_body(
        &mut self,
        outcome: Outcome,
        body: &[u8],
        first_byte: Option<std::time::Duration>,
        error: Option<String>,
    ) {
        let (response, cut) =
            crate::capture::capped_copy(body, self.proxy.config.capture.max_body_bytes);
        self.finish(outcome, response, cut, first_byte, error);
    }

    /// Keeps when each frame of a streamed response arrived, for the writer
    /// to find the first token's. Does nothing once the call is finished.
    pub fn set_arrivals(&mut self, arrivals: crate::capture::Arrivals) {
        if let Some(r) = self.record.as_mut() {
            r.arrivals = arrivals;
        }
    }

    /// Completes the record and hands it to the capture queue. Later calls do
    /// nothing. `first_byte` is when the response began (see
    /// [`Interaction::first_byte`]).
    pub fn finish(
        &mut self,
        outcome: Outcome,
        response: Vec<u8>,
        truncated: bool,
        first_byte: Option<std::time::Duration>,
        error: Option<String>,
    ) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        let latency = self.start.elapsed();
        r.status = self.status;
        r.outcome = outcome;
        r.response = response;
        r.truncated |= truncated;
        r.latency = latency;
        r.first_byte = first_byte;
        r.error = error;
        let m = &self.proxy.metrics;
        m.in_flight.add(-1);
        self.target
            .series
            .request_done(r.status, outcome, latency, first_byte);
        self.proxy.capture.submit(r);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.record.is_some() {
            self.finish(Outcome::ClientClosed, Vec::new(), false, None, None);
        }
    }
}

/// How a call that ended with this error is recorded.
pub fn outcome_of(err: &GatewayError) -> Outcome {
    match err {
        GatewayError::UpstreamTimeout(_) => Outcome::Timeout,
        GatewayError::UpstreamUnreachable
        | GatewayError::UpstreamProtocol
        | GatewayError::Internal => Outcome::UpstreamError,
        _ => Outcome::Rejected,
    }
}
