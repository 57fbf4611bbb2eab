//! The device authorization grant (RFC 8628, PRODUCT §6.2): a TV, a terminal or a kiosk
//! asks for a code, shows it (as text and as a QR of `verification_uri_complete`) and
//! polls; a person approves on a browser where they are signed in, usually their phone.
//! The protections are QR approval's (`docs/decisions/0015-device-grant.md`): the first
//! browser to enter or scan the code owns the confirmation and any other is refused and
//! recorded; the confirmation names the application and the device's address, place and
//! time, and warns about consent phishing; someone who scanned (and so never read the code)
//! picks it among three; approving needs a passkey ceremony on that browser within the
//! step-up window; every step is one compare-and-set in storage and a journey event.

use serde::Serialize;
use serde_json::json;

use super::authorize::SCOPES;
use super::device_model::{ClaimVia, DeviceAuthorization, DeviceClaim, DeviceState, DeviceTransition, UserCode};
use super::keys::seconds;
use super::model::{Client, GrantRecord, digest};
use super::tokens::{ClientCredentials, OAuthError, TokenRequest, TokenResponse};
use super::{OidcService, OidcSettings};
use crate::domain::{JourneyId, SecretToken};
use crate::error::{DomainError, Result};
use crate::passkeys::SessionUser;
use crate::storage::{SecurityEvent, StoredEvent};

/// The grant type a device polls with.
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The journey flow of device sign-ins.
pub const DEVICE_FLOW: &str = "device-grant";

/// How much longer a device must wait after polling too early (RFC 8628 §3.5).
const SLOW_DOWN_MS: i64 = 5_000;

/// RFC 8176 `amr` of a device sign-in: a passkey proved possession on another device, which
/// approved this one over a second channel; nothing was verified on the device itself.
pub const DEVICE_AMR: &[&str] = &["pop", "mca"];

/// The device that asks.
#[derive(Debug, Clone, Default)]
pub struct DeviceRequester {
    /// Its IP.
    pub ip: Option<String>,
    /// Its user agent.
    pub user_agent: Option<String>,
    /// Its approximate place, when a GeoIP database knows the address.
    pub place: Option<String>,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCodeResponse {
    /// The device's secret for polling.
    pub device_code: String,
    /// What the person types: `XXXX-XXXX`.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// The same with the code in it (for the QR).
    pub verification_uri_complete: String,
    /// Seconds the codes live.
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

/// The browser confirming a device sign-in.
#[derive(Debug, Clone)]
pub struct Confirmer {
    /// Its session.
    pub session: SessionUser,
    /// Its IP.
    pub ip: Option<String>,
    /// Its user agent.
    pub user_agent: Option<String>,
}

/// What the confirming browser shows.
#[derive(Debug, Clone)]
pub struct DeviceView {
    /// The sign-in.
    pub authorization: DeviceAuthorization,
    /// The application that asks.
    pub client: Client,
    /// Three codes to pick from, when the code was scanned (typing it confirmed it).
    pub choices: Option<[String; 3]>,
}

impl OidcService {
    fn device_event(&self, a: &DeviceAuthorization, name: &str, attrs: serde_json::Value) {
        if let Some(journal) = &self.journal {
            let event = StoredEvent::server(a.journey_id, name, Some(DEVICE_FLOW), attrs, self.clock.now_ms());
            journal.submit_server(vec![event]);
        }
    }

    /// RFC 8628 §3.1–3.2: a client allowed the device grant asks for codes.
    pub async fn device_authorize(
        &self,
        creds: &ClientCredentials,
        scope: Option<&str>,
        device: DeviceRequester,
    ) -> std::result::Result<DeviceCodeResponse, OAuthError> {
        let client = self.authenticate(creds).await?;
        if !client.device {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use the device authorization grant (register it with device = true)",
            ));
        }
        let scope = match scope {
            None => "openid".to_owned(),
            Some(raw) => {
                let asked: Vec<&str> = raw.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(unknown) = asked.iter().find(|s| !SCOPES.contains(s)) {
                    return Err(OAuthError::new("invalid_scope", format!("scope {unknown:?} is not supported")));
                }
                if !asked.contains(&"openid") {
                    return Err(OAuthError::new("invalid_scope", "the scope must include openid"));
                }
                asked.join(" ")
            }
        };
        let now = self.clock.now_ms();
        let device_code = SecretToken::generate()?;
        let user_code = UserCode::generate()?;
        let ttl = OidcSettings::ms(self.settings.device_ttl);
        let interval = OidcSettings::ms(self.settings.device_interval);
        let authorization = DeviceAuthorization {
            id: SecretToken::generate()?.digest()[..32].to_owned(),
            device_code_digest: digest(device_code.expose()),
            user_code_digest: user_code.digest(),
            client_id: client.id.clone(),
            scope,
            journey_id: JourneyId::default(),
            state: DeviceState::Pending,
            device_ip: device.ip.clone(),
            device_ua: device.user_agent.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            interval_ms: interval,
            polled_at: 0,
            claim: None,
            approved_at: 0,
            reason: None,
            updated_at: now,
        };
        self.storage.add_device(&authorization).await?;
        tracing::info!(client = %client.id, "issued a device code");
        self.device_event(
            &authorization,
            "device.code_issued",
            json!({"clientId": client.id, "ip": device.ip, "userAgent": device.user_agent, "place": device.place,
                   "scope": authorization.scope}),
        );
        let issuer = &self.settings.issuer;
        Ok(DeviceCodeResponse {
            device_code: device_code.expose().to_owned(),
            user_code: user_code.display(),
            verification_uri: format!("{issuer}/device"),
            verification_uri_complete: format!("{issuer}/device?user_code={}", user_code.display()),
            expires_in: seconds(ttl),
            interval: seconds(interval),
        })
    }

