//! Sign-in: identifier-first (the decision engine picks the method and the credentials to
//! allow) and usernameless / conditional mediation (empty allowCredentials; the user
//! handle in the response names the account). The counter is written back with a
//! compare-and-set so that a cloned authenticator or a concurrent replay is refused and
//! recorded. Every attempt is counted per identifier and browser, which is what lets the
//! engine stop offering passkeys where they keep failing.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs_core::proto::{AuthenticationState, PublicKeyCredential, UserVerificationPolicy};

use super::model::{Account, PasskeyUse};
use super::service::PasskeyService;
use super::verify::map_webauthn_error;
use crate::decision::{Decision, Reason, Verdict};
use crate::device::{DeviceInfo, FormFactor};
use crate::domain::{CeremonyId, CredentialId, Identifier, JourneyId, UserId};
use crate::error::{DomainError, ErrorCode, Result, VerificationFailure};
use crate::intelligence::{ClientSignals, CredentialFacts, Outcome, decide};
use crate::storage::{AppendAction, Attempt, CeremonyKind, SecurityEvent};

/// Input of `login/start`.
#[derive(Debug, Clone)]
pub struct LoginStart {
    /// The identifier, for identifier-first sign-in; `None` for usernameless.
    pub identifier: Option<Identifier>,
    /// The journey this attempt belongs to, if the client already has one.
    pub journey_id: Option<JourneyId>,
    /// What the browser and the request say about the client.
    pub client: ClientSignals,
}

/// Output of `login/start`.
#[derive(Debug, Clone)]
pub struct LoginStarted {
    /// The journey.
    pub journey_id: JourneyId,
    /// Which method to offer.
    pub decision: Decision,
    /// The ceremony to run, when the verdict involves a passkey: its id and
    /// `PublicKeyCredentialRequestOptionsJSON`.
    pub ceremony: Option<(CeremonyId, serde_json::Value)>,
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
    /// The browser's device cookie.
    pub device_id: Option<String>,
    /// Client IP, for the security log.
    pub ip: Option<String>,
    /// Client user agent, for the security log.
    pub user_agent: Option<String>,
}

/// An offer to create a passkey on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppendOffer {
    /// Why it is offered.
    pub reason: String,
}

/// Output of `login/finish`.
#[derive(Debug, Clone)]
pub struct LoginFinished {
    /// The account.
    pub account: Account,
    /// The journey.
    pub journey_id: JourneyId,
    /// The product flow the sign-in took.
    pub flow: &'static str,
    /// Create a passkey here? (after a cross-device sign-in on a capable device)
    pub append_offer: Option<AppendOffer>,
}

/// A ceremony that failed in the browser (the SDK reports it).
#[derive(Debug, Clone)]
pub struct LoginFailure {
    /// The ceremony.
    pub ceremony_id: CeremonyId,
    /// The DOMException name, e.g. `NotAllowedError`.
    pub error_name: String,
    /// How long the ceremony ran before failing.
    pub elapsed_ms: Option<u64>,
    /// The reporting device.
    pub device: DeviceInfo,
}

#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: AuthenticationState,
    /// The account named by the identifier; `None` for usernameless and unknown identifiers.
    user_id: Option<Uuid>,
    /// The normalised identifier, when one was given (known or not).
    identifier: Option<String>,
    journey_id: Uuid,
    verdict: Verdict,
    device_id: Option<String>,
    /// The client said it can hold a passkey (`Some(false)` when it said it cannot).
    platform_authenticator: Option<bool>,
    form_factor: FormFactor,
    /// Failures of this identifier in this browser when the sign-in started: a success
    /// only needs writing down (to reset them) when there were some.
    #[serde(default)]
    prior_failures: u32,
}

/// The product flow of a verdict.
pub(crate) fn flow_of(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Local | Verdict::TryOnce => "passkey-local",
        Verdict::CrossDevice => "cross-device",
        Verdict::QrApproval => "qr-approval",
        Verdict::Fallback => "fallback",
    }
}

fn usernameless_decision() -> Decision {
    Decision {
        verdict: Verdict::Local,
        reasons: vec![Reason {
            code: "usernameless".into(),
            message: "no identifier: the browser offers the passkeys it holds for this site".into(),
        }],
        confidence: 0.5,
        alternatives: vec![crate::decision::Alternative { verdict: Verdict::Fallback }],
        retry: crate::decision::RetryPolicy { max_attempts: 1, then: Verdict::Fallback },
        fallbacks: Vec::new(),
    }
}

