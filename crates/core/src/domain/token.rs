//! Bearer secrets (session tokens): 256 random bits as base64url for the cookie, stored
//! only as a SHA-256 digest so a database leak does not leak live sessions.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::DomainError;

/// A random secret handed to a client. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// 32 random bytes from the OS.
    pub fn generate() -> Result<Self, DomainError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| DomainError::Internal(format!("random source failed: {e}")))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps a token a client presented. Anything that is not 43 base64url characters
    /// cannot be one of ours, so it is refused before it reaches storage.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() == 43 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(raw.to_owned()))
    }

    /// The text a client keeps (a cookie value).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the token: what storage keeps.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(self.0.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hide() {
        let t = SecretToken::generate().unwrap();
        assert_eq!(SecretToken::parse(t.expose()).unwrap(), t);
        assert_eq!(format!("{t:?}"), "SecretToken(…)");
        assert_eq!(t.digest().len(), 64);
        assert!(SecretToken::parse("short").is_none());
        assert!(SecretToken::parse(&"!".repeat(43)).is_none());
    }
}
