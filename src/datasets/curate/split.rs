//! Deterministic train/eval split by prompt. The side of a prompt depends only
//! on hash(seed, prompt key) (and, with `eval_size`, on which hashes are the
//! lowest), never on arrival order or a clock, so reruns agree. No I/O.
//!
//! Leak-freedom: every kept example has a distinct prompt key (exact dedupe),
//! and anything sharing a key shares its hash and therefore its side.

use super::Split;
use crate::crypto::Sha256;

/// First 8 bytes of SHA-256(seed, 0, prompt_key), big-endian.
pub(crate) fn split_hash(seed: &str, prompt_key: &str) -> u64 {
    let mut h = Sha256::default();
    h.update(seed.as_bytes());
    h.update([0u8]);
    h.update(prompt_key.as_bytes());
    let d = h.finish();
    u64::from_be_bytes(d[..8].try_into().expect("sha-256 has 32 bytes"))
}

/// The largest hash that goes to eval (inclusive), or `None` for no eval.
/// `kept` are the split hashes of the kept examples (reordered here).
pub(crate) fn eval_bound(split: &Split, kept: &mut [u64]) -> Option<u64> {
    match split.eval_size {
        Some(n) => {
            let n = n.min(kept.len());
            if n == 0 {
                return None;
            }
            let (_, nth, _) = kept.select_nth_unstable(n - 1);
            Some(*nth)
        }
        None => {
            // ratio * 2^64 as an exclusive bound; `as` saturates at u64::MAX.
            let bound = (split.eval_ratio * 18_446_744_073_709_551_616.0) as u64;
            bound.checked_sub(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_split_is_close_to_ratio_and_seeded() {
        let split = Split::default();
        let bound = eval_bound(&split, &mut []).unwrap();
        let keys: Vec<String> = (0..2000).map(|i| format!("prompt {i}")).collect();
        let eval = keys
            .iter()
            .filter(|k| split_hash("flywheel", k) <= bound)
            .count();
        assert!((150..250).contains(&eval), "{eval}");
        let other = keys
            .iter()
            .filter(|k| split_hash("other", k) <= bound)
            .collect::<Vec<_>>();
        let same = keys
            .iter()
            .filter(|k| split_hash("flywheel", k) <= bound)
            .collect::<Vec<_>>();
        assert_ne!(other, same, "the seed changes the split");
        let none = Split {
            eval_ratio: 0.0,
            ..Split::default()
        };
        assert_eq!(eval_bound(&none, &mut []), None);
    }

    #[test]
    fn eval_size_picks_lowest_hashes() {
        let split = Split {
            eval_size: Some(3),
            ..Split::default()
        };
        let mut hs = vec![50, 10, 40, 20, 30];
        assert_eq!(eval_bound(&split, &mut hs), Some(30));
        assert_eq!(eval_bound(&split, &mut [7, 9]), Some(9));
        assert_eq!(eval_bound(&split, &mut []), None);
    }
}
