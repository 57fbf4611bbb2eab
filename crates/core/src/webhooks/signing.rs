//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` of
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the bytes after `whsec_`
//! (base64). Any Standard Webhooks library verifies them (`tests/webhooks-receiver`
//! checks every delivery with the npm `standardwebhooks` package).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{DomainError, Result};

/// The prefix of a webhook secret.
pub const PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (as Svix and the reference libraries make them).
const SECRET_BYTES: usize = 24;
/// The fewest key bytes a configured secret may carry.
const MIN_KEY_BYTES: usize = 16;

/// A new secret: `whsec_` and 24 random bytes in base64.
pub fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| DomainError::Internal(format!("random source failed: {e}")))?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The signing key of a `whsec_…` secret; refuses anything else.
pub fn key_of(secret: &str) -> Result<Vec<u8>> {
    let invalid = || {
        DomainError::invalid(
            "invalid-webhook",
            format!("a webhook secret is {PREFIX} followed by at least {MIN_KEY_BYTES} bytes in base64"),
        )
    };
    let encoded = secret.strip_prefix(PREFIX).ok_or_else(invalid)?;
    let key = STANDARD.decode(encoded).map_err(|_| invalid())?;
    if key.len() < MIN_KEY_BYTES {
        return Err(invalid());
    }
    Ok(key)
}

/// The `webhook-signature` header's value for one send.
pub fn sign(key: &[u8], message_id: &str, timestamp_seconds: i64, body: &str) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| DomainError::Internal(format!("webhook signing key refused: {e}")))?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_specifications_example() {
        // The test vector of the Standard Webhooks specification's reference libraries.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_have_keys_and_bad_ones_are_refused() {
        let secret = generate_secret().unwrap();
        assert_eq!(key_of(&secret).unwrap().len(), 24);
        assert!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(key_of("whsec_c2hvcnQ=").is_err());
        assert!(key_of("whsec_!!!").is_err());
    }
}
