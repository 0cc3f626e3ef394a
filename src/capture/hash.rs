//! Keyed hashing of user ids and plain hashing of client keys.
//!
//! A user id is stored only as HMAC-SHA256(secret, id): the same user always maps
//! to the same value, so sessions and feedback can be correlated, while without
//! the secret nobody can test a guessed id against the store.

use ring::{digest, hmac};

/// Hashes user ids with the gateway's secret. Every hash names its key
/// (`k1:3fa9...`), so after a rotation old and new hashes are told apart and
/// erasure can look a user up under every key still known.
#[derive(Clone)]
pub struct UserHasher {
    key_id: String,
    key: hmac::Key,
}

impl UserHasher {
    /// A hasher whose key is named `k1`.
    pub fn new(secret: &[u8]) -> UserHasher {
        UserHasher::with_id("k1", secret)
    }

    pub fn with_id(key_id: &str, secret: &[u8]) -> UserHasher {
        UserHasher {
            key_id: key_id.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The key id, a colon, and the lowercase hex of the first 16 bytes of the
    /// HMAC: 128 bits are plenty to avoid collisions among users.
    pub fn hash(&self, user: &str) -> String {
        let tag = hmac::sign(&self.key, user.as_bytes());
        format!("{}:{}", self.key_id, hex(&tag.as_ref()[..16]))
    }
}

/// SHA-256 of a client key, as configured in `[[auth.keys]] sha256`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// SHA-256 fed in pieces.
pub struct Sha256(digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, data: impl AsRef<[u8]>) {
        self.0.update(data.as_ref());
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// Compares two digests without an early exit, so timing reveals nothing about
/// how many leading bytes matched.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Compares two secrets in constant time by comparing their SHA-256 digests,
/// which also hides their lengths.
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    digest_eq(&sha256(given), &sha256(expected))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_hash_is_keyed_and_stable() {
        let a = UserHasher::new(b"secret-a");
        let b = UserHasher::new(b"secret-b");
        assert_eq!(a.hash("alice"), a.hash("alice"));
        assert_ne!(a.hash("alice"), a.hash("bob"));
        assert_ne!(a.hash("alice"), b.hash("alice"));
        assert!(a.hash("alice").starts_with("k1:"));
        assert_eq!(a.hash("alice").len(), 35);
        let rotated = UserHasher::with_id("k2", b"secret-a");
        assert_ne!(
            rotated.hash("alice"),
            a.hash("alice"),
            "the key id is part of the hash"
        );
        assert!(!a.hash("alice").contains("alice"));
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secret_comparison() {
        assert!(secret_eq(b"token", b"token"));
        assert!(!secret_eq(b"token", b"tokem"));
        assert!(!secret_eq(b"tok", b"token"));
    }
}
