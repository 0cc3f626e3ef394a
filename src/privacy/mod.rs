//! Privacy: what is done to captured text before it is stored.
//!
//! - [`redact`]: the PII redactor, one file per detector family.
//!
//! Privacy sits below capture: capture calls it, never the other way round.
//! It must never import `capture`, `proxy`, `admin` or `cli`.

pub mod redact;
