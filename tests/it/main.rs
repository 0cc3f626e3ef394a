//! The integration tests, one binary: each module is the suite of one part
//! (named after it), and `common` is the harness they share: a real mock
//! upstream and a real gateway on port 0, over real sockets. One binary
//! compiles and links the harness once, where a binary per suite did it for
//! every one.

mod common;

mod cli;
mod datasets;
mod experiments;
mod feedback;
mod http1;
mod http1_differential;
mod limits;
mod metrics;
mod mock;
mod pii_accuracy;
mod privacy;
mod proxy;
mod rollout;
mod shutdown;
mod tidy;
mod token_estimates;
mod transport;
