//! Encryption of raw (unredacted) payloads at rest, with AES-256-GCM.
//!
//! Each payload gets a fresh random 96-bit nonce and is bound to its interaction
//! id (associated data), so a ciphertext copied onto another row fails to open.
//! The key id is stored beside each payload so that a rotated key can still be
//! told apart. The key itself is never logged, printed or stored.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// A sealed payload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VaultError {
    #[error("payload was sealed with key `{0}`, which is not the configured raw key")]
    WrongKey(String),
    #[error("payload cannot be decrypted: wrong key or damaged data")]
    Damaged,
    #[error("no randomness available for a nonce")]
    Random,
}

pub struct Vault {
    key: LessSafeKey,
    key_id: String,
    rng: SystemRandom,
}

impl Vault {
    pub fn new(key: &[u8; 32], key_id: &str) -> Vault {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key fits AES-256");
        Vault {
            key: LessSafeKey::new(unbound),
            key_id: key_id.to_string(),
            rng: SystemRandom::new(),
        }
    }

    /// Encrypts `plaintext`, bound to `context` (the interaction id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| VaultError::Damaged)?;
        Ok(Sealed {
            key_id: self.key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext: buf,
        })
    }

    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.key_id != self.key_id {
            return Err(VaultError::WrongKey(sealed.key_id.clone()));
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| VaultError::Damaged)?;
        let mut buf = sealed.ciphertext.clone();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| VaultError::Damaged)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_context() {
        let v = Vault::new(&[7; 32], "k1");
        let s = v.seal(b"alice@example.com said hi", b"id-1").unwrap();
        assert!(
            !s.ciphertext.windows(5).any(|w| w == b"alice"),
            "ciphertext must not hold the text"
        );
        assert_eq!(v.open(&s, b"id-1").unwrap(), b"alice@example.com said hi");
        assert_eq!(v.open(&s, b"id-2"), Err(VaultError::Damaged));
        let other = Vault::new(&[8; 32], "k1");
        assert_eq!(other.open(&s, b"id-1"), Err(VaultError::Damaged));
        let rotated = Vault::new(&[7; 32], "k2");
        assert_eq!(
            rotated.open(&s, b"id-1"),
            Err(VaultError::WrongKey("k1".into()))
        );
        let s2 = v.seal(b"alice@example.com said hi", b"id-1").unwrap();
        assert_ne!(s.nonce, s2.nonce, "every payload gets its own nonce");
    }
}
