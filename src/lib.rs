//! Flywheel: an OpenAI-compatible inference gateway that records every call so
//! that production traffic can become better models.
//!
//! Code map (one line per module, what it owns):
//! - [`config`]: raw TOML/env settings, validated once into a typed [`config::Config`].
//! - [`proxy`]: the data plane — listener, request handling, routing, upstream
//!   client and the SSE tee. The hot path lives here and never waits on storage.
//! - [`capture`]: interaction records, stream assembly and the bounded queue
//!   that feeds the batching writer thread.
//! - [`json`]: reading JSON bodies without building a tree, for capture and privacy.
//! - [`privacy`]: PII redaction of captured text (fails closed), user-id hashing,
//!   raw-payload sealing and retention sweeps; it never imports capture.
//! - [`store`]: one storage trait per concern, their SQLite implementation and versioned
//!   migrations. Never imports a layer above it.
//! - [`feedback`]: validation and storage of feedback on interactions (`POST /v1/feedback`).
//! - [`curate`]: the pure core of dataset curation: filters, quality score, dedupe, split, SFT/DPO/KTO lines.
//! - [`datasets`]: dataset versions: streaming builds from the store, their files, manifests and lineage.
//! - [`registry`]: routes, model versions and their lifecycle (registered, approved, canary, stable, ...).
//! - [`rollout`]: canary rollouts: the pure decision and the driver that applies it.
//! - [`admin`]: the admin HTTP API (`/admin/v1/...`) behind a bearer token.
//! - [`audit`]: makes every audit event (who, what, to what, when); the store keeps them.
//! - [`mock`]: an upstream that speaks the OpenAI API for tests, benchmarks and demos.
//! - [`metrics`]: every Prometheus series, declared once, rendered as text.
//! - [`shutdown`]: the one shutdown signal and how the drain is awaited.
//! - [`error`]: gateway errors and their single mapping to OpenAI-shaped responses.
//! - [`cli`]: the command line: clap definitions, one file per command group,
//!   its rendering and the HTTP client it talks to a gateway with. Nothing imports it.
//! - [`alloc`]: has the C allocator hand large freed buffers back to the OS (`main` only).

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
