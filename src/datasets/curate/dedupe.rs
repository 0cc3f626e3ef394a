//! Exact and near-duplicate detection over prompt keys. Pure in-memory index;
//! no I/O.
//!
//! Near dedupe is MinHash with LSH banding:
//! - the near key (the user turns, `super::near_key`) is cut into word
//!   3-shingles (a key of fewer than three words is one shingle), each hashed
//!   once (64-bit FNV-1a, mixed by splitmix64, kept to 32 bits);
//! - hash function i is `a[i] * h + b[i]` modulo 2^32 with `a[i]` odd, a
//!   permutation of 32-bit values, for 576 functions; the signature keeps
//!   each function's minimum, so the share of functions whose minima agree
//!   estimates the two keys' Jaccard similarity;
//! - each minimum is mixed again and only a few of its bits are kept: one
//!   byte for the first 64 functions, one bit for the other 512, 128 bytes
//!   in all. Two different minima agree on a byte with probability 1/256 and
//!   on a bit with 1/2, which the estimate subtracts
//!   (`J = (P - c) / (1 - c)`, Li and König's b-bit minwise hashing);
//! - the 64 byte slots are cut into 16 bands of 4 rows; records sharing any
//!   whole band are candidates (probability 1-(1-J^4)^16: 0.9998 at J = 0.8,
//!   0.64 at J = 0.5, which is why thresholds below 0.5 are refused);
//! - a candidate whose estimated Jaccard is >= the threshold makes the newer
//!   record a duplicate. The first one seen is kept. Each bucket is searched
//!   newest first and only so far (`MAX_BUCKET_WALK`), which bounds the cost
//!   of large families of similar prompts.
//!
//! Why 64 bytes and 512 bits: 64 byte slots alone estimate J = 0.95 with a
//! standard error of 0.027, so about 4% of such pairs fell under the default
//! threshold 0.9. The 512 bit slots, weighted with the byte slots by their
//! variances, bring the error to about 0.012: under 0.1% of pairs at the
//! threshold + 0.05 are missed (measured in the tests and the README), for
//! 64 more bytes per kept record than the byte slots alone. A signature of
//! 256 byte slots would do as well for twice the memory; keeping the exact
//! shingle sets would need memory that grows with each prompt's length.
//!
//! Scale: one changed word at the end of a 30-word prompt gives J ~ 0.93; in
//! the middle it touches three shingles and gives J ~ 0.81, so use about 0.75
//! to catch single-word edits reliably.

use crate::crypto::sha256;

/// Functions whose minima keep one byte: the LSH bands and part of the estimate.
const BYTE_SLOTS: usize = 64;
/// Functions whose minima keep one bit.
const BIT_SLOTS: usize = 512;
const FUNCTIONS: usize = BYTE_SLOTS + BIT_SLOTS;
const BANDS: usize = 16;
const ROWS: usize = BYTE_SLOTS / BANDS;
/// The weight of the byte slots' estimate in the combined one; the bit
/// slots get the rest. Inverse-variance weights: the byte slots' variance
/// is J(1-J)/64, the bit slots' (1-J^2)/512, so the byte slots' share is
/// (1+J) / (1+J + 8J), 0.21 at J = 0.9 and 0.22 at J = 0.8.
const BYTE_WEIGHT: f64 = 0.21;

