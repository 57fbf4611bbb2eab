//! The domain's error type. Every variant has a stable, kebab-case code that integrators
//! can match on; the server maps codes to HTTP statuses in one place (`ApiError`). No
//! HTTP here: a domain error says *what* went wrong, not how a transport reports it.

use thiserror::Error;

/// A stable machine-readable error code (for example `ceremony-expired`).
pub trait ErrorCode {
    /// The code, stable across releases.
    fn code(&self) -> &'static str;
}

/// Why a WebAuthn response was not accepted. Each has its own stable code so that
/// journeys and integrators can tell a configuration problem from an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationFailure {
    /// The client data's origin is not one of the configured origins.
    OriginMismatch,
    /// The authenticator data was made for another RP ID.
    RpIdMismatch,
    /// The signed challenge is not the one this ceremony issued.
    ChallengeMismatch,
    /// The client data type is not `webauthn.create`/`webauthn.get` as expected.
    WrongCeremonyType,
    /// The assertion signature does not verify with the stored public key.
    InvalidSignature,
    /// The authenticator did not verify the user (UV flag unset).
    UserNotVerified,
    /// The authenticator did not see the user (UP flag unset).
    UserNotPresent,
    /// The response could not be decoded (base64, CBOR, JSON or authenticator data).
    Malformed,
    /// The credential uses an algorithm this server does not accept.
    UnsupportedAlgorithm,
    /// The authenticator created a credential that the request excluded.
    CredentialExcluded,
    /// The response names a credential other than the ones this ceremony allowed.
    CredentialNotAllowed,
    /// The backup-eligibility flag changed since registration, which the spec forbids.
    BackupEligibilityChanged,
}

impl VerificationFailure {
    /// The stable code of this failure.
    pub fn code(self) -> &'static str {
        match self {
            Self::OriginMismatch => "origin-mismatch",
            Self::RpIdMismatch => "rp-id-mismatch",
            Self::ChallengeMismatch => "challenge-mismatch",
            Self::WrongCeremonyType => "wrong-ceremony-type",
            Self::InvalidSignature => "invalid-signature",
            Self::UserNotVerified => "user-not-verified",
            Self::UserNotPresent => "user-not-present",
            Self::Malformed => "malformed-credential",
            Self::UnsupportedAlgorithm => "unsupported-algorithm",
            Self::CredentialExcluded => "credential-excluded",
            Self::CredentialNotAllowed => "credential-not-allowed",
            Self::BackupEligibilityChanged => "backup-eligibility-changed",
        }
    }

    /// A sentence for humans.
    pub fn message(self) -> &'static str {
        match self {
            Self::OriginMismatch => "the response was made for an origin this server does not accept",
            Self::RpIdMismatch => "the authenticator data was made for another relying party ID",
            Self::ChallengeMismatch => "the response signs a different challenge than this ceremony issued",
            Self::WrongCeremonyType => "the client data type does not match this ceremony",
            Self::InvalidSignature => "the assertion signature does not verify with the stored public key",
            Self::UserNotVerified => "the authenticator did not verify the user (user verification is required)",
            Self::UserNotPresent => "the authenticator did not confirm user presence",
            Self::Malformed => "the credential response could not be decoded",
            Self::UnsupportedAlgorithm => "the credential uses an algorithm this server does not accept",
            Self::CredentialExcluded => "this authenticator already holds a passkey for the account",
            Self::CredentialNotAllowed => "the response names a credential this ceremony did not allow",
            Self::BackupEligibilityChanged => "the credential's backup eligibility changed since it was registered",
        }
    }
}

