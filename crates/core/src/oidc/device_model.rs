//! What a device sign-in (RFC 8628) is made of: the user code people read off a TV or a
//! terminal and type or scan, the stored authorization and its states. The user code has 8
//! letters from a 20-consonant alphabet (no vowels, so no words; RFC 8628 §6.1): 20^8 ≈
//! 2^34.6 codes, which is why typing attempts are rate-limited and a code lives minutes.

use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::domain::{JourneyId, UserId};
use crate::error::{DomainError, Result};

/// The letters of a user code.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;

/// A user code, normalised: 8 upper-case letters of [`USER_CODE_ALPHABET`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl UserCode {
    /// A random code.
    pub fn generate() -> Result<Self> {
        let mut code = String::with_capacity(USER_CODE_LEN);
        while code.len() < USER_CODE_LEN {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| DomainError::Internal(format!("random source failed: {e}")))?;
            // 240 = 12 × 20: rejecting larger bytes keeps every letter equally likely.
            for b in bytes.into_iter().filter(|b| *b < 240) {
                if code.len() < USER_CODE_LEN {
                    code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
                }
            }
        }
        Ok(Self(code))
    }

    /// Parses what a person typed: case, spaces and dashes do not matter; anything else
    /// (a vowel, a digit, too few or too many letters) is refused with what is wrong.
    pub fn parse(raw: &str) -> Result<Self> {
        let invalid = |why: &str| {
            DomainError::invalid(
                "invalid-user-code",
                format!("{why}: a device code has 8 letters, shown like BCDF-GHJK"),
            )
        };
        if raw.len() > 64 {
            return Err(invalid("the code is too long"));
        }
        let mut code = String::with_capacity(USER_CODE_LEN);
        for c in raw.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let up = c.to_ascii_uppercase();
            if !up.is_ascii() || !USER_CODE_ALPHABET.contains(&(up as u8)) {
                return Err(invalid(&format!("{c:?} is not in a device code")));
            }
            code.push(up);
        }
        if code.len() != USER_CODE_LEN {
            return Err(invalid(&format!("the code has {} letters", code.len())));
        }
        Ok(Self(code))
    }

    /// As shown: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    /// Hex SHA-256 of the normalised code (how storage finds it).
    pub fn digest(&self) -> String {
        super::model::digest(&self.0)
    }

    /// Three codes in an order derived from the authorization, one of them this one: a
    /// person who scanned the QR (and so never typed the code) confirms by picking the one
    /// the device shows. The two others differ from it in at least four letters.
    pub fn choices(&self, authorization_id: &str) -> [String; 3] {
        let seed: [u8; 32] = Sha256::digest(format!("{authorization_id}:{}", self.0).as_bytes()).into();
        let decoy = |offset: usize| -> String {
            let mut letters: Vec<u8> = self.0.bytes().collect();
            for (i, letter) in letters.iter_mut().enumerate() {
                let pick = USER_CODE_ALPHABET[usize::from(seed[offset + i]) % 20];
                // Every other letter is forced to differ; the rest are random.
                *letter = if i % 2 == 0 && pick == *letter {
                    USER_CODE_ALPHABET[(usize::from(seed[offset + i]) + 1) % 20]
                } else {
                    pick
                };
            }
            let code = UserCode(String::from_utf8_lossy(&letters).into_owned());
            code.display()
        };
        let (a, mut b) = (decoy(0), decoy(8));
        if b == a {
            b = decoy(16);
        }
        let real = self.display();
        match seed[24] % 3 {
            0 => [real, a, b],
            1 => [a, real, b],
            _ => [a, b, real],
        }
    }
}

/// Where a device sign-in is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// Waiting for someone to enter or scan the code.
    Pending,
    /// A signed-in browser entered or scanned it and sees the confirmation.
    Claimed,
    /// Approved; the device's next poll gets tokens.
    Approved,
    /// Denied on the confirming browser.
    Denied,
    /// Stopped by the server (a wrong code picked).
    Rejected,
    /// The device got its tokens.
    Redeemed,
    /// Its time ran out.
    Expired,
}

