//! The gateway's own HTTP/1.1 server and upstream client, their shared
//! framing, and what bounds a connection: the idle watch, the send timeout
//! and the budget of request bodies in flight.
//!
//! Why not hyper for HTTP/1.1: measured side by side (bench/RESULTS.md), a
//! connection served in the accepting task, with the request head parsed in
//! place and the response written with one `writev`, costs fewer
//! instructions and wake-ups per request than hyper's connection task, and
//! an upstream call made by the task that serves the client saves the
//! channel hops of a pooled client that runs each connection as a task of
//! its own. HTTP/2 and TLS stay with hyper (`app` hands them over).
//!
//! - [`framing`]: where a body ends, the chunked decoder, the token grammar.
//! - [`server`]: reads requests strictly (RFC 9112), refuses on the head what
//!   would be refused anyway, and writes responses.
//! - [`client`]: keep-alive connections to plain-TCP upstreams and their pool.
//! - [`idle`], [`send_timeout`], [`budget`]: the bounds above.
//!
//! Nothing here knows what a route, a capture record or the admin API is.

pub mod body;
pub mod budget;
pub mod client;
pub mod framing;
#[cfg(test)]
mod gen;
pub mod idle;
pub mod send_timeout;
pub mod server;
