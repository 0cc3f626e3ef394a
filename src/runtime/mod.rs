//! The process underneath everything else: the shard threads and their
//! per-shard slots, the shutdown signal, and the allocator's settings.

pub mod alloc;
pub mod shard;
pub mod shutdown;
