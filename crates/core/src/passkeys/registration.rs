//! Registration: a new identifier signs up with its first passkey; a signed-in account
//! adds another. User verification and a discoverable (resident) credential are required.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, COSEAlgorithm, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};

use super::authdata::RegistrationFacts;
use super::model::{Account, PasskeyRecord, SessionUser};
use super::service::PasskeyService;
use super::verify::map_webauthn_error;
use crate::device::DeviceInfo;
use crate::domain::{CeremonyId, CredentialId, DisplayName, Identifier, UserId};
use crate::error::{DomainError, Result, VerificationFailure};
use crate::provider::Provider;
use crate::storage::CeremonyKind;
use crate::webhooks::{EventType, Message};
use serde_json::json;

/// Input of `registration/start`.
#[derive(Debug, Clone)]
pub struct RegistrationStart {
    /// The identifier to sign up with (or the signed-in account's own).
    pub identifier: Identifier,
    /// Raw display name, if the person gave one.
    pub display_name: Option<String>,
}

/// Output of `registration/start`.
#[derive(Debug, Clone)]
pub struct RegistrationStarted {
    /// The ceremony to finish.
    pub ceremony_id: CeremonyId,
    /// `PublicKeyCredentialCreationOptionsJSON`.
    pub public_key: serde_json::Value,
}

/// Input of `registration/finish`.
#[derive(Debug, Clone)]
pub struct RegistrationFinish {
    /// The ceremony.
    pub ceremony_id: CeremonyId,
    /// `RegistrationResponseJSON` as the browser sent it.
    pub credential: serde_json::Value,
    /// The device it comes from.
    pub device: DeviceInfo,
    /// The browser's device cookie.
    pub device_id: Option<String>,
}

/// Output of `registration/finish`.
#[derive(Debug, Clone)]
pub struct RegistrationFinished {
    /// The account (new or existing).
    pub user_id: UserId,
    /// The new passkey.
    pub credential_id: CredentialId,
    /// Who made it.
    pub provider: Provider,
    /// The AAGUID.
    pub aaguid: Uuid,
    /// True when the passkey made a new account (sign-up), false when it was added to
    /// the signed-in one.
    pub new_account: bool,
}

/// What a registration ceremony remembers between start and finish.
#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    state: RegistrationState,
    user_id: Uuid,
    identifier: String,
    display_name: String,
    new_account: bool,
}

/// The algorithms we accept, preferred first.
fn algorithms() -> Vec<COSEAlgorithm> {
    vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA, COSEAlgorithm::RS256]
}

impl PasskeyService {
    /// Starts a registration. A new identifier signs up; an existing one needs its own
    /// signed-in session, stepped up (or holding a grant to add a passkey here).
    #[tracing::instrument(skip_all, fields(identifier = %input.identifier))]
    pub async fn start_registration(
        &self,
        input: RegistrationStart,
        session: Option<&SessionUser>,
    ) -> Result<RegistrationStarted> {
        let existing = self.storage.accounts.find_by_identifier(&input.identifier).await?;
        // An identifier that belongs to an account other than the signed-in one is answered
        // exactly like a new one (no existence oracle); its ceremony then fails at finish
        // with `identifier-taken`, as two sign-ups racing for one new identifier do
        // (docs/decisions/0002-sign-up-enumeration.md).
        let own = existing.zip(session).filter(|(account, s)| s.user_id == account.id);
        let (user_id, display_name, exclude, new_account) = match own {
            Some((account, session)) => {
                // Adding a passkey is sensitive (PRODUCT §8): a fresh passkey ceremony on this
                // device, or the one-time grant chosen on the phone for a QR approval.
                let now = self.clock.now_ms();
                if !session.stepped_up(now) && !session.may_add_passkey(now) {
                    return Err(DomainError::ReauthRequired);
                }
                let passkeys = self.storage.accounts.passkeys_of(account.id).await?;
                let exclude = passkeys.into_iter().map(|p| p.credential.cred_id).collect();
                (account.id, account.display_name, exclude, false)
            }
            None => {
                let name = DisplayName::parse(input.display_name.as_deref(), &input.identifier)?;
                (UserId::new(), name, Vec::new(), true)
            }
        };
        let builder = self
            .core
            .new_challenge_register_builder(user_id.uuid().as_bytes(), input.identifier.as_str(), display_name.as_str())
            .map_err(map_webauthn_error)?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(UserVerificationPolicy::Required)
            .require_resident_key(true)
            .credential_algorithms(algorithms())
            .exclude_credentials(Some(exclude));
        let (options, state) = self.core.generate_challenge_register(builder).map_err(map_webauthn_error)?;
        let pending = PendingRegistration {
            state,
            user_id: user_id.uuid(),
            identifier: input.identifier.as_str().to_owned(),
            display_name: display_name.as_str().to_owned(),
            new_account,
        };
        let ceremony_id = self.put_ceremony(CeremonyKind::Registration, &pending).await?;
        let public_key = serde_json::to_value(&options.public_key)
            .map_err(|e| DomainError::Internal(format!("cannot serialise creation options: {e}")))?;
        Ok(RegistrationStarted { ceremony_id, public_key })
    }

