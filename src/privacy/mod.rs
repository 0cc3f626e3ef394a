//! Privacy: what is done to captured text before it is stored, and for how
//! long stored data is kept.
//!
//! - [`Privacy`]: the policy the capture writer and the feedback path share,
//!   redaction that fails closed and the vault that seals raw payloads.
//! - [`redact`]: the PII redactor, one file per detector family.
//! - [`UserHasher`]: user ids stored only as keyed hashes, under a named key.
//! - [`retention`]: the background sweep that deletes expired data.
//!
//! Privacy sits below capture: capture calls it, never the other way round.
//! It must never import `capture`, `proxy`, `admin` or `cli`.

mod hash;
mod policy;
pub mod redact;
pub mod retention;

pub use hash::UserHasher;
pub use policy::{Privacy, RedactionFailed};
