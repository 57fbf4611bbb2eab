//! Opaque identifiers: users, ceremonies and journeys are UUIDs; credential ids are the
//! authenticator's bytes, written base64url without padding wherever they are text.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! uuid_id {
    ($name:ident, $what:literal, $code:literal, $make:expr, $how:literal) => {
        #[doc = concat!("The id of a ", $what, ".")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            #[doc = concat!("A new ", $what, " id: ", $how, ".")]
            pub fn new() -> Self {
                Self($make)
            }

            #[doc = concat!("Parses a ", $what, " id from its text form.")]
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| DomainError::invalid($code, concat!($what, " id is not a UUID")))
            }

            /// The UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }

            #[doc = concat!("The ", $what, " id with this UUID.")]
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

// A user id is the WebAuthn user handle that authenticators keep: wholly random, so it says
// nothing about the account (not even when it was made).
uuid_id!(UserId, "user", "invalid-user-id", Uuid::new_v4(), "random (version 4)");
// Ceremonies and journeys are keys of tables written on every sign-in. Time-ordered ids
// (version 7: a millisecond timestamp, then 74 random bits) land next to the rows written
// just before in every index they are in, so a commit rewrites a few pages at the right-hand
// edge of each B-tree instead of one random page per row. The 74 random bits keep them
// unguessable; the timestamp they show is already in the responses that carry them.
uuid_id!(CeremonyId, "ceremony", "invalid-ceremony-id", Uuid::now_v7(), "time-ordered (version 7)");
uuid_id!(JourneyId, "journey", "invalid-journey-id", Uuid::now_v7(), "time-ordered (version 7)");

/// A WebAuthn credential id (1–1023 bytes per the spec).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(Vec<u8>);

impl CredentialId {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Parses base64url text (padding tolerated).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(trimmed)
            .map_err(|_| DomainError::invalid("invalid-credential-id", "credential id is not base64url"))?;
        if bytes.is_empty() || bytes.len() > 1023 {
            return Err(DomainError::invalid("invalid-credential-id", "credential id must be 1 to 1023 bytes"));
        }
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// base64url without padding.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_round_trip_and_refuse_garbage() {
        let id = CeremonyId::new();
        assert_eq!(CeremonyId::parse(&id.to_string()).unwrap(), id);
        let err = CeremonyId::parse("nope").unwrap_err();
        assert_eq!(crate::ErrorCode::code(&err), "invalid-ceremony-id");
    }

    #[test]
    fn credential_ids_are_base64url() {
        let id = CredentialId::parse("AQID").unwrap();
        assert_eq!(id.as_bytes(), &[1, 2, 3]);
        assert_eq!(id.to_base64url(), "AQID");
        assert!(CredentialId::parse("AQID==").is_ok());
        assert!(CredentialId::parse("a+b/").is_err());
        assert!(CredentialId::parse("").is_err());
    }
}