/// A record's MinHash signature: 128 bytes, the bulk of what dedupe holds
/// per kept record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signature {
    bytes: [u8; BYTE_SLOTS],
    bits: [u64; BIT_SLOTS / 64],
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_more(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a_more(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) const fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The multipliers (odd, so each function is a permutation) and offsets of
/// the hash functions, fixed so that signatures agree across builds.
const fn params(offset: u64) -> [u32; FUNCTIONS] {
    let mut out = [0u32; FUNCTIONS];
    let mut i = 0;
    while i < FUNCTIONS {
        out[i] = splitmix64(2 * i as u64 + offset) as u32;
        i += 1;
    }
    out
}
const MUL: [u32; FUNCTIONS] = {
    let mut a = params(1);
    let mut i = 0;
    while i < FUNCTIONS {
        a[i] |= 1;
        i += 1;
    }
    a
};
const ADD: [u32; FUNCTIONS] = params(2);

/// The first 128 bits of SHA-256 of the prompt key: the exact-dedupe identity
/// (a chance collision among a billion keys is about 10^-21).
pub(crate) fn exact_key(prompt_key: &str) -> u128 {
    let d = sha256(prompt_key.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("sha-256 has 32 bytes"))
}

pub(crate) fn signature(prompt_key: &str) -> Signature {
    let mut mins = [u32::MAX; FUNCTIONS];
    let words: Vec<&str> = prompt_key.split_whitespace().collect();
    let mut add = |shingle: &[&str]| {
        // The FNV-1a of the words joined by single spaces, without the join.
        let mut f = 0xcbf2_9ce4_8422_2325;
        for (i, w) in shingle.iter().enumerate() {
            if i > 0 {
                f = fnv1a_more(f, b" ");
            }
            f = fnv1a_more(f, w.as_bytes());
        }
        let h = splitmix64(f) as u32;
        for ((m, a), b) in mins.iter_mut().zip(&MUL).zip(&ADD) {
            *m = (*m).min(h.wrapping_mul(*a).wrapping_add(*b));
        }
    };
    if words.len() < 3 {
        add(&words);
    } else {
        words.windows(3).for_each(&mut add);
    }
    // Bits are kept from a mix of each minimum, not from the minimum itself:
    // the low bits of `a * h + b` depend only on the low bits of `h`, so two
    // shingles that share them would agree in every function alike, and
    // the chance agreements the estimate corrects for would not be
    // independent from slot to slot.
    let kept = |i: usize| splitmix64(u64::from(mins[i]) ^ (i as u64) << 32);
    let mut sig = Signature {
        bytes: [0; BYTE_SLOTS],
        bits: [0; BIT_SLOTS / 64],
    };
    for (i, b) in sig.bytes.iter_mut().enumerate() {
        *b = kept(i) as u8;
    }
    for j in 0..BIT_SLOTS {
        sig.bits[j / 64] |= (kept(BYTE_SLOTS + j) & 1) << (j % 64);
    }
    sig
}

/// The estimated Jaccard similarity of the keys behind two signatures:
/// the byte and bit slots' estimates, each corrected for chance agreement,
/// weighted by their variances.
pub(crate) fn estimate(a: &Signature, b: &Signature) -> f64 {
    let same_bytes = a.bytes.iter().zip(&b.bytes).filter(|(x, y)| x == y).count();
    let differing_bits: u32 = a
        .bits
        .iter()
        .zip(&b.bits)
        .map(|(x, y)| (x ^ y).count_ones())
        .sum();
    let p_bytes = same_bytes as f64 / BYTE_SLOTS as f64;
    let p_bits = 1.0 - f64::from(differing_bits) / BIT_SLOTS as f64;
    let chance = 1.0 / 256.0;
    let j_bytes = (p_bytes - chance) / (1.0 - chance);
    let j_bits = 2.0 * p_bits - 1.0;
    BYTE_WEIGHT * j_bytes + (1.0 - BYTE_WEIGHT) * j_bits
}

fn band_key(band: usize, sig: &Signature) -> u64 {
    let mut bytes = [0u8; 1 + ROWS];
    bytes[0] = band as u8;
    bytes[1..].copy_from_slice(&sig.bytes[band * ROWS..(band + 1) * ROWS]);
    splitmix64(fnv1a(&bytes))
}

const NONE: u32 = u32::MAX;

/// How many entries of one head slot a lookup visits, newest first. A family
/// of similar prompts that are each kept (similar, but below the threshold)
/// piles into the same buckets; without a bound each new member would be
/// compared with all of them and a build would slow down quadratically. A near
/// duplicate shares most of its 16 bands with the record it copies, so it is
/// still found unless that record is older than this many entries in every
/// shared band's slot.
const MAX_BUCKET_WALK: usize = 16;

/// Signatures of kept records and their LSH buckets, laid out flat: per kept
/// record its 128-byte signature, 16 chain links and a share of the
/// bucket-head table, about 0.25 KB. Bucket heads live in one table whose
/// size is fixed up front from the expected number of records, a sixteenth
/// of it per band (several keys of one band may share a head slot; a walk
/// skips members whose band differs).
pub(crate) struct NearIndex {
    sigs: Vec<Signature>,
    /// Head slot -> the newest kept record whose band key maps there.
    heads: Vec<u32>,
    /// `next[i * BANDS + b]`: the previous record in record i's chain of band b.
    next: Vec<u32>,
}

impl Default for NearIndex {
    fn default() -> Self {
        NearIndex::with_rows(0)
    }
}

impl NearIndex {
    /// An index sized for about `rows` records (more still work, with longer
    /// chains).
    pub(crate) fn with_rows(rows: usize) -> NearIndex {
        let slots = rows.saturating_mul(BANDS / 2).clamp(1 << 12, 1 << 28);
        NearIndex {
            sigs: Vec::new(),
            heads: vec![NONE; slots.next_power_of_two()],
            next: Vec::new(),
        }
    }

    /// The head slot of a band key. Each band has a range of slots of its
    /// own: a chain is followed through the links of the band that put each
    /// member there, so a slot shared by two bands would send the walk from
    /// a member of the other band into a different chain, and a record could
    /// be lost even to a copy of itself.
    fn slot(&self, band: usize, sig: &Signature) -> usize {
        let per_band = self.heads.len() / BANDS;
        band * per_band + (band_key(band, sig) as usize & (per_band - 1))
    }

    /// Index of a kept signature with estimated Jaccard >= threshold.
    pub(crate) fn find(&self, sig: &Signature, threshold: f64) -> Option<usize> {
        (0..BANDS).find_map(|b| {
            let rows = b * ROWS..(b + 1) * ROWS;
            let mut at = self.heads[self.slot(b, sig)];
            let mut walked = 0;
            while at != NONE && walked < MAX_BUCKET_WALK {
                let i = at as usize;
                let other = &self.sigs[i];
                if other.bytes[rows.clone()] == sig.bytes[rows.clone()]
                    && estimate(other, sig) >= threshold
                {
                    return Some(i);
                }
                walked += 1;
                at = self.next[i * BANDS + b];
            }
            None
        })
    }

    pub(crate) fn insert(&mut self, sig: Signature) {
        let idx = self.sigs.len() as u32;
        for b in 0..BANDS {
            let slot = self.slot(b, &sig);
            self.next.push(self.heads[slot]);
            self.heads[slot] = idx;
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
    fn index_finds_a_near_duplicate_among_many() {
        let mut idx = NearIndex::with_rows(10);
        for i in 0..3000 {
            idx.insert(signature(&format!(
                "ticket {i} about printer model {} jams",
                i * 7
            )));
        }
        idx.insert(signature(P));
        let near = signature(&P.replace("last month", "last week"));
        assert_eq!(idx.find(&near, 0.8), Some(3000));
        assert_eq!(
            idx.find(&signature("an unrelated question on tax"), 0.5),
            None
        );
    }

    /// A pair of prompts with a known exact Jaccard similarity of their word
    /// 3-shingles, built from distinct random words: `n` words, and the words
    /// at `changed` replaced by new ones in the second prompt.
    fn pair(next: &mut impl FnMut() -> u64, n: usize, changed: &[usize]) -> (String, String) {
        let words: Vec<String> = (0..n).map(|_| format!("w{:x}", next())).collect();
        let mut other = words.clone();
        for &i in changed {
            other[i] = format!("x{:x}", next());
        }
        (words.join(" "), other.join(" "))
    }

    fn exact_jaccard(a: &str, b: &str) -> f64 {
        let shingles = |t: &str| -> std::collections::HashSet<String> {
            let w: Vec<&str> = t.split_whitespace().collect();
            w.windows(3).map(|s| s.join(" ")).collect()
        };
        let (a, b) = (shingles(a), shingles(b));
        a.intersection(&b).count() as f64 / a.union(&b).count() as f64
    }

    /// Shapes of pairs with an exact Jaccard of 0.95: one end word of 41
    /// replaced (38 of 40 shingles shared), the second-to-last of 80 (76 of
    /// 80), one middle word of 119 (114 of 120).
    const AT_095: [(usize, &[usize]); 4] = [(41, &[40]), (41, &[0]), (80, &[78]), (119, &[60])];
    /// One middle and the last word of 41 replaced: 35 of 43, J = 0.814.
    const AT_081: (usize, &[usize]) = (41, &[20, 40]);

    /// Near duplicates at the default threshold + 0.05 missed, and pairs at
    /// about 0.81 merged, out of `pairs` each, through the LSH index.
    fn recall_at_095(pairs: usize) -> (usize, usize) {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_add(1);
            splitmix64(state)
        };
        let mut near = Vec::new();
        let mut far = Vec::new();
        for i in 0..pairs {
            let (n, changed) = AT_095[i % AT_095.len()];
            near.push(pair(&mut next, n, changed));
            far.push(pair(&mut next, AT_081.0, AT_081.1));
        }
        for (a, b) in near.iter().take(AT_095.len()) {
            assert!((exact_jaccard(a, b) - 0.95).abs() < 1e-9);
        }
        let j = exact_jaccard(&far[0].0, &far[0].1);
        assert!((j - 35.0 / 43.0).abs() < 1e-9, "{j}");
        let count = |pairs: &[(String, String)], merged: bool| {
            let mut idx = NearIndex::with_rows(pairs.len());
            for (a, _) in pairs {
                idx.insert(signature(a));
            }
            pairs
                .iter()
                .enumerate()
                .filter(|(i, (_, b))| (idx.find(&signature(b), 0.9) == Some(*i)) == merged)
                .count()
        };
        (count(&near, false), count(&far, true))
    }

    #[test]
    fn near_duplicates_above_the_threshold_are_found() {
        let pairs = 3000;
        let (missed, merged) = recall_at_095(pairs);
        // Below 0.1% missed at J = 0.95 with the default threshold 0.9, and
        // below 0.5% of pairs at J = 0.81 merged.
        assert!(
            missed * 1000 < pairs,
            "{missed} of {pairs} pairs at J = 0.95 missed"
        );
        assert!(
            merged * 200 < pairs,
            "{merged} of {pairs} pairs at J = 0.81 merged"
        );
    }

    /// The figure in the README: `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo test --lib
    /// recall_figure -- --ignored --nocapture` (about a minute).
    #[test]
    #[ignore]
    fn recall_figure() {
        let pairs = 200_000;
        let (missed, merged) = recall_at_095(pairs);
        println!("J = 0.95: {missed} of {pairs} missed; J = 0.81: {merged} of {pairs} merged");
    }

    #[test]
    fn index_finds_every_kept_record_again() {
        // Sized as a build sizes it, for the rows it reads; each kept record
        // fills 16 bucket chains, so chains of different bands share head
        // slots. A record must still be found by a copy of itself.
        let n = 20_000;
        let mut idx = NearIndex::with_rows(n);
        let sigs: Vec<Signature> = (0..n as u64)
            .map(|i| {
                let words: Vec<String> = (0..12)
                    .map(|k| format!("w{:x}", splitmix64(i * 12 + k)))
                    .collect();
                signature(&words.join(" "))
            })
            .collect();
        for s in &sigs {
            idx.insert(*s);
        }
        let lost: Vec<usize> = (0..n)
            .filter(|&i| idx.find(&sigs[i], 0.9) != Some(i))
            .collect();
        assert!(
            lost.is_empty(),
            "{} of {n} not found: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
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
