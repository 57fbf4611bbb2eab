//! Sign-in: identifier-first (allowCredentials from the account) and usernameless /
//! conditional mediation (empty allowCredentials; the user handle in the response names
//! the account). The counter is written back with a compare-and-set so that a cloned
//! authenticator or a concurrent replay is refused and recorded.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs_core::proto::{AuthenticationState, PublicKeyCredential, UserVerificationPolicy};

use super::model::{Account, PasskeyUse};
use super::service::PasskeyService;
use super::verify::map_webauthn_error;
use crate::clock::now_ms;
use crate::decision::Decision;
use crate::device::DeviceInfo;
use crate::domain::{CeremonyId, CredentialId, Identifier, JourneyId};
use crate::error::{DomainError, Result, VerificationFailure};
use crate::storage::{CeremonyKind, SecurityEvent};

/// Input of `login/start`.
#[derive(Debug, Clone)]
pub struct LoginStart {
    /// The identifier, for identifier-first sign-in; `None` for usernameless.
    pub identifier: Option<Identifier>,
    /// The journey this attempt belongs to, if the client already has one.
    pub journey_id: Option<JourneyId>,
}

/// Output of `login/start`.
#[derive(Debug, Clone)]
pub struct LoginStarted {
    /// The journey.
    pub journey_id: JourneyId,
    /// Which method to offer.
    pub decision: Decision,
    /// The ceremony to finish.
    pub ceremony_id: CeremonyId,
    /// `PublicKeyCredentialRequestOptionsJSON`.
    pub public_key: serde_json::Value,
}

/// Input of `login/finish`.
#[derive(Debug, Clone)]
pub struct LoginFinish {
    /// The ceremony.
    pub ceremony_id: CeremonyId,
    /// `AuthenticationResponseJSON` as the browser sent it.
    pub credential: serde_json::Value,
    /// The device it comes from.
    pub device: DeviceInfo,
    /// Client IP, for the security log.
    pub ip: Option<String>,
    /// Client user agent, for the security log.
    pub user_agent: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: AuthenticationState,
    /// The account named by the identifier; `None` for usernameless (and unknown identifiers).
    user_id: Option<Uuid>,
    journey_id: Uuid,
}

impl PasskeyService {
    /// Starts a sign-in.
    #[tracing::instrument(skip_all)]
    pub async fn start_login(&self, input: LoginStart) -> Result<LoginStarted> {
        let journey_id = input.journey_id.unwrap_or_default();
        let account = match &input.identifier {
            Some(identifier) => self.storage.accounts.find_by_identifier(identifier).await?,
            None => None,
        };
        let credentials = match &account {
            Some(a) => self.storage.accounts.passkeys_of(a.id).await?.into_iter().map(|p| p.credential).collect(),
            None => Vec::new(),
        };
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(UserVerificationPolicy::Required))
            .map_err(map_webauthn_error)?;
        let (options, state) = self.core.generate_challenge_authenticate(builder).map_err(map_webauthn_error)?;
        let pending =
            PendingLogin { state, user_id: account.as_ref().map(|a| a.id.uuid()), journey_id: journey_id.uuid() };
        let ceremony_id = self.put_ceremony(CeremonyKind::Authentication, &pending).await?;
        let public_key = serde_json::to_value(&options.public_key)
            .map_err(|e| DomainError::Internal(format!("cannot serialise request options: {e}")))?;
        Ok(LoginStarted { journey_id, decision: Decision::static_local(), ceremony_id, public_key })
    }

    /// Finishes a sign-in and returns the account.
    #[tracing::instrument(skip_all, fields(ceremony = %input.ceremony_id))]
    pub async fn finish_login(&self, mut input: LoginFinish) -> Result<Account> {
        let mut pending: PendingLogin = self.take_ceremony(input.ceremony_id, CeremonyKind::Authentication).await?;
        let response: PublicKeyCredential = serde_json::from_value(std::mem::take(&mut input.credential))
            .map_err(|_| DomainError::Verification(VerificationFailure::Malformed))?;
        let credential_id = CredentialId::from_bytes(response.raw_id.to_vec());
        let (passkey, account) =
            self.storage.accounts.find_passkey(&credential_id).await?.ok_or(DomainError::UnknownCredential)?;
        match pending.user_id {
            // Identifier-first: the passkey must belong to the account that was named.
            Some(expected) if expected != account.id.uuid() => {
                return Err(DomainError::Verification(VerificationFailure::CredentialNotAllowed));
            }
            Some(_) => {}
            // Usernameless: the authenticator's user handle must name the passkey's owner.
            None => {
                let handle = response.get_user_unique_id().unwrap_or_default();
                if handle != account.id.uuid().as_bytes() {
                    return Err(DomainError::Verification(VerificationFailure::CredentialNotAllowed));
                }
            }
        }
        // Verify against the stored credential as it is now (fresh counter).
        pending.state.set_allowed_credentials(vec![passkey.credential.clone()]);
        let result = match self.core.authenticate_credential(&response, &pending.state) {
            Ok(result) => result,
            Err(e) => {
                let err = map_webauthn_error(e);
                if matches!(err, DomainError::CounterRegression) {
                    self.record_counter_regression(&account, &credential_id, passkey.credential.counter, None, &input)
                        .await;
                }
                return Err(err);
            }
        };
        let stored_counter = passkey.credential.counter;
        let mut credential = passkey.credential;
        credential.counter = result.counter();
        credential.backup_state = result.backup_state();
        credential.backup_eligible = result.backup_eligible();
        let usage = PasskeyUse {
            credential_id: credential_id.clone(),
            counter: result.counter(),
            backup_state: result.backup_state(),
            backup_eligible: result.backup_eligible(),
            at: now_ms(),
            on: input.device.clone(),
            credential,
        };
        if !self.storage.accounts.record_use(&usage).await? {
            self.record_counter_regression(&account, &credential_id, stored_counter, Some(result.counter()), &input)
                .await;
            return Err(DomainError::CounterRegression);
        }
        tracing::info!(user = %account.id, journey = %pending.journey_id, "signed in with a passkey");
        Ok(account)
    }

    async fn record_counter_regression(
        &self,
        account: &Account,
        credential_id: &CredentialId,
        stored: u32,
        presented: Option<u32>,
        input: &LoginFinish,
    ) {
        tracing::warn!(user = %account.id, credential = %credential_id.to_base64url(), "signature counter regression refused");
        let event = SecurityEvent {
            kind: "counter-regression".into(),
            user_id: Some(account.id),
            detail: serde_json::json!({
                "credentialId": credential_id.to_base64url(),
                "storedCounter": stored,
                "presentedCounter": presented,
            }),
            at: now_ms(),
            ip: input.ip.clone(),
            user_agent: input.user_agent.clone(),
        };
        if let Err(e) = self.storage.security.record(&event).await {
            tracing::error!(error = %e, "could not record a security event");
        }
    }
}