impl DeviceState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Claimed => "claimed",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Rejected => "rejected",
            Self::Redeemed => "redeemed",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "claimed" => Self::Claimed,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "rejected" => Self::Rejected,
            "redeemed" => Self::Redeemed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    /// No step leads out of it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Denied | Self::Rejected | Self::Redeemed | Self::Expired)
    }
}

/// How the confirming browser got the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimVia {
    /// Typed: typing it is the confirmation.
    Typed,
    /// Scanned from the device's QR: the person must pick the code among three.
    Scanned,
}

impl ClaimVia {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Typed => "typed",
            Self::Scanned => "scanned",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "typed" => Some(Self::Typed),
            "scanned" => Some(Self::Scanned),
            _ => None,
        }
    }
}

/// The browser that claimed a device sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClaim {
    /// Digest of its session token.
    pub session_digest: String,
    /// Its user.
    pub user_id: UserId,
    /// Its IP.
    pub ip: Option<String>,
    /// Typed or scanned.
    pub via: ClaimVia,
}

/// One device sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// Random id.
    pub id: String,
    /// Digest of the device code (the device's secret for polling).
    pub device_code_digest: String,
    /// Digest of the user code.
    pub user_code_digest: String,
    /// The client.
    pub client_id: String,
    /// Requested scopes, space-separated.
    pub scope: String,
    /// The journey its events go to.
    pub journey_id: JourneyId,
    /// Where it is.
    pub state: DeviceState,
    /// The device's IP.
    pub device_ip: Option<String>,
    /// The device's user agent.
    pub device_ua: Option<String>,
    /// When the device asked.
    pub created_at: Millis,
    /// When it ends.
    pub expires_at: Millis,
    /// How long the device must wait between polls.
    pub interval_ms: Millis,
    /// The device's last poll (0: never).
    pub polled_at: Millis,
    /// Who entered or scanned the code.
    pub claim: Option<DeviceClaim>,
    /// When it was approved (0: not).
    pub approved_at: Millis,
    /// Why it was denied, rejected or expired.
    pub reason: Option<String>,
    /// The last change.
    pub updated_at: Millis,
}

/// A compare-and-set step of a device sign-in.
#[derive(Debug, Clone)]
pub struct DeviceTransition {
    /// The authorization.
    pub id: String,
    /// Only from this state.
    pub from: DeviceState,
    /// To this one.
    pub to: DeviceState,
    /// Only when this session claimed it (None: anyone, for claims and the janitor).
    pub session: Option<String>,
    /// The claim to record (pending → claimed).
    pub claim: Option<DeviceClaim>,
    /// Why (denied, rejected, expired).
    pub reason: Option<String>,
    /// Now.
    pub now: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn codes_parse_whatever_the_case_and_dashes() {
        let code = UserCode::parse("bcdf-ghjk").unwrap();
        assert_eq!(code.display(), "BCDF-GHJK");
        assert_eq!(UserCode::parse(" BCDF GHJK ").unwrap(), code);
        for bad in ["BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "BCDF·GHJK"] {
            let e = UserCode::parse(bad).unwrap_err();
            assert_eq!(e.code(), "invalid-user-code", "{bad}");
        }
    }

    #[test]
    fn generated_codes_use_the_alphabet() {
        for _ in 0..100 {
            let code = UserCode::generate().unwrap();
            assert_eq!(UserCode::parse(&code.display()).unwrap(), code);
        }
    }

    #[test]
    fn choices_hold_the_code_once_and_are_stable() {
        for _ in 0..200 {
            let code = UserCode::generate().unwrap();
            let c = code.choices("some-id");
            assert_eq!(c.iter().filter(|x| **x == code.display()).count(), 1, "{c:?}");
            assert!(c[0] != c[1] && c[1] != c[2] && c[0] != c[2], "{c:?}");
            assert!(c.iter().all(|x| UserCode::parse(x).is_ok()));
            assert_eq!(c, code.choices("some-id"));
        }
    }
}