impl PasskeyService {
    /// Starts a sign-in: decides the method and, when it involves a passkey, starts the
    /// ceremony with the credentials and hints that fit the decision.
    #[tracing::instrument(skip_all)]
    pub async fn start_login(&self, input: LoginStart) -> Result<LoginStarted> {
        // Server events go only into a journey this browser started.
        let journey_id = self.journey_for(input.journey_id, input.client.device_id.as_deref());
        let now = self.clock.now_ms();
        let (user_id, outcome, prior_failures) = match &input.identifier {
            None => (None, Outcome { decision: usernameless_decision(), allow: Vec::new(), hints: Vec::new() }, 0),
            Some(identifier) => {
                // Known and unknown identifiers cost the same: one inventory query, one
                // history query, one decision.
                let found = self.storage.accounts.find_inventory(identifier).await?;
                let (user_id, inventory) = match &found {
                    Some((account, passkeys)) => (
                        Some(account.id),
                        passkeys.iter().map(|p| CredentialFacts::of_summary(p, &self.catalog)).collect(),
                    ),
                    None => (None, self.decoys.inventory(&self.decoy_key, identifier, &self.catalog)),
                };
                let cooldown = i64::try_from(self.config.rules.failure_cooldown.as_millis()).unwrap_or(i64::MAX);
                let failures = match &input.client.device_id {
                    Some(device) => {
                        self.storage
                            .attempts
                            .failure_history(identifier.as_str(), device, now.saturating_sub(cooldown))
                            .await?
                    }
                    None => Default::default(),
                };
                let outcome = decide(identifier.as_str(), &inventory, &input.client, failures, &self.config.rules, now);
                (user_id, outcome, failures.recent_failures)
            }
        };
        let mut decision = outcome.decision.clone();
        decision.fallbacks.clone_from(&self.config.fallbacks);
        let flow = flow_of(decision.verdict);
        let mut events = vec![(
            "decision.made",
            json!({
                "verdict": decision.verdict,
                "reasons": decision.reasons,
                "confidence": decision.confidence,
                "alternatives": decision.alternatives,
                "fallbacks": decision.fallbacks,
                "usernameless": input.identifier.is_none(),
                "identifier": input.identifier.as_ref().map(Identifier::as_str),
            }),
        )];
        let ceremony = if input.identifier.is_none() || outcome.runs_ceremony() {
            let builder = self
                .core
                .new_challenge_authenticate_builder(Vec::new(), Some(UserVerificationPolicy::Required))
                .map_err(map_webauthn_error)?;
            let (options, state) = self.core.generate_challenge_authenticate(builder).map_err(map_webauthn_error)?;
            let pending = PendingLogin {
                state,
                user_id: user_id.map(|u| u.uuid()),
                identifier: input.identifier.as_ref().map(|i| i.as_str().to_owned()),
                journey_id: journey_id.uuid(),
                verdict: decision.verdict,
                device_id: input.client.device_id.clone(),
                platform_authenticator: input.client.platform_authenticator,
                form_factor: input.client.device.form_factor,
                prior_failures,
            };
            let ceremony_id = self.put_ceremony(CeremonyKind::Authentication, &pending).await?;
            let mut public_key = serde_json::to_value(&options.public_key)
                .map_err(|e| DomainError::Internal(format!("cannot serialise request options: {e}")))?;
            public_key["allowCredentials"] = outcome
                .allow
                .iter()
                .map(|a| json!({"type": "public-key", "id": a.id.to_base64url(), "transports": a.transports}))
                .collect();
            // Always present (possibly empty), so every verdict has the same response shape.
            public_key["hints"] = json!(outcome.hints);
            events.push(("challenge.created", json!({"ceremonyId": ceremony_id.to_string(), "hints": outcome.hints})));
            Some((ceremony_id, public_key))
        } else {
            None
        };
        self.emit(journey_id, Some(flow), &events).await;
        // The operator's record keeps every detail; the caller, who may be anyone typing an
        // identifier, learns no provider or OS of the account's devices.
        let decision = crate::intelligence::anonymous(decision);
        Ok(LoginStarted { journey_id, decision, ceremony })
    }

