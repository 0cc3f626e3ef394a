//! Interaction ids: UUIDv7 (RFC 9562) with a millisecond timestamp, a 12-bit
//! counter that keeps ids made in the same millisecond in creation order across
//! the whole process, and 62 random bits.
//!
//! Every call gets one, so making one must not cost a system call: the random
//! bits come from a small per-thread buffer refilled from the OS generator
//! (one `getrandom` per 64 ids) instead of one `getrandom` per id.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// The last (unix milliseconds << 12 | counter) handed out.
static LAST: AtomicU64 = AtomicU64::new(0);

/// Random bytes per refill: 64 ids' worth.
const POOL: usize = 512;

thread_local! {
    static RANDOM: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
}

/// Eight bytes from the OS generator, through the thread's buffer.
pub fn random_u64() -> u64 {
    RANDOM.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (buf, pos) = &mut *guard;
        if *pos + 8 > POOL {
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
                .expect("the operating system's random source failed");
            *pos = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&buf[*pos..*pos + 8]);
        // Used bytes are cleared so that what is left in memory is only
        // randomness that no id has carried.
        buf[*pos..*pos + 8].fill(0);
        *pos += 8;
        u64::from_ne_bytes(word)
    })
}

/// A new UUIDv7, greater than every id this process made before.
pub fn new_v7() -> Uuid {
    new_v7_at(SystemTime::now())
}

/// [`new_v7`] for a time the caller has read already (one clock read fewer
/// on the request path).
pub fn new_v7_at(now: SystemTime) -> Uuid {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let floor = now_ms << 12;
    // Within one millisecond the counter counts up; past 4096 ids it carries
    // into the timestamp, which then runs a little ahead of the clock until
    // the clock catches up (RFC 9562 §6.2, method 1).
    let next = |last: u64| floor.max(last + 1);
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or_else(|last| last);
    let stamp = next(prev);
    let (ms, counter) = (stamp >> 12, stamp & 0xfff);
    let high = (ms << 16) | (0x7 << 12) | counter;
    let low = (random_u64() >> 2) | (0b10 << 62);
    Uuid::from_u64_pair(high, low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_strictly_increasing() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| new_v7()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn ids_carry_the_time() {
        let id = new_v7();
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(secs.abs_diff(now) <= 2);
    }

    #[test]
    fn random_bits_differ() {
        let a = new_v7().as_u64_pair().1;
        let b = new_v7().as_u64_pair().1;
        assert_ne!(a, b);
    }
}
