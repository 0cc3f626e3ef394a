//! Encryption at rest of the stored texts that carry what users wrote: the
//! interaction's request and response bodies, metadata and error, and the
//! feedback's value and metadata (`privacy.encrypt_at_rest`).
//!
//! Each text is sealed with AES-256-GCM (the raw-payload [`Vault`]) under a
//! fresh nonce, bound to its row id and column name, so a ciphertext moved to
//! another row or column fails to open. It is stored as a BLOB in the same
//! column: `F1`, the key id's length and bytes, the nonce, the ciphertext.
//! A TEXT value in such a column is a row written without encryption (before
//! it was turned on) and reads as it is, so turning it on needs no migration;
//! turning it off leaves sealed rows unreadable until the key is given again.
//!
//! Columns that queries filter or group on (route, version, model, status,
//! user hash, times) stay plain: they hold names and hashes, not user text.
//! Dataset files written by a build are plain by design: trainers read them.

use crate::crypto::vault::{Sealed, Vault};

/// First byte of a sealed value, and the format's version.
const MAGIC: u8 = 0xF1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CipherError {
    #[error(
        "the row is encrypted at rest; start the gateway with privacy.encrypt_at_rest and its key"
    )]
    NoKey,
    #[error("the row was encrypted with key `{0}`, which is not the configured store key")]
    WrongKey(String),
    #[error("an encrypted value cannot be opened: wrong key or damaged data")]
    Damaged,
}

/// Associated data of a value: its row and column.
fn context(row_id: &str, column: &str) -> Vec<u8> {
    let mut c = Vec::with_capacity(row_id.len() + column.len() + 1);
    c.extend_from_slice(row_id.as_bytes());
    c.push(0);
    c.extend_from_slice(column.as_bytes());
    c
}

/// Seals `text` for `row_id`'s `column`.
pub fn seal(vault: &Vault, text: &str, row_id: &str, column: &str) -> Vec<u8> {
    // A nonce comes from the system's randomness, which does not fail on the
    // systems the gateway runs on; if it ever did, nothing is stored in the
    // clear: the value is dropped and the row says so.
    match vault.seal(text.as_bytes(), &context(row_id, column)) {
        Ok(s) => {
            let mut out =
                Vec::with_capacity(2 + s.key_id.len() + s.nonce.len() + s.ciphertext.len());
            out.push(MAGIC);
            out.push(s.key_id.len() as u8);
            out.extend_from_slice(s.key_id.as_bytes());
            out.extend_from_slice(&s.nonce);
            out.extend_from_slice(&s.ciphertext);
            out
        }
        Err(e) => {
            tracing::error!(error = %e, column, "value not encrypted; stored empty");
            Vec::new()
        }
    }
}

/// Opens a value [`seal`] made.
pub fn open(
    vault: Option<&Vault>,
    blob: &[u8],
    row_id: &str,
    column: &str,
) -> Result<String, CipherError> {
    if blob.is_empty() {
        return Ok(String::new());
    }
    let vault = vault.ok_or(CipherError::NoKey)?;
    let (&magic, rest) = blob.split_first().ok_or(CipherError::Damaged)?;
    let (&id_len, rest) = rest.split_first().ok_or(CipherError::Damaged)?;
    if magic != MAGIC || rest.len() < id_len as usize + NONCE_LEN {
        return Err(CipherError::Damaged);
    }
    let (key_id, rest) = rest.split_at(id_len as usize);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let sealed = Sealed {
        key_id: String::from_utf8_lossy(key_id).into_owned(),
        nonce: nonce.to_vec(),
        ciphertext: ciphertext.to_vec(),
    };
    let plain = vault
        .open(&sealed, &context(row_id, column))
        .map_err(|e| match e {
            crate::crypto::vault::VaultError::WrongKey(k) => CipherError::WrongKey(k),
            _ => CipherError::Damaged,
        })?;
    String::from_utf8(plain).map_err(|_| CipherError::Damaged)
}

/// Reads a column that may hold a sealed value: NULL, TEXT as it is, or a
/// BLOB opened with `vault`.
pub fn text_at(
    r: &rusqlite::Row<'_>,
    idx: usize,
    vault: Option<&Vault>,
    row_id: &str,
    column: &str,
) -> rusqlite::Result<Option<String>> {
    use rusqlite::types::ValueRef;
    match r.get_ref(idx)? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => open(vault, b, row_id, column).map(Some).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Blob, Box::new(e))
        }),
        ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Integer(n) => Ok(Some(n.to_string())),
        ValueRef::Real(x) => Ok(Some(x.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_bound_to_row_and_column() {
        let v = Vault::new(&[3; 32], "s1");
        let blob = seal(&v, "the user's words", "id-1", "request_body");
        assert!(!blob.windows(5).any(|w| w == b"words"));
        assert_eq!(
            open(Some(&v), &blob, "id-1", "request_body").unwrap(),
            "the user's words"
        );
        assert_eq!(
            open(Some(&v), &blob, "id-2", "request_body"),
            Err(CipherError::Damaged)
        );
        assert_eq!(
            open(Some(&v), &blob, "id-1", "error"),
            Err(CipherError::Damaged)
        );
        assert_eq!(
            open(None, &blob, "id-1", "request_body"),
            Err(CipherError::NoKey)
        );
        let other = Vault::new(&[3; 32], "s2");
        assert_eq!(
            open(Some(&other), &blob, "id-1", "request_body"),
            Err(CipherError::WrongKey("s1".into()))
        );
        assert_eq!(
            open(Some(&v), &blob[..10], "id-1", "request_body"),
            Err(CipherError::Damaged)
        );
    }
}