    /// Finishes a registration: verifies the attestation, records where the passkey lives
    /// and creates the account when it is new.
    #[tracing::instrument(skip_all, fields(ceremony = %input.ceremony_id))]
    pub async fn finish_registration(
        &self,
        input: RegistrationFinish,
        session: Option<&SessionUser>,
    ) -> Result<RegistrationFinished> {
        let pending: PendingRegistration = self.take_ceremony(input.ceremony_id, CeremonyKind::Registration).await?;
        let user_id = UserId::parse(&pending.user_id.to_string())?;
        let adding_to = match session {
            _ if pending.new_account => None,
            Some(s) if s.user_id == user_id => Some(s),
            _ => return Err(DomainError::NotSignedIn),
        };
        let attachment = input
            .credential
            .get("authenticatorAttachment")
            .and_then(|v| v.as_str())
            .filter(|a| matches!(*a, "platform" | "cross-platform"))
            .map(str::to_owned);
        let reg: RegisterPublicKeyCredential = serde_json::from_value(input.credential)
            .map_err(|_| DomainError::Verification(VerificationFailure::Malformed))?;
        let credential = self.core.register_credential(&reg, &pending.state, None).map_err(map_webauthn_error)?;
        let facts = RegistrationFacts::from_attestation_object(reg.response.attestation_object.as_slice())?;
        let provider = self.catalog.lookup(&facts.aaguid);
        if !self.config.rules.provider_allowed(&provider.name) {
            return Err(DomainError::ProviderNotAllowed(provider.name.clone()));
        }
        let transports = reg
            .response
            .transports
            .as_ref()
            .map(|ts| ts.iter().filter_map(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let now = self.clock.now_ms();
        if let Some(session) = adding_to
            && !session.stepped_up(now)
            && !self.storage.sessions.take_passkey_grant(&session.session_digest, now).await?
        {
            return Err(DomainError::ReauthRequired);
        }
        let record = PasskeyRecord {
            credential_id: CredentialId::from_bytes(credential.cred_id.to_vec()),
            user_id,
            aaguid: facts.aaguid,
            provider: provider.name.clone(),
            transports,
            attachment,
            backup_eligible: facts.backup_eligible,
            backup_state: facts.backup_state,
            created_on: input.device,
            created_device_id: input.device_id.clone(),
            created_at: now,
            last_used_at: None,
            last_used_on: None,
            last_used_device_id: None,
            credential,
        };
        if pending.new_account {
            let account = Account {
                id: user_id,
                identifier: Identifier::parse(&pending.identifier)?,
                display_name: DisplayName::from_stored(pending.display_name),
                created_at: now,
            };
            let user_created = self.reporter.message(EventType::UserCreated, || {
                json!({
                    "userId": user_id.to_string(),
                    "identifier": account.identifier.as_str(),
                    "displayName": account.display_name.as_str(),
                })
            });
            let reports: Vec<Message> =
                user_created.into_iter().chain(self.passkey_created(&record, &provider.name)).collect();
            self.storage.accounts.create_with_passkey(&account, &record, &reports).await?;
            self.reporter.committed(reports.first());
        } else {
            let report = self.passkey_created(&record, &provider.name);
            self.storage.accounts.add_passkey(&record, report.as_ref()).await?;
            self.reporter.committed(report.as_ref());
            if let Some(device) = &input.device_id {
                // A passkey added by a signed-in account: the append offer was taken (or
                // the account page was used, which counts the same for the caps).
                let action = crate::storage::AppendAction::Accepted;
                if let Err(e) = self.storage.append_offers.record_append(user_id, device, now, action).await {
                    tracing::error!(error = %e, "could not record a passkey append");
                }
            }
        }
        tracing::info!(user = %user_id, provider = %provider.name, new_account = pending.new_account, "passkey registered");
        Ok(RegistrationFinished {
            user_id,
            credential_id: record.credential_id,
            provider,
            aaguid: facts.aaguid,
            new_account: pending.new_account,
        })
    }

    /// The `passkey.created` message, when someone listens.
    fn passkey_created(&self, record: &PasskeyRecord, provider: &str) -> Option<Message> {
        self.reporter.message(EventType::PasskeyCreated, || {
            json!({
                "userId": record.user_id.to_string(),
                "credentialId": record.credential_id.to_base64url(),
                "provider": provider,
                "backupEligible": record.backup_eligible,
                "createdOn": {"os": record.created_on.os, "browser": record.created_on.browser},
            })
        })
    }
}
