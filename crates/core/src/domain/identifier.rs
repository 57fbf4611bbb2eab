//! The identifier a person types (an email address or a username) and the name shown
//! for them. Identifiers are compared case-insensitively, so they are stored folded.

use crate::error::DomainError;

/// Longest identifier accepted, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 256;
/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 128;

/// A normalised account identifier: trimmed, lower-cased, 1–256 characters, no control
/// characters and no inner whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// Parses what a person typed.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid("invalid-identifier", "identifier is empty"));
        }
        if trimmed.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(DomainError::invalid(
                "invalid-identifier",
                format!("identifier is longer than {MAX_IDENTIFIER_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DomainError::invalid(
                "invalid-identifier",
                "identifier must not contain spaces or control characters",
            ));
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name an authenticator shows for the account (WebAuthn `user.displayName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses an optional display name; an empty or missing one falls back to the identifier.
    pub fn parse(raw: Option<&str>, identifier: &Identifier) -> Result<Self, DomainError> {
        let name = raw.map(str::trim).filter(|s| !s.is_empty());
        let Some(name) = name else {
            return Ok(Self(identifier.as_str().to_owned()));
        };
        if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(DomainError::invalid(
                "invalid-display-name",
                format!("displayName is longer than {MAX_DISPLAY_NAME_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "invalid-display-name",
                "displayName must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Wraps a stored display name.
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_trims() {
        let id = Identifier::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(id.as_str(), "alice@example.com");
    }

    #[test]
    fn refuses_empty_long_and_spaced() {
        assert!(Identifier::parse("   ").is_err());
        assert!(Identifier::parse(&"a".repeat(257)).is_err());
        assert!(Identifier::parse(&"a".repeat(256)).is_ok());
        assert!(Identifier::parse("al ice").is_err());
        assert!(Identifier::parse("al\u{0}ice").is_err());
    }

    #[test]
    fn display_name_defaults_to_identifier() {
        let id = Identifier::parse("bob").unwrap();
        assert_eq!(DisplayName::parse(None, &id).unwrap().as_str(), "bob");
        assert_eq!(DisplayName::parse(Some("  "), &id).unwrap().as_str(), "bob");
        assert_eq!(DisplayName::parse(Some("Bob B."), &id).unwrap().as_str(), "Bob B.");
        assert!(DisplayName::parse(Some(&"x".repeat(129)), &id).is_err());
    }
}
