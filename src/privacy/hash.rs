//! Keyed hashing of user ids, a privacy measure shared by capture, feedback
//! and erasure, so it lives here rather than in any one of them.
//!
//! A user id is stored only as HMAC-SHA256(secret, id): the same user always maps
//! to the same value, so sessions and feedback can be correlated, while without
//! the secret nobody can test a guessed id against the store.

use ring::hmac;

use crate::crypto::hex;

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
}