/// Everything that can go wrong in a domain operation.
#[derive(Debug, Error)]
pub enum DomainError {
    /// An input value is not acceptable; `code` names it (e.g. `invalid-identifier`).
    #[error("{message}")]
    Invalid {
        /// Stable code naming what is wrong.
        code: &'static str,
        /// A sentence naming the field and the problem.
        message: String,
    },
    /// The identifier belongs to another account.
    #[error("this identifier is already registered; sign in to add a passkey to it")]
    IdentifierTaken,
    /// The request needs a signed-in session.
    #[error("you are not signed in")]
    NotSignedIn,
    /// The ceremony id is unknown or was already used.
    #[error("no such ceremony: it does not exist or was already used")]
    CeremonyNotFound,
    /// The ceremony existed but its time ran out.
    #[error("the ceremony expired; start again")]
    CeremonyExpired,
    /// The WebAuthn response did not verify.
    #[error("{}", .0.message())]
    Verification(VerificationFailure),
    /// No account holds the credential the response names.
    #[error("no account holds this passkey")]
    UnknownCredential,
    /// The signature counter went backwards: a possibly cloned authenticator.
    #[error("the authenticator's signature counter went backwards; this passkey may be cloned")]
    CounterRegression,
    /// The credential id is already registered.
    #[error("this passkey is already registered")]
    CredentialExists,
    /// The operator does not accept passkeys from this provider (`blocked_providers`, or
    /// not in `allowed_providers`).
    #[error("this site does not accept passkeys from {0}; use a passkey from another provider")]
    ProviderNotAllowed(String),
    /// The signed-in user has no passkey with this id.
    #[error("no passkey with this id belongs to the signed-in account")]
    PasskeyNotFound,
    /// No QR attempt has this id or token (or the token was rotated away).
    #[error("no such QR code: it does not exist, or a newer code replaced it")]
    QrNotFound,
    /// The QR attempt's time ran out.
    #[error("this QR code expired; show a new one")]
    QrExpired,
    /// Another phone already scanned this QR code.
    #[error("another device already scanned this QR code; the attempt is refused")]
    QrClaimedElsewhere,
    /// The attempt is not in a state that allows this step.
    #[error("this QR sign-in is {0}; this step is not possible any more")]
    QrWrongState(&'static str),
    /// The phone is signed in to another account than the identifier typed on the
    /// computer, and the operator refuses such approvals (the default).
    #[error("the computer asked to sign in as another account than the one on this phone; the sign-in was stopped")]
    QrWrongAccount,
    /// The phone and the computer are far apart, and the operator refuses such approvals.
    #[error(
        "the computer is far from this phone, so this sign-in was stopped; approve only a computer in front of you"
    )]
    QrFarApart,
    /// The number picked on the phone is not the one on the desktop.
    #[error("that is not the number shown on the computer; the sign-in was stopped")]
    WrongMatchCode,
    /// A sensitive action needs a user-verified passkey ceremony on this device within the
    /// step-up window (PRODUCT §8): adding or deleting a passkey, ending other sessions,
    /// approving a QR request.
    #[error("confirm it is you with your passkey on this device first")]
    ReauthRequired,
    /// No live device sign-in has this user code (RFC 8628): mistyped, or already used.
    #[error("no device sign-in has this code; check the code the device shows")]
    DeviceCodeNotFound,
    /// The device sign-in's time ran out.
    #[error("this device code expired; start signing in on the device again")]
    DeviceCodeExpired,
    /// Another browser already entered or scanned this device code.
    #[error("another browser already entered this device code; the sign-in is refused")]
    DeviceClaimedElsewhere,
    /// The device sign-in is not in a state that allows this step.
    #[error("this device sign-in is {0}; this step is not possible any more")]
    DeviceWrongState(&'static str),
    /// The code picked is not the one the device shows.
    #[error("that is not the code shown on the device; the sign-in was stopped")]
    WrongDeviceCode,
    /// The email or recovery code is not the right one; `tries_left` more may be tried.
    #[error("that code is not right; {tries_left} tries left")]
    CodeWrong {
        /// Tries left on this code (0: the next one is refused).
        tries_left: u32,
    },
    /// The email code's time ran out.
    #[error("this code expired; ask for a new one")]
    CodeExpired,
    /// Every try of the email code was used.
    #[error("too many wrong codes; ask for a new one")]
    TooManyTries,
    /// The recovery link is unknown, used or expired.
    #[error("this recovery link does not work any more: it was used, it expired, or it is incomplete")]
    RecoveryLinkInvalid,
    /// The desktop's redemption secret is missing or wrong.
    #[error("this browser did not start this QR sign-in")]
    RedeemRefused,
    /// The storage backend failed; details are logged, not shown.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Something that should not happen; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// Shorthand for an [`DomainError::Invalid`] error.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    /// True for errors whose details must not reach a client.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Storage(_) | Self::Internal(_))
    }
}

impl ErrorCode for DomainError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
            Self::IdentifierTaken => "identifier-taken",
            Self::NotSignedIn => "not-signed-in",
            Self::CeremonyNotFound => "ceremony-not-found",
            Self::CeremonyExpired => "ceremony-expired",
            Self::Verification(f) => f.code(),
            Self::UnknownCredential => "unknown-credential",
            Self::CounterRegression => "counter-regression",
            Self::CredentialExists => "credential-exists",
            Self::PasskeyNotFound => "passkey-not-found",
            Self::ProviderNotAllowed(_) => "provider-not-allowed",
            Self::QrNotFound => "qr-not-found",
            Self::QrExpired => "qr-expired",
            Self::QrClaimedElsewhere => "qr-already-scanned",
            Self::QrWrongState(_) => "qr-wrong-state",
            Self::WrongMatchCode => "wrong-number",
            Self::QrWrongAccount => "wrong-account",
            Self::QrFarApart => "far-apart",
            Self::ReauthRequired => "reauth-required",
            Self::RedeemRefused => "redeem-refused",
            Self::CodeWrong { .. } => "code-wrong",
            Self::CodeExpired => "code-expired",
            Self::TooManyTries => "too-many-tries",
            Self::RecoveryLinkInvalid => "recovery-link-invalid",
            Self::DeviceCodeNotFound => "device-code-not-found",
            Self::DeviceCodeExpired => "device-code-expired",
            Self::DeviceClaimedElsewhere => "device-code-claimed",
            Self::DeviceWrongState(_) => "device-wrong-state",
            Self::WrongDeviceCode => "wrong-code",
            Self::Storage(_) | Self::Internal(_) => "internal",
        }
    }
}

/// Domain results.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;
