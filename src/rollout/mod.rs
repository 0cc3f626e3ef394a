//! Canary rollouts: the pure decision ([`decide`]) and the driver that feeds it
//! live numbers from the store and applies what it decides.
//!
//! The driver holds no state of its own: the rollout row in the store is the
//! whole state, so a restarted gateway picks a rollout up where it was.

pub mod decide;
pub mod driver;
