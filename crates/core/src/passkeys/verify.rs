//! One place that turns webauthn-rs's errors into Handoff's stable failure codes.

use webauthn_rs_core::error::WebauthnError as W;

use crate::error::{DomainError, VerificationFailure as F};

/// Maps a webauthn-rs error to a domain error with a stable code.
pub(crate) fn map_webauthn_error(err: W) -> DomainError {
    let failure = match err {
        W::InvalidRPOrigin | W::CredentialCrossOrigin => F::OriginMismatch,
        W::InvalidRPIDHash => F::RpIdMismatch,
        W::MismatchedChallenge | W::ChallengeNotFound => F::ChallengeMismatch,
        W::InvalidClientDataType => F::WrongCeremonyType,
        W::UserNotVerified => F::UserNotVerified,
        W::UserNotPresent => F::UserNotPresent,
        W::AuthenticationFailure | W::TrustFailure => F::InvalidSignature,
        W::COSEKeyInvalidAlgorithm
        | W::CredentialInsecureCryptography
        | W::CredentialAlteredAlgFromRequest
        | W::COSEKeyEDUnsupported => F::UnsupportedAlgorithm,
        W::CredentialExcludedFromRequest => F::CredentialExcluded,
        W::CredentialNotFound => return DomainError::UnknownCredential,
        W::CredentialPossibleCompromise => return DomainError::CounterRegression,
        W::CredentialBackupEligibilityInconsistent => F::BackupEligibilityChanged,
        W::Configuration | W::InconsistentUserVerificationPolicy | W::InvalidUsername => {
            return DomainError::Internal(format!("webauthn configuration: {err:?}"));
        }
        W::OpenSSLError(e) => {
            // A signature that does not parse reaches OpenSSL as garbage: the client's fault.
            tracing::debug!(error = %e, "openssl rejected the response");
            F::InvalidSignature
        }
        _ => F::Malformed,
    };
    DomainError::Verification(failure)
}