    /// The live sign-in behind a typed or scanned code.
    async fn device_by_code(&self, code: &UserCode) -> Result<DeviceAuthorization> {
        let a = self.storage.device_by_user_code(&code.digest()).await?.ok_or(DomainError::DeviceCodeNotFound)?;
        if !a.state.is_final() && a.expires_at <= self.clock.now_ms() {
            return Err(DomainError::DeviceCodeExpired);
        }
        Ok(a)
    }

    /// The verification page was opened with a code in its address (the QR was scanned):
    /// recorded in the sign-in's journey, signed in or not. Unknown codes are ignored.
    pub async fn device_page_opened(&self, raw_code: &str, ip: Option<&str>, user_agent: Option<&str>) {
        let Ok(code) = UserCode::parse(raw_code) else { return };
        match self.device_by_code(&code).await {
            Ok(a) if a.state == DeviceState::Pending => {
                self.device_event(&a, "device.page_opened", json!({"ip": ip, "userAgent": user_agent}));
            }
            Ok(_) | Err(DomainError::DeviceCodeNotFound | DomainError::DeviceCodeExpired) => {}
            Err(e) => tracing::warn!(error = %e, "could not look a device code up"),
        }
    }

    async fn device_refused(&self, a: &DeviceAuthorization, by: &Confirmer, why: &str) {
        self.device_event(a, "device.refused", json!({"reason": why, "ip": by.ip, "userAgent": by.user_agent}));
        let event = SecurityEvent {
            kind: format!("device-{why}"),
            user_id: Some(by.session.user_id),
            detail: json!({"deviceAuthorization": a.id, "clientId": a.client_id, "journeyId": a.journey_id.to_string()}),
            at: self.clock.now_ms(),
            ip: by.ip.clone(),
            user_agent: by.user_agent.clone(),
        };
        if let Err(e) = self.storage_security.record(&event).await {
            tracing::error!(error = %e, "could not record a security event");
        }
    }

    fn view(&self, a: DeviceAuthorization, client: Client, code: &UserCode) -> DeviceView {
        let scanned = a.claim.as_ref().is_some_and(|c| c.via == ClaimVia::Scanned);
        let choices = scanned.then(|| code.choices(&a.id));
        DeviceView { authorization: a, client, choices }
    }

