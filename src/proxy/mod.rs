//! The data plane: the listener ([`server`]), the request path ([`handler`]),
//! the record of one call ([`call`]), closing idle connections ([`idle`]),
//! request-body reading ([`request`]), the send timeout of connections hyper
//! serves ([`send_timeout`]), the upstream client ([`upstream`],
//! with its own HTTP/1.1 client and pool in [`h1`]) and streaming bodies with
//! the SSE tee ([`body`]), and the budget of request bodies in flight
//! ([`budget`]).
//!
//! Invariant: nothing here waits on the database. Capture is a non-blocking
//! hand-off to a bounded queue; a full queue costs a record, never a request.

pub mod body;
pub mod call;
pub mod handler;
pub mod request;
pub mod routing;
pub mod server;
pub mod upstream;
