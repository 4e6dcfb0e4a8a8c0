//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`, keyed with the base64-decoded part of a `whsec_…` secret. Signing and
//! verification live together so that the tests of one are the tests of the other.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every signing secret, as in the Standard Webhooks libraries.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a `webhook-timestamp` may be from now before [`verify`] refuses it (the libraries' default).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why a secret or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("a signing secret must be `whsec_` followed by base64")]
    MalformedSecret,
    #[error("a signing secret must hold between 24 and 64 bytes")]
    SecretLength,
    #[error("the webhook-timestamp is not a unix time in seconds")]
    MalformedTimestamp,
    #[error("the webhook-timestamp is too far from now")]
    TimestampOutOfTolerance,
    #[error("no signature matches")]
    NoMatch,
}

/// A signing key, decoded from its `whsec_…` form. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(****)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>`. A bare base64 string is accepted too, as the reference libraries do.
    pub fn parse(secret: &str) -> Result<Self, SigningError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = B64.decode(encoded).map_err(|_| SigningError::MalformedSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SigningError::SecretLength);
        }
        Ok(Self(key))
    }

    /// A new random secret in its `whsec_…` form (32 random bytes).
    pub fn generate() -> String {
        let key: [u8; 32] = crate::crypto::random();
        format!("{SECRET_PREFIX}{}", B64.encode(key))
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", B64.encode(tag))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    fn matches(&self, msg_id: &str, timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
        // verify_slice compares in constant time.
        self.mac(msg_id, timestamp, body).verify_slice(signature).is_ok()
    }
}

/// The `webhook-signature` header value for a message: one `v1,…` entry per key, space-separated.
/// During a secret rotation the new key comes first and the old one follows.
pub fn signature_header(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| key.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a received webhook the way a receiver should: the timestamp within
/// [`TOLERANCE_SECONDS`] of `now`, and at least one `v1` signature in the header made with `key`.
pub fn verify(
    key: &SigningKey,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SigningError> {
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| SigningError::MalformedTimestamp)?;
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SigningError::TimestampOutOfTolerance);
    }
    let found = signature_header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| B64.decode(sig).ok())
        .any(|sig| key.matches(msg_id, timestamp, body, &sig));
    if found {
        Ok(())
    } else {
        Err(SigningError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference vectors (also in ../shared/NOTES.md).
    const VECTORS: [(&str, &str, i64, &str, &str); 2] = [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];

    #[test]
    fn signs_the_reference_vectors() {
        for (secret, id, ts, body, expected) in VECTORS {
            let key = SigningKey::parse(secret).unwrap();
            assert_eq!(key.sign(id, ts, body.as_bytes()), expected);
        }
    }

    #[test]
    fn verifies_the_reference_vectors_and_refuses_tampering() {
        for (secret, id, ts, body, expected) in VECTORS {
            let key = SigningKey::parse(secret).unwrap();
            let ts_s = ts.to_string();
            assert_eq!(verify(&key, id, &ts_s, expected, body.as_bytes(), ts), Ok(()));
            let tampered = format!("{body} ");
            assert_eq!(
                verify(&key, id, &ts_s, expected, tampered.as_bytes(), ts),
                Err(SigningError::NoMatch)
            );
            assert_eq!(
                verify(&key, id, &ts_s, expected, body.as_bytes(), ts + TOLERANCE_SECONDS + 1),
                Err(SigningError::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn a_rotation_header_verifies_with_either_key() {
        let new = SigningKey::parse(&SigningKey::generate()).unwrap();
        let old = SigningKey::parse(&SigningKey::generate()).unwrap();
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 10, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(verify(&new, "msg_1", "10", &header, b"{}", 10), Ok(()));
        assert_eq!(verify(&old, "msg_1", "10", &header, b"{}", 10), Ok(()));
        let other = SigningKey::parse(&SigningKey::generate()).unwrap();
        assert_eq!(
            verify(&other, "msg_1", "10", &header, b"{}", 10),
            Err(SigningError::NoMatch)
        );
    }

    #[test]
    fn refuses_malformed_secrets() {
        assert_eq!(
            SigningKey::parse("whsec_!!!").unwrap_err(),
            SigningError::MalformedSecret
        );
        assert_eq!(SigningKey::parse("whsec_AAAA").unwrap_err(), SigningError::SecretLength);
        assert!(format!("{:?}", SigningKey::parse(&SigningKey::generate()).unwrap()).contains("****"));
    }
}