    /// A signed-in browser enters (typed) or scans a code: the first one owns the
    /// confirmation; the same session coming back carries on; any other is refused and
    /// recorded (a security event and a journey event).
    pub async fn device_claim(&self, raw_code: &str, via: ClaimVia, by: &Confirmer) -> Result<DeviceView> {
        let code = UserCode::parse(raw_code)?;
        let a = self.device_by_code(&code).await?;
        let client = self.clients.get(&a.client_id).await?.ok_or(DomainError::DeviceCodeNotFound)?;
        if a.state == DeviceState::Pending {
            let t = DeviceTransition {
                id: a.id.clone(),
                from: DeviceState::Pending,
                to: DeviceState::Claimed,
                session: None,
                claim: Some(DeviceClaim {
                    session_digest: by.session.session_digest.clone(),
                    user_id: by.session.user_id,
                    ip: by.ip.clone(),
                    via,
                }),
                reason: None,
                now: self.clock.now_ms(),
            };
            if let Some(done) = self.storage.device_transition(&t).await? {
                let name = match via {
                    ClaimVia::Typed => "device.code_entered",
                    ClaimVia::Scanned => "device.code_scanned",
                };
                let attrs = json!({"ip": by.ip, "userAgent": by.user_agent, "userId": by.session.user_id.to_string()});
                self.device_event(&done, name, attrs);
                self.device_event(&done, "device.confirmation_shown", json!({"via": via.as_str()}));
                return Ok(self.view(done, client, &code));
            }
        }
        // Lost the race, or claimed before: reload and decide.
        let now = self.device_by_code(&code).await?;
        let mine = now.claim.as_ref().is_some_and(|c| c.session_digest == by.session.session_digest);
        if mine && now.state == DeviceState::Claimed {
            return Ok(self.view(now, client, &code));
        }
        if !mine && matches!(now.state, DeviceState::Claimed | DeviceState::Approved) {
            self.device_refused(&now, by, "second-claim").await;
            return Err(DomainError::DeviceClaimedElsewhere);
        }
        Err(DomainError::DeviceWrongState(now.state.as_str()))
    }

    /// The browser that claimed the code approves, after a passkey ceremony on it within
    /// the step-up window; `pick` is the code picked among three (for a scanned code; a
    /// wrong pick stops the sign-in).
    pub async fn device_approve(
        &self,
        raw_code: &str,
        pick: Option<&str>,
        by: &Confirmer,
    ) -> Result<DeviceAuthorization> {
        let code = UserCode::parse(raw_code)?;
        let a = self.device_by_code(&code).await?;
        let claim = a.claim.clone();
        let Some(claim) = claim.filter(|c| c.session_digest == by.session.session_digest) else {
            if a.state == DeviceState::Pending {
                return Err(DomainError::DeviceWrongState("not entered yet"));
            }
            self.device_refused(&a, by, "approve-from-other-browser").await;
            return Err(DomainError::DeviceClaimedElsewhere);
        };
        if a.state != DeviceState::Claimed {
            return Err(DomainError::DeviceWrongState(a.state.as_str()));
        }
        by.session.require_step_up(self.clock.now_ms())?;
        let step = |to, reason: Option<&str>| DeviceTransition {
            id: a.id.clone(),
            from: DeviceState::Claimed,
            to,
            session: Some(by.session.session_digest.clone()),
            claim: None,
            reason: reason.map(str::to_owned),
            now: self.clock.now_ms(),
        };
        if claim.via == ClaimVia::Scanned {
            let picked = pick.map(UserCode::parse).transpose()?;
            let Some(picked) = picked else {
                return Err(DomainError::invalid("pick-required", "pick the code shown on the device first"));
            };
            if picked != code {
                if let Some(done) =
                    self.storage.device_transition(&step(DeviceState::Rejected, Some("wrong-code"))).await?
                {
                    self.device_refused(&done, by, "wrong-code").await;
                }
                return Err(DomainError::WrongDeviceCode);
            }
        }
        let done = self
            .storage
            .device_transition(&step(DeviceState::Approved, None))
            .await?
            .ok_or(DomainError::DeviceWrongState("no longer waiting for approval"))?;
        tracing::info!(client = %done.client_id, user = %by.session.user_id, "a device sign-in was approved");
        self.device_event(
            &done,
            "device.approved",
            json!({"ip": by.ip, "userAgent": by.user_agent, "userId": by.session.user_id.to_string()}),
        );
        Ok(done)
    }

