//! Facts from a registration's authenticator data that webauthn-rs does not keep for
//! every attestation format: the AAGUID and the BE/BS flags, read from the attestation
//! object with webauthn-rs's own authenticator-data parser.

use serde::Deserialize;
use uuid::Uuid;
use webauthn_rs_core::internals::AuthenticatorData;
use webauthn_rs_core::proto::Registration;

use crate::error::{DomainError, VerificationFailure};

/// What the authenticator data says about a new credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationFacts {
    /// The authenticator's AAGUID (nil when it sent zeros).
    pub aaguid: Uuid,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backup_state: bool,
}

#[derive(Deserialize)]
struct AttestationObjectView<'a> {
    #[serde(rename = "authData", with = "serde_bytes_borrowed")]
    auth_data: &'a [u8],
}

mod serde_bytes_borrowed {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8]>::deserialize(d)
    }
}

impl RegistrationFacts {
    /// Reads the facts from a CBOR attestation object.
    pub fn from_attestation_object(bytes: &[u8]) -> Result<Self, DomainError> {
        let malformed = || DomainError::Verification(VerificationFailure::Malformed);
        let view: AttestationObjectView<'_> = serde_cbor_2::from_slice(bytes).map_err(|_| malformed())?;
        let data = AuthenticatorData::<Registration>::try_from(view.auth_data).map_err(|_| malformed())?;
        let aaguid = data.acd.as_ref().map(|acd| Uuid::from_bytes(acd.aaguid)).unwrap_or_default();
        Ok(Self { aaguid, backup_eligible: data.backup_eligible, backup_state: data.backup_state })
    }
}