    /// Finishes a sign-in and returns the account, the journey and any passkey-append offer.
    #[tracing::instrument(skip_all, fields(ceremony = %input.ceremony_id))]
    pub async fn finish_login(&self, mut input: LoginFinish) -> Result<LoginFinished> {
        let pending: PendingLogin = self.take_ceremony(input.ceremony_id, CeremonyKind::Authentication).await?;
        let journey_id = JourneyId::parse(&pending.journey_id.to_string())?;
        let flow = flow_of(pending.verdict);
        let credential = std::mem::take(&mut input.credential);
        match self.verify_assertion(pending.state.clone(), pending.user_id, credential, &input).await {
            Ok(account) => {
                // `server.verification` ok is recorded with `session.established` (note_session),
                // in one statement. A success is only written when it resets failures.
                if pending.prior_failures > 0 {
                    self.note_attempt(&pending, false, None).await;
                }
                let append_offer = self.append_offer(&pending, &account, &input).await;
                tracing::info!(user = %account.id, journey = %journey_id, flow, "signed in with a passkey");
                Ok(LoginFinished { account, journey_id, flow, append_offer })
            }
            Err(err) => {
                if !err.is_internal() {
                    self.note_attempt(&pending, true, Some(err.code())).await;
                    self.emit(journey_id, Some(flow), &[("server.verification", json!({"result": err.code()}))]).await;
                }
                Err(err)
            }
        }
    }

    /// Records a ceremony that failed in the browser (e.g. `NotAllowedError`): the
    /// ceremony is used up and the failure counts towards this browser's fallback.
    #[tracing::instrument(skip_all, fields(ceremony = %input.ceremony_id, error = %input.error_name))]
    pub async fn report_failure(&self, input: LoginFailure) -> Result<()> {
        let pending: PendingLogin = self.take_ceremony(input.ceremony_id, CeremonyKind::Authentication).await?;
        self.note_attempt(&pending, true, Some(&input.error_name)).await;
        let journey_id = JourneyId::parse(&pending.journey_id.to_string())?;
        let device = match input.device.form_factor {
            FormFactor::Phone | FormFactor::Tablet => "mobile",
            _ => "desktop",
        };
        let event = crate::storage::StoredEvent {
            device: device.into(),
            os: Some(input.device.os),
            browser: Some(input.device.browser),
            form_factor: Some(input.device.form_factor.as_str().into()),
            ..crate::storage::StoredEvent::server(
                journey_id,
                "webauthn.failed",
                Some(flow_of(pending.verdict)),
                json!({"errorName": input.error_name, "elapsedMs": input.elapsed_ms, "reportedTo": "login/failure"}),
                self.clock.now_ms(),
            )
        };
        self.journal.submit_server(vec![event]);
        Ok(())
    }

    /// The person declined to create a passkey on this device.
    pub async fn skip_append(&self, user: UserId, device_id: &str) -> Result<()> {
        self.storage.append_offers.record_append(user, device_id, self.clock.now_ms(), AppendAction::Skipped).await
    }

    /// Records a successful passkey sign-in's `server.verification` and `session.established`.
    pub async fn note_session(&self, journey: JourneyId, flow: &str) {
        let events = [("server.verification", json!({"result": "ok"})), ("session.established", json!({}))];
        self.emit(journey, Some(flow), &events).await;
    }

    /// Records `session.established` alone (flows verified elsewhere, like QR approval).
    pub async fn note_session_established(&self, journey: JourneyId, flow: &str) {
        self.emit(journey, Some(flow), &[("session.established", json!({}))]).await;
    }

    async fn note_attempt(&self, pending: &PendingLogin, failed: bool, detail: Option<&str>) {
        let (Some(identifier), Some(device_id)) = (&pending.identifier, &pending.device_id) else { return };
        let attempt = Attempt {
            identifier: identifier.clone(),
            device_id: device_id.clone(),
            at: self.clock.now_ms(),
            failed,
            detail: detail.map(str::to_owned),
        };
        if let Err(e) = self.storage.attempts.record_attempt(&attempt).await {
            tracing::error!(error = %e, "could not record a passkey attempt");
        }
    }

