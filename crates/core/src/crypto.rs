//! Encryption of secrets at rest (in PostgreSQL) and in transit (inside broker messages):
//! XChaCha20-Poly1305 with a random 192-bit nonce, under keys from `HOOKWIRE_ENCRYPTION_KEY`.
//!
//! A sealed value reads `hw1:<key id>:<base64(nonce ‖ ciphertext)>`. The key id (the first 4 bytes
//! of the key's SHA-256, in hex) lets a key be rotated: new values are sealed with the current key,
//! and values sealed with a retired key still open while that key is listed in
//! `HOOKWIRE_ENCRYPTION_KEYS_RETIRED`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const FORMAT: &str = "hw1";
const NONCE_LEN: usize = 24;

/// Why a key or a sealed value was refused. None of them carries key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("an encryption key must be base64 of exactly 32 bytes")]
    MalformedKey,
    #[error("the sealed value is not in the `hw1:<key id>:<data>` form")]
    MalformedValue,
    #[error("no configured key has the id `{0}`")]
    UnknownKey(String),
    #[error("the sealed value does not open with its key (tampered, or the wrong key)")]
    Tampered,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The current key and any retired ones. `Debug` shows key ids only.
pub struct Keyring {
    current: Key,
    retired: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("retired", &self.retired.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

fn parse_key(encoded: &str) -> Result<Key, CryptoError> {
    let bytes = B64.decode(encoded.trim()).map_err(|_| CryptoError::MalformedKey)?;
    if bytes.len() != 32 {
        return Err(CryptoError::MalformedKey);
    }
    let digest = Sha256::digest(&bytes);
    let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| CryptoError::MalformedKey)?;
    Ok(Key { id, cipher })
}

/// `N` bytes from the operating system's random source.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

impl Keyring {
    /// A keyring from the base64 current key and a comma-separated list of retired keys.
    pub fn new(current: &str, retired: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            current: parse_key(current)?,
            retired: retired
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .map(parse_key)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals a secret with the current key.
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce: [u8; NONCE_LEN] = random();
        let ciphertext = self
            .current
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut data = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ciphertext);
        format!("{FORMAT}:{}:{}", self.current.id, B64.encode(data))
    }

    /// Opens a value sealed with the current key or a retired one.
    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(FORMAT), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::MalformedValue);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let data = B64.decode(data).map_err(|_| CryptoError::MalformedValue)?;
        if data.len() < NONCE_LEN {
            return Err(CryptoError::MalformedValue);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let plaintext = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plaintext).map_err(|_| CryptoError::Tampered)
    }

    /// Whether a sealed value should be sealed again with the current key.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        sealed.split(':').nth(1) != Some(self.current.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn seals_and_opens_without_showing_the_plaintext() {
        let ring = Keyring::new(K1, "").unwrap();
        let sealed = ring.seal("my-secret-token");
        assert!(sealed.starts_with(&format!("hw1:{}:", ring.current_key_id())));
        assert!(!sealed.contains("my-secret-token"));
        assert_ne!(sealed, ring.seal("my-secret-token"), "every seal uses a fresh nonce");
        assert_eq!(ring.open(&sealed).unwrap(), "my-secret-token");
    }

    #[test]
    fn opens_values_of_a_retired_key_after_rotation() {
        let old = Keyring::new(K1, "").unwrap();
        let sealed = old.seal("s3");
        let rotated = Keyring::new(K2, K1).unwrap();
        assert_eq!(rotated.open(&sealed).unwrap(), "s3");
        assert!(rotated.needs_reseal(&sealed));
        let without_old = Keyring::new(K2, "").unwrap();
        assert!(matches!(without_old.open(&sealed), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn refuses_tampered_and_malformed_values() {
        let ring = Keyring::new(K1, "").unwrap();
        let sealed = ring.seal("s3");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            ring.open(&String::from_utf8(bytes).unwrap()),
            Err(CryptoError::Tampered)
        );
        assert_eq!(ring.open("plain"), Err(CryptoError::MalformedValue));
        assert_eq!(Keyring::new("c2hvcnQ=", "").unwrap_err(), CryptoError::MalformedKey);
    }
}
