//! The QR approval protocol.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{QrAttempt, QrState, Requester};
use crate::clock::{Clock, Millis};
use crate::domain::{Identifier, JourneyId, SecretToken, UserId};
use crate::error::{DomainError, Result};
use crate::geo::{Locator, Place, Separation, Whereabouts, separation};
use crate::observe::Journal;
use crate::storage::{QrGuard, QrTransition, SecurityEvent, Storage, StoredEvent};

/// QR approval settings.
#[derive(Debug, Clone)]
pub struct QrConfig {
    /// Offer QR approval at all.
    pub enabled: bool,
    /// How long an attempt lives (at most 5 minutes).
    pub ttl: Duration,
    /// How long one displayed code works before the desktop must rotate it.
    pub code_ttl: Duration,
    /// How recent the phone's user verification must be to approve.
    pub fresh_verification: Duration,
    /// A desktop signed in by QR approval may add one passkey on itself without a
    /// step-up, when the approver also chose so on the phone (default off; see
    /// `docs/decisions/0001-step-up.md`).
    pub session_may_add_passkey: bool,
    /// What to do when the phone and the computer are far apart (by place or country).
    pub far_apart: FarApartPolicy,
    /// Refuse an approval from a phone signed in to another account than the identifier
    /// typed on the computer (default true; false only warns).
    pub refuse_wrong_account: bool,
}

/// What a far-apart approval gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarApartPolicy {
    /// Flag it on the phone and record it; the person decides.
    Warn,
    /// Refuse the approval (the attempt ends as rejected, reason `far-apart`).
    Refuse,
}

impl FarApartPolicy {
    /// Parses `warn` or `refuse`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "warn" => Some(Self::Warn),
            "refuse" => Some(Self::Refuse),
            _ => None,
        }
    }
}

impl Default for QrConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs(300),
            code_ttl: Duration::from_secs(60),
            fresh_verification: Duration::from_secs(120),
            session_may_add_passkey: false,
            far_apart: FarApartPolicy::Warn,
            refuse_wrong_account: true,
        }
    }
}

/// A new attempt as the desktop sees it.
#[derive(Debug, Clone)]
pub struct NewQr {
    /// The attempt.
    pub attempt: QrAttempt,
    /// The token for the QR's URL.
    pub token: SecretToken,
    /// The redemption secret for the desktop's cookie.
    pub redeem_secret: SecretToken,
}

/// The signed-in phone acting on a QR code.
#[derive(Debug, Clone)]
pub struct PhoneSession {
    /// Digest of its session token.
    pub session_digest: String,
    /// The user.
    pub user_id: UserId,
    /// When the user last verified with a passkey in this session.
    pub verified_at: Millis,
    /// The phone's IP.
    pub ip: Option<String>,
    /// The phone's user agent.
    pub user_agent: Option<String>,
}

/// What the phone shows after claiming.
#[derive(Debug, Clone)]
pub struct ClaimView {
    /// The attempt.
    pub attempt: QrAttempt,
    /// Three two-digit numbers, one of them the desktop's.
    pub match_choices: [u8; 3],
    /// The desktop and the phone seem to be far apart.
    pub far_apart: bool,
    /// How far apart, and on what basis.
    pub separation: Separation,
    /// The desktop's approximate place, when a GeoIP database knows its address.
    pub desktop_place: Option<Place>,
    /// Why approving would be refused (`wrong-account`, `far-apart`), so the phone can
    /// say so before anyone picks a number.
    pub refusal: Option<&'static str>,
}

