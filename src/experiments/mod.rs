//! Experiments: evaluation runs that replay an eval set's prompts to a
//! candidate and a baseline version, score both with `eval`, and record the
//! run with the store's `ExperimentStore`.
//!
//! - [`replay`]: one call to one version, with a time limit and retries with
//!   backoff on 429, 5xx and connection errors (honouring `Retry-After`), and
//!   the answer read into what the scorers take. The calls go straight to the
//!   version's upstream, not through the proxy: evaluation traffic is never
//!   captured, so it never enters datasets, rollout statistics or the live
//!   request metrics.

pub mod replay;
