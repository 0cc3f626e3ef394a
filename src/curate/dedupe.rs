//! Exact and near-duplicate detection over prompt keys. Pure in-memory index;
//! no I/O.
//!
//! Near dedupe is MinHash with LSH banding:
//! - the near key (the user turns, `super::near_key`) is cut into word
//!   3-shingles (a key of fewer than three words is one shingle), each hashed
//!   with 64-bit FNV-1a;
//! - hash function i is `splitmix64(shingle_hash ^ SALT[i])`, for 64 functions;
//!   the signature keeps each function's minimum, so the fraction of equal
//!   slots between two signatures estimates their Jaccard similarity
//!   (standard error about 0.05 at J = 0.8);
//! - the 64 slots are cut into 16 bands of 4 rows; records sharing any whole
//!   band are candidates (probability 1-(1-J^4)^16: 0.9998 at J = 0.8, 0.64 at
//!   J = 0.5, which is why thresholds below 0.5 are refused);
//! - a candidate whose estimated Jaccard is >= the threshold makes the newer
//!   record a duplicate. The first one seen is kept. Each bucket is searched
//!   newest first and only so far (`MAX_BUCKET_WALK`), which bounds the cost
//!   of large families of similar prompts.
//!
//! Scale: one changed word at the end of a 30-word prompt gives J ~ 0.93; in
//! the middle it touches three shingles and gives J ~ 0.81, so use about 0.75
//! to catch single-word edits reliably.

use sha2::{Digest, Sha256};

pub(crate) const HASHES: usize = 64;
const BANDS: usize = 16;
const ROWS: usize = HASHES / BANDS;

/// One byte per hash function: equal 64-bit minima stay equal, and two
/// different minima share their low byte with probability 1/256, which lifts
/// an estimate by (1 - J) / 256 (under 0.002 at any threshold allowed) while
/// keeping a signature to 64 bytes, the bulk of what dedupe holds per record.
pub(crate) type Signature = [u8; HASHES];

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
    sig.map(|v| v as u8)
}

pub(crate) fn estimate(a: &Signature, b: &Signature) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / HASHES as f64
}

fn band_key(band: usize, sig: &Signature) -> u64 {
    let mut bytes = [0u8; 1 + ROWS];
    bytes[0] = band as u8;
    bytes[1..].copy_from_slice(&sig[band * ROWS..(band + 1) * ROWS]);
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
/// record its 64-byte signature, 16 chain links and a share of the bucket-head
/// table, about 0.2 KB. Bucket heads live in one table whose size is fixed up
/// front from the expected number of records, a sixteenth of it per band
/// (several keys of one band may share a head slot; a walk skips members
/// whose band differs).
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
                if other[rows.clone()] == sig[rows.clone()] && estimate(other, sig) >= threshold {
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