/// Adds `extra`'s fields to the object `into`.
fn merge(into: &mut serde_json::Value, extra: &serde_json::Value) {
    if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
        into.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

fn digest(secret: &str) -> String {
    SecretToken::parse(secret).map(|t| t.digest()).unwrap_or_default()
}

fn random_byte() -> Result<u8> {
    let mut b = [0u8; 1];
    getrandom::fill(&mut b).map_err(|e| DomainError::Internal(format!("random source failed: {e}")))?;
    Ok(b[0])
}

/// Three distinct numbers 10–99 including `code`, in an order derived from the attempt
/// (stable when the same phone reopens the page).
pub fn match_choices(id: Uuid, code: u8) -> [u8; 3] {
    let h: [u8; 32] = Sha256::digest(id.as_bytes()).into();
    let pick = |seed: u8, avoid: &[u8]| {
        let mut n = 10 + seed % 90;
        while avoid.contains(&n) {
            n = if n == 99 { 10 } else { n + 1 };
        }
        n
    };
    let a = pick(h[0], &[code]);
    let b = pick(h[1], &[code, a]);
    match h[2] % 3 {
        0 => [code, a, b],
        1 => [a, code, b],
        _ => [a, b, code],
    }
}

/// Runs QR approval attempts.
#[derive(Clone)]
pub struct QrService {
    storage: Storage,
    config: QrConfig,
    journal: Journal,
    locator: Option<Arc<dyn Locator>>,
    clock: Clock,
    reporter: crate::webhooks::Reporter,
}

impl QrService {
    /// The service.
    pub fn new(storage: Storage, config: QrConfig, journal: Journal) -> Self {
        Self { storage, config, journal, locator: None, clock: Clock::system(), reporter: Default::default() }
    }

    /// Reports `qr.approved` and `qr.denied` to webhook subscribers.
    pub fn with_reporter(mut self, reporter: crate::webhooks::Reporter) -> Self {
        self.reporter = reporter;
        self
    }

    /// Takes the time from `clock` (tests move it forward instead of waiting).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Places addresses with this GeoIP database (shown to the phone, used for the
    /// far-apart check, recorded in the attempt's events).
    pub fn with_locator(mut self, locator: Arc<dyn Locator>) -> Self {
        self.locator = Some(locator);
        self
    }

    /// The place of an address, when a database is configured and knows it.
    pub fn place_of(&self, ip: Option<&str>) -> Option<Place> {
        let ip: IpAddr = ip?.parse().ok()?;
        self.locator.as_ref()?.locate(ip)
    }

    /// How far the phone is from the desktop that asked.
    fn whereabouts(&self, attempt: &QrAttempt, phone: &PhoneSession) -> (Separation, Option<Place>, Option<Place>) {
        let desktop = self.place_of(attempt.requester.ip.as_deref());
        let handset = self.place_of(phone.ip.as_deref());
        let s = separation(
            Whereabouts { ip: attempt.requester.ip.as_deref(), place: desktop.as_ref() },
            Whereabouts { ip: phone.ip.as_deref(), place: handset.as_ref() },
        );
        (s, desktop, handset)
    }

    /// The settings.
    pub fn config(&self) -> &QrConfig {
        &self.config
    }

    fn ms(d: Duration) -> Millis {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    async fn emit(&self, attempt: &QrAttempt, name: &str, attrs: serde_json::Value) {
        let event = StoredEvent::server(attempt.journey_id, name, Some("qr-approval"), attrs, self.clock.now_ms());
        self.journal.submit_server(vec![event]);
    }

    /// Starts an attempt for a desktop.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        identifier: Option<Identifier>,
        journey: Option<JourneyId>,
        requester: Requester,
    ) -> Result<NewQr> {
        if !self.config.enabled {
            return Err(DomainError::invalid("qr-disabled", "QR approval is switched off on this server"));
        }
        let token = SecretToken::generate()?;
        let redeem_secret = SecretToken::generate()?;
        let now = self.clock.now_ms();
        let attempt = QrAttempt {
            id: Uuid::new_v4(),
            journey_id: journey.unwrap_or_default(),
            state: QrState::Created,
            token_digest: token.digest(),
            token_expires_at: now + Self::ms(self.config.code_ttl),
            rotations: 0,
            redeem_digest: redeem_secret.digest(),
            match_code: 10 + random_byte()? % 90,
            identifier: identifier.map(|i| i.as_str().to_owned()),
            requester,
            created_at: now,
            expires_at: now + Self::ms(self.config.ttl),
            claimed_session: None,
            claimed_user: None,
            phone_ip: None,
            reason: None,
            allow_passkey: false,
            updated_at: now,
        };
        self.storage.qr.create_qr(&attempt).await?;
        let place = self.place_of(attempt.requester.ip.as_deref()).and_then(|p| p.label());
        self.emit(
            &attempt,
            "qr.created",
            json!({"ip": attempt.requester.ip, "userAgent": attempt.requester.user_agent, "place": place}),
        )
        .await;
        Ok(NewQr { attempt, token, redeem_secret })
    }

    /// The attempt, for the desktop that holds its redemption secret. An attempt past its
    /// time reads as `expired` even before the janitor has written that.
    pub async fn status(&self, id: Uuid, redeem_secret: Option<&str>) -> Result<QrAttempt> {
        let mut attempt = self.storage.qr.qr_by_id(id).await?.ok_or(DomainError::QrNotFound)?;
        if redeem_secret.map(digest).as_deref() != Some(attempt.redeem_digest.as_str()) {
            return Err(DomainError::RedeemRefused);
        }
        if !attempt.state.is_final() && attempt.expires_at <= self.clock.now_ms() {
            attempt.state = QrState::Expired;
        }
        Ok(attempt)
    }

    /// A new code for the same attempt (the old one stops working); only before a scan.
    pub async fn rotate(&self, id: Uuid, redeem_secret: Option<&str>) -> Result<(QrAttempt, SecretToken)> {
        let attempt = self.status(id, redeem_secret).await?;
        match attempt.state {
            QrState::Created => {}
            QrState::Expired => return Err(DomainError::QrExpired),
            other => return Err(DomainError::QrWrongState(other.as_str())),
        }
        let token = SecretToken::generate()?;
        let now = self.clock.now_ms();
        let until = (now + Self::ms(self.config.code_ttl)).min(attempt.expires_at);
        if !self.storage.qr.qr_rotate(id, &token.digest(), until, now).await? {
            return Err(DomainError::QrWrongState("no longer waiting for a scan"));
        }
        let attempt = self.storage.qr.qr_by_id(id).await?.ok_or(DomainError::QrNotFound)?;
        Ok((attempt, token))
    }

    /// The desktop gives up on this attempt.
    pub async fn cancel(&self, id: Uuid, redeem_secret: Option<&str>) -> Result<QrAttempt> {
        let attempt = self.status(id, redeem_secret).await?;
        for from in [QrState::Created, QrState::Scanned, QrState::Approved] {
            let t = self.transition(&attempt, from, QrState::Cancelled, QrGuard::None, None, None);
            if let Some(done) = self.storage.qr.qr_transition(&t, None).await? {
                self.emit(&done, "qr.cancelled", json!({})).await;
                return Ok(done);
            }
        }
        Err(DomainError::QrWrongState(attempt.state.as_str()))
    }

    fn transition(
        &self,
        attempt: &QrAttempt,
        from: QrState,
        to: QrState,
        guard: QrGuard,
        claim: Option<(String, UserId, Option<String>)>,
        reason: Option<&str>,
    ) -> QrTransition {
        QrTransition {
            id: attempt.id,
            from,
            to,
            guard,
            now: self.clock.now_ms(),
            claim,
            reason: reason.map(str::to_owned),
            allow_passkey: None,
        }
    }

    /// Finds the attempt behind a displayed token, telling expired and unknown apart.
    async fn by_token(&self, token: &str) -> Result<QrAttempt> {
        let attempt = self.storage.qr.qr_by_token(&digest(token)).await?.ok_or(DomainError::QrNotFound)?;
        if attempt.expires_at <= self.clock.now_ms() && !attempt.state.is_final() {
            return Err(DomainError::QrExpired);
        }
        Ok(attempt)
    }

    /// A signed-in phone claims the code it scanned. The first phone wins; the same phone
    /// session reopening the page carries on; any other device is refused and recorded.
    #[tracing::instrument(skip_all)]
    pub async fn claim(&self, token: &str, phone: &PhoneSession) -> Result<ClaimView> {
        let attempt = self.by_token(token).await?;
        let phone_identifier = self.identifier_of(phone.user_id).await?;
        let view = |attempt: QrAttempt, (separation, desktop_place, _): (Separation, Option<Place>, Option<Place>)| {
            ClaimView {
                match_choices: match_choices(attempt.id, attempt.match_code),
                far_apart: separation.far_apart,
                refusal: self.refusal(&attempt, &phone_identifier, &separation),
                separation,
                desktop_place,
                attempt,
            }
        };
        if attempt.state == QrState::Created {
            if attempt.token_expires_at <= self.clock.now_ms() {
                return Err(DomainError::QrExpired);
            }
            let claim = Some((phone.session_digest.clone(), phone.user_id, phone.ip.clone()));
            let t = self.transition(
                &attempt,
                QrState::Created,
                QrState::Scanned,
                QrGuard::Token(digest(token)),
                claim,
                None,
            );
            if let Some(done) = self.storage.qr.qr_transition(&t, None).await? {
                let whereabouts = self.whereabouts(&done, phone);
                let (s, desktop, handset) = &whereabouts;
                let places = json!({
                    "farApart": s.far_apart,
                    "differentNetworks": s.different_networks,
                    "distanceKm": s.distance_km,
                    "basis": s.basis,
                    "desktopPlace": desktop.as_ref().and_then(Place::label),
                    "phonePlace": handset.as_ref().and_then(Place::label),
                });
                let mut scanned = json!({"ip": phone.ip, "userAgent": phone.user_agent});
                merge(&mut scanned, &places);
                self.emit(&done, "qr.scanned", scanned).await;
                if s.far_apart {
                    let mut risk = json!({"desktopIp": done.requester.ip, "phoneIp": phone.ip});
                    merge(&mut risk, &places);
                    self.emit(&done, "qr.risk", risk).await;
                }
                return Ok(view(done, whereabouts));
            }
        }
        // Lost the race or scanned before: reload and decide.
        let now = self.storage.qr.qr_by_id(attempt.id).await?.ok_or(DomainError::QrNotFound)?;
        if now.claimed_session.as_deref() == Some(phone.session_digest.as_str()) && !now.state.is_final() {
            let whereabouts = self.whereabouts(&now, phone);
            return Ok(view(now, whereabouts));
        }
        if now.state == QrState::Scanned || now.state == QrState::Approved {
            self.refused(&now, phone, "second-scan").await;
            return Err(DomainError::QrClaimedElsewhere);
        }
        Err(DomainError::QrWrongState(now.state.as_str()))
    }

    /// The identifier of the phone's account.
    async fn identifier_of(&self, user: UserId) -> Result<String> {
        let account = self.storage.accounts.find_by_id(user).await?.ok_or(DomainError::NotSignedIn)?;
        Ok(account.identifier.as_str().to_owned())
    }

    /// Why the operator's rules refuse this approval, if they do: the phone's account is
    /// not the identifier typed on the computer, or (when set to refuse) the two are far
    /// apart by place or country.
    fn refusal(&self, attempt: &QrAttempt, phone_identifier: &str, separation: &Separation) -> Option<&'static str> {
        let typed = attempt.identifier.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if self.config.refuse_wrong_account && typed.is_some_and(|t| !t.eq_ignore_ascii_case(phone_identifier.trim())) {
            return Some("wrong-account");
        }
        if self.config.far_apart == FarApartPolicy::Refuse && separation.far_apart {
            return Some("far-apart");
        }
        None
    }

    async fn refused(&self, attempt: &QrAttempt, phone: &PhoneSession, why: &str) {
        self.emit(attempt, "qr.refused", json!({"reason": why, "ip": phone.ip, "userAgent": phone.user_agent})).await;
        let event = SecurityEvent {
            kind: format!("qr-{why}"),
            user_id: Some(phone.user_id),
            detail: json!({"qrId": attempt.id.to_string(), "journeyId": attempt.journey_id.to_string()}),
            at: self.clock.now_ms(),
            ip: phone.ip.clone(),
            user_agent: phone.user_agent.clone(),
        };
        if let Err(e) = self.storage.security.record(&event).await {
            tracing::error!(error = %e, "could not record a security event");
        }
    }

    /// The phone that claimed the attempt approves it, with the number it picked. A wrong
    /// number stops the attempt; a stale user verification asks for a new one.
    /// `allow_passkey` is the approver's choice to let the desktop save a passkey; it is
    /// kept only when the operator allows such grants.
    #[tracing::instrument(skip_all)]
    pub async fn approve(
        &self,
        token: &str,
        match_code: u8,
        phone: &PhoneSession,
        allow_passkey: bool,
    ) -> Result<QrAttempt> {
        let attempt = self.by_token(token).await?;
        if attempt.claimed_session.as_deref() != Some(phone.session_digest.as_str()) {
            if attempt.state == QrState::Created {
                return Err(DomainError::QrWrongState("not scanned yet"));
            }
            self.refused(&attempt, phone, "approve-from-other-device").await;
            return Err(DomainError::QrClaimedElsewhere);
        }
        if attempt.state != QrState::Scanned {
            return Err(DomainError::QrWrongState(attempt.state.as_str()));
        }
        if self.clock.now_ms().saturating_sub(phone.verified_at) > Self::ms(self.config.fresh_verification) {
            return Err(DomainError::ReauthRequired);
        }
        let guard = QrGuard::Session(phone.session_digest.clone());
        // Consent phishing: the operator's refusals come before any number is compared.
        let phone_identifier = self.identifier_of(phone.user_id).await?;
        let (separation, _, _) = self.whereabouts(&attempt, phone);
        if let Some(reason) = self.refusal(&attempt, &phone_identifier, &separation) {
            let t = self.transition(&attempt, QrState::Scanned, QrState::Rejected, guard, None, Some(reason));
            if let Some(done) = self.storage.qr.qr_transition(&t, None).await? {
                self.refused(&done, phone, reason).await;
            }
            return Err(if reason == "wrong-account" { DomainError::QrWrongAccount } else { DomainError::QrFarApart });
        }
        if match_code != attempt.match_code {
            let t = self.transition(&attempt, QrState::Scanned, QrState::Rejected, guard, None, Some("wrong-number"));
            if let Some(done) = self.storage.qr.qr_transition(&t, None).await? {
                self.refused(&done, phone, "wrong-number").await;
            }
            return Err(DomainError::WrongMatchCode);
        }
        let mut t = self.transition(&attempt, QrState::Scanned, QrState::Approved, guard, None, None);
        t.allow_passkey = Some(allow_passkey && self.config.session_may_add_passkey);
        let report = self.qr_report(crate::webhooks::EventType::QrApproved, &attempt, phone);
        let done = self
            .storage
            .qr
            .qr_transition(&t, report.as_ref())
            .await?
            .ok_or(DomainError::QrWrongState("no longer waiting for approval"))?;
        self.reporter.committed(report.as_ref());
        self.emit(
            &done,
            "qr.approved",
            json!({
                "ip": phone.ip,
                "userAgent": phone.user_agent,
                "userId": phone.user_id.to_string(),
                "allowPasskey": done.allow_passkey,
            }),
        )
        .await;
        Ok(done)
    }

    /// The phone that claimed the attempt denies it.
    #[tracing::instrument(skip_all)]
    pub async fn deny(&self, token: &str, phone: &PhoneSession) -> Result<QrAttempt> {
        let attempt = self.by_token(token).await?;
        if attempt.claimed_session.as_deref() != Some(phone.session_digest.as_str()) {
            return Err(DomainError::QrClaimedElsewhere);
        }
        let guard = QrGuard::Session(phone.session_digest.clone());
        let t = self.transition(&attempt, QrState::Scanned, QrState::Denied, guard, None, Some("denied-on-phone"));
        let report = self.qr_report(crate::webhooks::EventType::QrDenied, &attempt, phone);
        let done = self
            .storage
            .qr
            .qr_transition(&t, report.as_ref())
            .await?
            .ok_or(DomainError::QrWrongState(attempt.state.as_str()))?;
        self.reporter.committed(report.as_ref());
        self.emit(&done, "qr.denied", json!({"ip": phone.ip, "userAgent": phone.user_agent})).await;
        Ok(done)
    }

    /// The desktop redeems an approved attempt; returns the user to sign in.
    #[tracing::instrument(skip_all)]
    pub async fn redeem(&self, id: Uuid, redeem_secret: Option<&str>) -> Result<(QrAttempt, UserId)> {
        let attempt = self.status(id, redeem_secret).await?;
        if attempt.state == QrState::Expired {
            return Err(DomainError::QrExpired);
        }
        let guard = QrGuard::Redeem(attempt.redeem_digest.clone());
        let t = self.transition(&attempt, QrState::Approved, QrState::Redeemed, guard, None, None);
        let done =
            self.storage.qr.qr_transition(&t, None).await?.ok_or(DomainError::QrWrongState(attempt.state.as_str()))?;
        let user = done.claimed_user.ok_or_else(|| DomainError::Internal("approved attempt without a user".into()))?;
        self.emit(&done, "qr.redeemed", json!({"ip": done.requester.ip})).await;
        Ok((done, user))
    }

    /// The `qr.approved` / `qr.denied` message, when someone listens.
    fn qr_report(
        &self,
        event_type: crate::webhooks::EventType,
        attempt: &QrAttempt,
        phone: &PhoneSession,
    ) -> Option<crate::webhooks::Message> {
        self.reporter.message(event_type, || {
            json!({
                "attemptId": attempt.id.to_string(),
                "journeyId": attempt.journey_id.to_string(),
                "userId": phone.user_id.to_string(),
                "desktop": {
                    "ip": attempt.requester.ip,
                    "os": attempt.requester.device.os,
                    "browser": attempt.requester.device.browser,
                },
                "phoneIp": phone.ip,
            })
        })
    }

    /// The attempt id behind a displayed token, if any (for notifications after errors).
    pub async fn id_of_token(&self, token: &str) -> Option<Uuid> {
        self.storage.qr.qr_by_token(&digest(token)).await.ok().flatten().map(|a| a.id)
    }

    /// Expires every attempt whose time ran out; returns them (for notifications).
    pub async fn expire_due(&self) -> Result<Vec<QrAttempt>> {
        let expired = self.storage.qr.qr_expire_due(self.clock.now_ms()).await?;
        for a in &expired {
            self.emit(a, "qr.expired", json!({"from": a.reason})).await;
        }
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_hold_the_code_and_are_distinct_and_stable() {
        for code in [10u8, 42, 99] {
            let id = Uuid::new_v4();
            let c = match_choices(id, code);
            assert!(c.contains(&code));
            assert!(c[0] != c[1] && c[1] != c[2] && c[0] != c[2]);
            assert!(c.iter().all(|n| (10..=99).contains(n)));
            assert_eq!(c, match_choices(id, code));
        }
    }
}
