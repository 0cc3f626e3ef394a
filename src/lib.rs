//! Flywheel: an OpenAI-compatible inference gateway that records every call so
//! that production traffic can become better models.
//!
//! Code map, one line per module: what it owns, and what it must never do.
//! ARCHITECTURE.md has a paragraph on each and the layers they form, which
//! `tests/it/tidy.rs` checks.
//!
//! Entry and wiring:
//! - [`cli`]: the command line: clap definitions, one file per command group
//!   with its rendering, and the HTTP client it talks to a gateway with.
//!   Nothing but `main.rs` imports it.
//! - [`app`]: the composition root: builds the [`Gateway`], routes each
//!   request to the proxy, feedback or admin, and [`run`]s the listener and
//!   the drain. Nothing but `cli` imports it.
//! - [`runtime`]: the shard threads, the one shutdown signal
//!   ([`runtime::shutdown`]) and the allocator's settings ([`runtime::alloc`]).
//!   Imports nothing of the crate.
//!
//! Data plane:
//! - [`http1`]: the own HTTP/1.1 server and upstream client over one shared
//!   framing, and the bounds of a connection. Knows no route or record.
//! - [`proxy`]: the request path of `/v1`: routing, upstream calls and the
//!   SSE tee. Never waits on storage; never imports feedback or admin.
//! - [`auth`]: client keys and the admin token, compared in constant time.
//! - [`headers`]: the gateway's own header names.
//!
//! Capture pipeline:
//! - [`capture`]: interaction records, the bounded queue and the batching
//!   writer thread (stream assembly, tokens). Never imports the proxy.
//! - [`privacy`]: redaction that fails closed, user-id hashing, raw-payload
//!   sealing and retention sweeps. Never imports capture.
//! - [`json`]: reading and rewriting JSON bodies without building a tree.
//!   Imports nothing of the crate.
//!
//! Control plane:
//! - [`feedback`]: validation and storage of feedback on interactions
//!   (`POST /v1/feedback`).
//! - [`registry`]: routes, model versions and their lifecycle.
//! - [`rollout`]: canary rollouts: the pure decision and the driver that
//!   applies it.
//! - [`datasets`]: dataset versions built from the store; its pure core,
//!   [`datasets::curate`] (filters, quality, dedupe, split, SFT/DPO/KTO
//!   lines), never does I/O.
//! - [`experiments`]: evaluation runs: replaying an eval set to a candidate
//!   and a baseline, and what a gate verdict does. Reaches upstreams only
//!   through a trait `app` implements.
//! - [`audit`]: makes every audit event (who, what, to what, when); the
//!   store keeps them.
//! - [`admin`]: the admin HTTP API (`/admin/v1/...`) behind a bearer token,
//!   with its own state. Never imports the proxy.
//!
//! Storage:
//! - [`store`]: one storage trait per concern, their SQLite implementation
//!   and versioned migrations. Never imports a layer above it (it uses only
//!   `crypto` and `clock`).
//!
//! Shared foundations:
//! - [`config`]: raw TOML/env settings, validated once into a typed
//!   [`config::Config`].
//! - [`metrics`]: every Prometheus series, declared once, one file per
//!   metric type, rendered by `prometheus-client`; per-shard counts summed
//!   when scraped.
//! - [`error`]: [`error::GatewayError`] and its one mapping to an HTTP status
//!   and OpenAI-shaped JSON. Imports nothing of the crate.
//! - [`eval`]: evaluation's pure core: scorers, the judge's prompts and
//!   replies, paired bootstrap statistics, the gate's verdict. Imports
//!   nothing of the crate.
//! - [`clock`]: unix milliseconds and the `since` forms, read and printed.
//! - [`crypto`]: the one crypto stack: SHA-256, constant-time compares,
//!   randomness, AES-256-GCM sealing.
//!
//! Tools:
//! - [`mock`]: an upstream that speaks the OpenAI API, for tests, benchmarks
//!   and demos. Nothing but `cli` imports it.

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod datasets;
pub mod error;
pub mod eval;
pub mod experiments;
pub mod feedback;
pub mod headers;
pub mod http1;
pub mod json;
pub mod metrics;
pub mod mock;
pub mod privacy;
pub mod proxy;
pub mod registry;
pub mod rollout;
pub mod runtime;
pub mod store;

pub use app::{run, Gateway};