    /// The browser that claimed the code denies it.
    pub async fn device_deny(&self, raw_code: &str, by: &Confirmer) -> Result<DeviceAuthorization> {
        let code = UserCode::parse(raw_code)?;
        let a = self.device_by_code(&code).await?;
        if a.claim.as_ref().is_none_or(|c| c.session_digest != by.session.session_digest) {
            return Err(DomainError::DeviceClaimedElsewhere);
        }
        let t = DeviceTransition {
            id: a.id.clone(),
            from: DeviceState::Claimed,
            to: DeviceState::Denied,
            session: Some(by.session.session_digest.clone()),
            claim: None,
            reason: Some("denied".into()),
            now: self.clock.now_ms(),
        };
        let done = self.storage.device_transition(&t).await?.ok_or(DomainError::DeviceWrongState(a.state.as_str()))?;
        self.device_event(&done, "device.denied", json!({"ip": by.ip, "userAgent": by.user_agent}));
        Ok(done)
    }

    /// RFC 8628 §3.4–3.5: the device polls with its device code.
    pub(super) async fn device_token(
        &self,
        client: &Client,
        request: &TokenRequest,
    ) -> std::result::Result<TokenResponse, OAuthError> {
        let raw = request
            .device_code
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "device_code is missing"))?;
        let unknown = || OAuthError::new("invalid_grant", "the device code is unknown or not this client's");
        if raw.len() > 100 {
            return Err(unknown());
        }
        let a = self.storage.device_by_device_code(&digest(raw)).await?.ok_or_else(unknown)?;
        if a.client_id != client.id {
            return Err(unknown());
        }
        let now = self.clock.now_ms();
        if a.state == DeviceState::Expired || (!a.state.is_final() && a.expires_at <= now) {
            return Err(OAuthError::new("expired_token", "the device code expired; start again"));
        }
        match a.state {
            DeviceState::Denied | DeviceState::Rejected => {
                return Err(OAuthError::new("access_denied", "the sign-in was denied"));
            }
            DeviceState::Redeemed => {
                return Err(OAuthError::new("invalid_grant", "the device code was already used"));
            }
            _ => {}
        }
        // Polling too early: the interval grows by 5 s (and two polls at once: one loses).
        let early = a.polled_at > 0 && now.saturating_sub(a.polled_at) < a.interval_ms;
        let interval = if early { a.interval_ms.saturating_add(SLOW_DOWN_MS) } else { a.interval_ms };
        let counted = self.storage.device_polled(&a.id, a.polled_at, now, interval).await?;
        if early || !counted {
            return Err(OAuthError::new(
                "slow_down",
                format!("polling too often; wait {} s between polls", seconds(interval)),
            ));
        }
        if a.state != DeviceState::Approved {
            return Err(OAuthError::new("authorization_pending", "the sign-in has not been approved yet"));
        }
        let claim =
            a.claim.clone().ok_or_else(|| DomainError::Internal("approved device sign-in without a claim".into()))?;
        let grant = GrantRecord {
            id: SecretToken::generate()?.digest()[..32].to_owned(),
            client_id: client.id.clone(),
            user_id: claim.user_id,
            scope: a.scope.clone(),
            auth_time: a.approved_at,
            amr: DEVICE_AMR.iter().map(|s| (*s).to_owned()).collect(),
            sid: a.id.clone(),
            nonce: None,
            created_at: now,
            expires_at: now.saturating_add(if a.scope.split(' ').any(|s| s == "offline_access") {
                self.settings.refresh_ttl_ms()
            } else {
                self.settings.access_ttl_ms()
            }),
        };
        if !self.storage.redeem_device(&a.id, &grant, now).await? {
            return Err(OAuthError::new("invalid_grant", "the device code was already used"));
        }
        let tokens = self.issue(client, &grant, false).await?;
        tracing::info!(client = %client.id, user = %claim.user_id, "a device sign-in got its tokens");
        self.device_event(&a, "device.tokens_issued", json!({"clientId": client.id, "ip": a.device_ip}));
        self.device_event(&a, "session.established", json!({"grant": "device_code", "clientId": client.id}));
        Ok(tokens)
    }

    /// Expires every unfinished device sign-in past its time, recording where each stopped
    /// (`pending`: nobody entered the code; `claimed`: the confirmation was left;
    /// `approved`: the device never polled again). Returns how many.
    pub async fn expire_devices(&self) -> Result<usize> {
        let expired = self.storage.expire_devices(self.clock.now_ms()).await?;
        for a in &expired {
            self.device_event(a, "device.expired", json!({"from": a.state.as_str()}));
        }
        Ok(expired.len())
    }
}
