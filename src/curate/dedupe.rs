//! Exact and near-duplicate detection over prompt keys. Pure in-memory index;
//! no I/O.
//!
//! Near dedupe is MinHash with LSH banding:
//! - the prompt key is cut into word 3-shingles (a key of fewer than three
//!   words is one shingle), each hashed with 64-bit FNV-1a;
//! - hash function i is `splitmix64(shingle_hash ^ SALT[i])`, for 64 functions;
//!   the signature keeps each function's minimum, so the fraction of equal
//!   slots between two signatures estimates their Jaccard similarity
//!   (standard error about 0.05 at J = 0.8);
//! - the 64 slots are cut into 16 bands of 4 rows; records sharing any whole
//!   band are candidates (probability 1-(1-J^4)^16: 0.9998 at J = 0.8, 0.64 at
//!   J = 0.5, which is why thresholds below 0.5 are refused);
//! - a candidate whose estimated Jaccard is >= the threshold makes the newer
//!   record a duplicate. The first one seen is kept.
//!
//! Scale: one changed word at the end of a 30-word prompt gives J ~ 0.93; in
//! the middle it touches three shingles and gives J ~ 0.81, so use about 0.75
//! to catch single-word edits reliably.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub(crate) const HASHES: usize = 64;
const BANDS: usize = 16;
const ROWS: usize = HASHES / BANDS;

/// One 32-bit slot per hash function: equal 64-bit minima stay equal, and two
/// different minima collide in their low 32 bits with probability 2^-32, which
/// moves an estimate by nothing measurable while halving the memory held per
/// kept record.
pub(crate) type Signature = [u32; HASHES];

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The first 128 bits of SHA-256 of the prompt key: the exact-dedupe identity
/// (a chance collision among a billion keys is about 10^-21).
pub(crate) fn exact_key(prompt_key: &str) -> u128 {
    let d = Sha256::digest(prompt_key.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("sha-256 has 32 bytes"))
}

pub(crate) fn signature(prompt_key: &str) -> Signature {
    let salts: [u64; HASHES] = std::array::from_fn(|i| splitmix64(i as u64 + 1));
    let mut sig = [u64::MAX; HASHES];
    let words: Vec<&str> = prompt_key.split_whitespace().collect();
    let mut add = |shingle: &[&str]| {
        let h = fnv1a(shingle.join(" ").as_bytes());
        for (slot, salt) in sig.iter_mut().zip(salts) {
            *slot = (*slot).min(splitmix64(h ^ salt));
        }
    };
    if words.len() < 3 {
        add(&words);
    } else {
        words.windows(3).for_each(&mut add);
    }
    sig.map(|v| v as u32)
}

pub(crate) fn estimate(a: &Signature, b: &Signature) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / HASHES as f64
}

fn band_key(band: usize, sig: &Signature) -> u32 {
    let mut bytes = [0u8; 1 + ROWS * 4];
    bytes[0] = band as u8;
    for (i, v) in sig[band * ROWS..(band + 1) * ROWS].iter().enumerate() {
        bytes[1 + i * 4..5 + i * 4].copy_from_slice(&v.to_le_bytes());
    }
    fnv1a(&bytes) as u32
}

const NONE: u32 = u32::MAX;

/// Signatures of kept records plus their LSH buckets, laid out flat so that a
/// kept record costs about 0.5 KB (its 256-byte signature, 16 chain links and
/// 16 bucket-head entries) rather than 16 small vectors. A 32-bit band key can
/// collide; that only adds a candidate, which `estimate` then rejects.
#[derive(Default)]
pub(crate) struct NearIndex {
    sigs: Vec<Signature>,
    /// Band key -> the newest kept record in that bucket.
    heads: HashMap<u32, u32>,
    /// `next[i * BANDS + b]`: the previous record in record i's bucket of band b.
    next: Vec<u32>,
}

impl NearIndex {
    /// Index of a kept signature with estimated Jaccard >= threshold.
    pub(crate) fn find(&self, sig: &Signature, threshold: f64) -> Option<usize> {
        (0..BANDS).find_map(|b| {
            let mut at = self.heads.get(&band_key(b, sig)).copied().unwrap_or(NONE);
            while at != NONE {
                let i = at as usize;
                if estimate(&self.sigs[i], sig) >= threshold {
                    return Some(i);
                }
                at = self.next[i * BANDS + b];
            }
            None
        })
    }

    pub(crate) fn insert(&mut self, sig: Signature) {
        let idx = self.sigs.len() as u32;
        for b in 0..BANDS {
            let prev = self.heads.insert(band_key(b, &sig), idx).unwrap_or(NONE);
            self.next.push(prev);
        }
        self.sigs.push(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "please summarise the attached quarterly report for the board and highlight \
        the three biggest risks to revenue growth along with any mitigation steps that the \
        finance team proposed last month";

    #[test]
    fn hash_primitives_are_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(signature(P), signature(P));
    }

    #[test]
    fn estimate_tracks_jaccard() {
        assert_eq!(P.split_whitespace().count(), 30);
        // Last word changed: 27 shared of 29 distinct shingles, J ~ 0.93.
        let near = P.replace("last month", "last week");
        let j = estimate(&signature(P), &signature(&near));
        assert!(j > 0.8 && j < 1.0, "{j}");
        // A mid-prompt word touches three shingles: J = 25/31 ~ 0.81, so a
        // threshold of 0.8 catches such an edit only about half the time.
        let mid = P.replace(" to revenue", " for revenue");
        let j = estimate(&signature(P), &signature(&mid));
        assert!(j > 0.6 && j < 0.95, "{j}");
        let other = "write a haiku about autumn leaves falling on a quiet pond at dusk";
        assert!(estimate(&signature(P), &signature(other)) < 0.2);
    }

    #[test]
    fn index_finds_candidates_via_bands() {
        let mut idx = NearIndex::default();
        idx.insert(signature(P));
        let near = signature(&P.replace("last month", "last week"));
        assert_eq!(idx.find(&near, 0.8), Some(0));
        assert_eq!(idx.find(&near, 0.99), None);
        assert_eq!(idx.find(&signature("hello there"), 0.5), None);
    }
}