    /// Offer a passkey here after a cross-device sign-in on a device that can hold one,
    /// within the caps of the append policy.
    async fn append_offer(
        &self,
        pending: &PendingLogin,
        account: &Account,
        input: &LoginFinish,
    ) -> Option<AppendOffer> {
        let device_id = input.device_id.as_ref().or(pending.device_id.as_ref())?;
        let capable = pending.platform_authenticator != Some(false) && pending.form_factor != FormFactor::Unknown;
        if pending.verdict != Verdict::CrossDevice || !capable {
            return None;
        }
        let now = self.clock.now_ms();
        let policy = &self.config.append;
        let day_ago = now - 24 * 3600 * 1000;
        let history = match self.storage.append_offers.append_history(account.id, day_ago).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "could not read passkey-append history");
                return None;
            }
        };
        let cooldown = i64::try_from(policy.skip_cooldown.as_millis()).unwrap_or(i64::MAX);
        let cooling = history.last_skip_at.is_some_and(|at| now.saturating_sub(at) < cooldown);
        if history.offers_since >= policy.max_offers_per_day || history.skips_total >= policy.max_skips_total || cooling
        {
            return None;
        }
        if let Err(e) =
            self.storage.append_offers.record_append(account.id, device_id, now, AppendAction::Offered).await
        {
            tracing::error!(error = %e, "could not record a passkey-append offer");
        }
        if let Ok(journey) = JourneyId::parse(&pending.journey_id.to_string()) {
            let attrs = json!({"offersToday": history.offers_since + 1, "skipsTotal": history.skips_total});
            self.emit(journey, Some(flow_of(pending.verdict)), &[("append.offered", attrs)]).await;
        }
        Some(AppendOffer {
            reason: "signed in with a phone; a passkey on this device makes the next sign-in one step".into(),
        })
    }

    /// Verifies an assertion against the stored credential and writes the new counter.
    async fn verify_assertion(
        &self,
        mut state: AuthenticationState,
        expected_user: Option<Uuid>,
        credential: serde_json::Value,
        input: &LoginFinish,
    ) -> Result<Account> {
        let response: PublicKeyCredential = serde_json::from_value(credential)
            .map_err(|_| DomainError::Verification(VerificationFailure::Malformed))?;
        let credential_id = CredentialId::from_bytes(response.raw_id.to_vec());
        let (passkey, account) =
            self.storage.accounts.find_passkey(&credential_id).await?.ok_or(DomainError::UnknownCredential)?;
        match expected_user {
            // Identifier-first: the passkey must belong to the account that was named.
            Some(expected) if expected != account.id.uuid() => {
                return Err(DomainError::Verification(VerificationFailure::CredentialNotAllowed));
            }
            Some(_) => {}
            // Usernameless (or an unknown identifier): the user handle must name the owner.
            None => {
                let handle = response.get_user_unique_id().unwrap_or_default();
                if handle != account.id.uuid().as_bytes() {
                    return Err(DomainError::Verification(VerificationFailure::CredentialNotAllowed));
                }
            }
        }
        // Verify against the stored credential as it is now (fresh counter).
        state.set_allowed_credentials(vec![passkey.credential.clone()]);
        let result = match self.core.authenticate_credential(&response, &state) {
            Ok(result) => result,
            Err(e) => {
                let err = map_webauthn_error(e);
                if matches!(err, DomainError::CounterRegression) {
                    self.record_counter_regression(&account, &credential_id, passkey.credential.counter, None, input)
                        .await;
                }
                return Err(err);
            }
        };
        // The provider lists are a control, not only a preference of the decision: a passkey
        // of a provider the operator blocked (or did not allow) signs nobody in.
        if !self.config.rules.provider_allowed(&passkey.provider) {
            return Err(DomainError::ProviderNotAllowed(passkey.provider.clone()));
        }
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
            at: self.clock.now_ms(),
            on: input.device.clone(),
            device_id: input.device_id.clone(),
            credential,
        };
        if !self.storage.accounts.record_use(&usage).await? {
            self.record_counter_regression(&account, &credential_id, stored_counter, Some(result.counter()), input)
                .await;
            return Err(DomainError::CounterRegression);
        }
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
            detail: json!({
                "credentialId": credential_id.to_base64url(),
                "storedCounter": stored,
                "presentedCounter": presented,
            }),
            at: self.clock.now_ms(),
            ip: input.ip.clone(),
            user_agent: input.user_agent.clone(),
        };
        if let Err(e) = self.storage.security.record(&event).await {
            tracing::error!(error = %e, "could not record a security event");
        }
    }
}
