//! Nobody locked out (PRODUCT §7): a one-time code by email, the account's recovery codes
//! and an operator's single-use link each make a *recovery session*, which may add a
//! passkey on this device and see the account, and nothing else sensitive before a
//! passkey ceremony here (`SessionMethod::is_recovery`, PRODUCT §8). Email codes answer
//! the same for unknown identifiers (an attempt and a discarded mail are stored either
//! way); mail is queued in the database and sent by a worker, never in the request. Every
//! step is a server event of the method's own flow (`email-code`, `recovery-code`,
//! `recovery-link`). See `docs/decisions/0017-recovery.md`.

mod mail;
mod model;

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use mail::{MailContext, backoff, email_code_mail, verification_mail};
pub use model::{EmailCodeAttempt, EmailCodeTry, MailOutcome, MailState, QueuedMail, RecoveryLink};

use crate::clock::{Clock, Millis};
use crate::domain::{Identifier, JourneyId, SecretToken, UserId};
use crate::error::{DomainError, Result};
use crate::observe::Journal;
use crate::passkeys::SessionUser;
use crate::storage::{Storage, StoredEvent};

/// Recovery codes an account gets at a time.
pub const RECOVERY_CODES: usize = 10;

/// Symbols of a recovery code (no 0/O, 1/I/L): 31 of them, so 12 carry 59 bits.
const CODE_ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// One recovery code, `XXXX-XXXX-XXXX`, every symbol equally likely.
fn recovery_code() -> Result<String> {
    let mut raw = String::with_capacity(12);
    while raw.len() < 12 {
        // 248 = 8 × 31: larger bytes are dropped so no symbol is likelier.
        for b in random_bytes::<16>()?.into_iter().filter(|b| *b < 248) {
            if raw.len() < 12 {
                raw.push(char::from(CODE_ALPHABET[usize::from(b % 31)]));
            }
        }
    }
    Ok(format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]))
}

/// Recovery settings.
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// Email is configured (SMTP URL and sender): email codes are offered.
    pub email: bool,
    /// The site's name, in mails.
    pub site_name: String,
    /// The public origin, for links.
    pub origin: String,
    /// An email code's life (at most 10 minutes).
    pub email_code_ttl: Duration,
    /// Tries per email code (at most 5).
    pub email_code_tries: u32,
    /// A recovery link's life (15 minutes).
    pub link_ttl: Duration,
    /// Mail new accounts whose identifier is an email address a link to verify it.
    pub verify_email: bool,
}

impl RecoverySettings {
    /// The defaults for a site.
    pub fn new(site_name: impl Into<String>, origin: impl Into<String>, email: bool) -> Self {
        Self {
            email,
            site_name: site_name.into(),
            origin: origin.into().trim_end_matches('/').to_owned(),
            email_code_ttl: Duration::from_secs(600),
            email_code_tries: 5,
            link_ttl: Duration::from_secs(900),
            verify_email: false,
        }
    }
}

/// The fallback methods a server offers, by name: an email code when mail is configured,
/// and recovery codes (every account may make some).
pub fn fallback_methods(email: bool) -> Vec<String> {
    let mut methods = Vec::new();
    if email {
        methods.push("email-code".to_owned());
    }
    methods.push("recovery-code".to_owned());
    methods
}

fn ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| DomainError::Internal(format!("random source failed: {e}")))?;
    Ok(b)
}

/// A recovery code as typed: case, spaces and dashes do not matter.
fn normalized_code(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).take(64).collect()
}

/// Compares two strings without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Email codes, recovery codes and recovery links.
#[derive(Clone)]
pub struct RecoveryService {
    storage: Storage,
    settings: RecoverySettings,
    email_key: Vec<u8>,
    clock: Clock,
    journal: Option<Journal>,
}

impl RecoveryService {
    /// The service; `email_key` keys the email codes' HMAC (a server secret).
    pub fn new(storage: Storage, settings: RecoverySettings, email_key: Vec<u8>, clock: Clock) -> Self {
        Self { storage, settings, email_key, clock, journal: None }
    }

    /// Records each step in its journey through `journal`.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &RecoverySettings {
        &self.settings
    }

    /// Records a server event of a recovery flow.
    pub fn event(&self, journey: JourneyId, flow: &str, name: &str, attrs: serde_json::Value) {
        if let Some(journal) = &self.journal {
            journal.submit_server(vec![StoredEvent::server(journey, name, Some(flow), attrs, self.clock.now_ms())]);
        }
    }

    fn email_digest(&self, attempt_id: &str, code: &str) -> Result<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.email_key)
            .map_err(|e| DomainError::Internal(format!("email code key: {e}")))?;
        mac.update(attempt_id.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        Ok(hex(&mac.finalize().into_bytes()))
    }

    /// `POST /email-code/start`: a code for the account, mailed by the worker. The same
    /// answer (and the same writes) whether or not `identifier` has an account with an
    /// email address. Returns the attempt id and its journey.
    pub async fn start_email_code(
        &self,
        identifier: &Identifier,
        journey: Option<JourneyId>,
        asker: &MailContext,
    ) -> Result<(String, JourneyId)> {
        if !self.settings.email {
            return Err(DomainError::invalid(
                "email-disabled",
                "this server sends no email; use another way to sign in",
            ));
        }
        let account = self.storage.accounts.find_by_identifier(identifier).await?;
        let address = account.as_ref().map(|a| a.identifier.as_str().to_owned()).filter(|i| i.contains('@'));
        let now = self.clock.now_ms();
        let journey = journey.unwrap_or_default();
        let id = hex(&random_bytes::<16>()?);
        let number = u32::from_be_bytes(random_bytes::<4>()?) % 1_000_000;
        let code = format!("{number:06}");
        let attempt = EmailCodeAttempt {
            id: id.clone(),
            user_id: account.as_ref().filter(|_| address.is_some()).map(|a| a.id),
            code_digest: self.email_digest(&id, &code)?,
            journey_id: journey,
            tries: 0,
            created_at: now,
            expires_at: now.saturating_add(ms(self.settings.email_code_ttl)),
            used_at: 0,
        };
        let minutes = self.settings.email_code_ttl.as_secs().div_ceil(60);
        let (subject, text, html) = email_code_mail(&self.settings.site_name, &code, minutes, asker);
        let mail = QueuedMail {
            // The attempt's mail shares its id, so the page can ask how delivery goes.
            id: id.clone(),
            to: address.clone().unwrap_or_default(),
            subject,
            text,
            html,
            journey_id: journey,
            state: if address.is_some() { MailState::Pending } else { MailState::Discarded },
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
        };
        self.storage.recovery.start_email_code(&attempt, &mail).await?;
        self.event(journey, "email-code", "email.code_sent", json!({"attemptId": id, "mailed": address.is_some()}));
        Ok((id, journey))
    }

    /// `POST /email-code/finish`: the code for the attempt signs in once; a wrong one
    /// counts a try (`CodeWrong` with the tries left), then `TooManyTries`; after its time,
    /// `CodeExpired`. Returns the account to start a recovery session for.
    pub async fn finish_email_code(&self, attempt_id: &str, code: &str) -> Result<(UserId, JourneyId)> {
        let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if attempt_id.len() != 32 || !attempt_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::invalid("invalid-attempt-id", "attemptId is not one this server gave out"));
        }
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid("invalid-code", "the code has 6 digits"));
        }
        let now = self.clock.now_ms();
        let max = self.settings.email_code_tries;
        let attempt = match self.storage.recovery.try_email_code(attempt_id, max, now).await? {
            EmailCodeTry::Counted(a) => a,
            EmailCodeTry::Expired(a) => {
                self.event(a.journey_id, "email-code", "email.code_expired", json!({"tries": a.tries}));
                return Err(DomainError::CodeExpired);
            }
            EmailCodeTry::TooManyTries(a) => {
                self.event(a.journey_id, "email-code", "email.too_many_tries", json!({"tries": a.tries}));
                return Err(DomainError::TooManyTries);
            }
            EmailCodeTry::Used | EmailCodeTry::Unknown => {
                return Err(DomainError::invalid(
                    "invalid-attempt-id",
                    "this code was used already or never asked for",
                ));
            }
        };
        let right = same(&self.email_digest(attempt_id, &code)?, &attempt.code_digest);
        let (Some(user), true) = (attempt.user_id, right) else {
            let tries_left = max.saturating_sub(attempt.tries);
            self.event(attempt.journey_id, "email-code", "email.code_wrong", json!({"triesLeft": tries_left}));
            return Err(DomainError::CodeWrong { tries_left });
        };
        if !self.storage.recovery.use_email_code(attempt_id, now).await? {
            return Err(DomainError::invalid("invalid-attempt-id", "this code was used already"));
        }
        self.event(attempt.journey_id, "email-code", "email.code_entered", json!({"tries": attempt.tries}));
        Ok((user, attempt.journey_id))
    }

    /// How the mail of an email code attempt is going: `queued`, `retrying`, `sent` or
    /// `failed`. A mail never sent for an unknown identifier reads as `sent` once a real
    /// one would have been, so this tells nobody whether an account exists (only a real
    /// mailbox refusing mail reads as `failed`).
    pub async fn email_code_delivery(&self, attempt_id: &str) -> Result<&'static str> {
        let mail =
            self.storage.recovery.mail(attempt_id).await?.ok_or_else(|| {
                DomainError::invalid("invalid-attempt-id", "attemptId is not one this server gave out")
            })?;
        Ok(match mail.state {
            MailState::Sent => "sent",
            MailState::Failed => "failed",
            MailState::Pending if mail.attempts > 0 && mail.last_error.is_some() => "retrying",
            MailState::Pending => "queued",
            MailState::Discarded if self.clock.now_ms().saturating_sub(mail.created_at) < 200 => "queued",
            MailState::Discarded => "sent",
        })
    }

    /// `POST /recovery-codes`: ten new single-use codes for the signed-in account, shown
    /// once (only digests are kept); earlier codes stop working. Needs a step-up.
    pub async fn create_recovery_codes(&self, session: &SessionUser) -> Result<Vec<String>> {
        session.require_step_up(self.clock.now_ms())?;
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            codes.push(recovery_code()?);
        }
        let digests: Vec<String> = codes.iter().map(|c| hex(&Sha256::digest(normalized_code(c).as_bytes()))).collect();
        self.storage.recovery.replace_recovery_codes(session.user_id, &digests, self.clock.now_ms()).await?;
        tracing::info!(user = %session.user_id, "made new recovery codes");
        Ok(codes)
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, user: UserId) -> Result<u64> {
        self.storage.recovery.recovery_codes_left(user).await
    }

    /// `POST /recovery-codes/redeem`: one of the account's codes signs in once; says how
    /// many are left. Unknown identifiers and wrong codes get the same answer.
    pub async fn redeem_recovery_code(
        &self,
        identifier: &Identifier,
        code: &str,
        journey: Option<JourneyId>,
    ) -> Result<(UserId, u64, JourneyId)> {
        let journey = journey.unwrap_or_default();
        let digest = hex(&Sha256::digest(normalized_code(code).as_bytes()));
        let account = self.storage.accounts.find_by_identifier(identifier).await?;
        // An unknown identifier still runs the statement, for the same timing.
        let user = account.map(|a| a.id).unwrap_or_default();
        let Some(left) = self.storage.recovery.use_recovery_code(user, &digest, self.clock.now_ms()).await? else {
            self.event(journey, "recovery-code", "recovery_code.wrong", json!({}));
            return Err(DomainError::CodeWrong { tries_left: 0 });
        };
        self.event(journey, "recovery-code", "recovery_code.used", json!({"codesLeft": left}));
        Ok((user, left, journey))
    }

    /// `handoff users recover` / the admin API: a single-use sign-in link for the account,
    /// valid 15 minutes. Returns the URL and when it expires.
    pub async fn make_recovery_link(&self, identifier: &Identifier) -> Result<(String, Millis)> {
        let account = self
            .storage
            .accounts
            .find_by_identifier(identifier)
            .await?
            .ok_or_else(|| DomainError::invalid("unknown-account", format!("no account is called {identifier}")))?;
        let token = SecretToken::generate()?;
        let now = self.clock.now_ms();
        let link = RecoveryLink {
            digest: token.digest(),
            user_id: account.id,
            journey_id: JourneyId::default(),
            created_at: now,
            expires_at: now.saturating_add(ms(self.settings.link_ttl)),
            used_at: 0,
        };
        self.storage.recovery.add_recovery_link(&link).await?;
        self.event(
            link.journey_id,
            "recovery-link",
            "recovery_link.created",
            json!({"userId": account.id.to_string()}),
        );
        tracing::info!(user = %account.id, "made a recovery link");
        Ok((format!("{}/recovery-link/{}", self.settings.origin, token.expose()), link.expires_at))
    }

    /// The link behind a token when it still works (the page shows it before use).
    pub async fn recovery_link(&self, token: &str) -> Result<RecoveryLink> {
        let digest = SecretToken::parse(token).map(|t| t.digest()).ok_or(DomainError::RecoveryLinkInvalid)?;
        let link = self.storage.recovery.recovery_link(&digest).await?.ok_or(DomainError::RecoveryLinkInvalid)?;
        if link.used_at > 0 || link.expires_at <= self.clock.now_ms() {
            return Err(DomainError::RecoveryLinkInvalid);
        }
        self.event(link.journey_id, "recovery-link", "recovery_link.opened", json!({}));
        Ok(link)
    }

    /// Uses a link once; returns the account to start a recovery session for.
    pub async fn use_recovery_link(&self, token: &str) -> Result<(UserId, JourneyId)> {
        let digest = SecretToken::parse(token).map(|t| t.digest()).ok_or(DomainError::RecoveryLinkInvalid)?;
        let link = self
            .storage
            .recovery
            .use_recovery_link(&digest, self.clock.now_ms())
            .await?
            .ok_or(DomainError::RecoveryLinkInvalid)?;
        self.event(link.journey_id, "recovery-link", "recovery_link.used", json!({}));
        Ok((link.user_id, link.journey_id))
    }

    /// At sign-up (when the operator turned it on): mails a new account whose identifier is
    /// an email address a single-use link that verifies it (24 hours). Returns whether a
    /// mail was queued.
    pub async fn send_verification(&self, user: UserId, identifier: &Identifier, asker: &MailContext) -> Result<bool> {
        let address = identifier.as_str();
        if !self.settings.verify_email || !self.settings.email || !address.contains('@') {
            return Ok(false);
        }
        let token = SecretToken::generate()?;
        let now = self.clock.now_ms();
        let link = format!("{}/verify-email/{}", self.settings.origin, token.expose());
        let (subject, text, html) = verification_mail(&self.settings.site_name, &link, asker);
        let mail = QueuedMail {
            id: hex(&random_bytes::<16>()?),
            to: address.to_owned(),
            subject,
            text,
            html,
            journey_id: JourneyId::default(),
            state: MailState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
        };
        let expires = now.saturating_add(24 * 3600 * 1000);
        self.storage.recovery.add_email_verification(&token.digest(), user, address, expires, &mail).await?;
        tracing::info!(user = %user, "mailed a link to verify the account's address");
        Ok(true)
    }

    /// Uses a verification link once; the account whose address it verified.
    pub async fn verify_email(&self, token: &str) -> Result<UserId> {
        let digest = SecretToken::parse(token).map(|t| t.digest()).ok_or(DomainError::RecoveryLinkInvalid)?;
        self.storage
            .recovery
            .use_email_verification(&digest, self.clock.now_ms())
            .await?
            .ok_or(DomainError::RecoveryLinkInvalid)
    }

    /// Leases up to `limit` mails that are due, for a minute (so one worker sends each).
    pub async fn due_mail(&self, limit: u32) -> Result<Vec<QueuedMail>> {
        let now = self.clock.now_ms();
        self.storage.recovery.claim_mail(now, now.saturating_add(60_000), limit).await
    }

    /// The SMTP server accepted `mail`.
    pub async fn mail_sent(&self, mail: &QueuedMail) -> Result<()> {
        let now = self.clock.now_ms();
        self.storage.recovery.mail_done(&mail.id, &MailOutcome::Sent, now).await?;
        let took = now.saturating_sub(mail.created_at);
        self.event(mail.journey_id, "email-code", "email.delivered", json!({"attempts": mail.attempts, "ms": took}));
        Ok(())
    }

    /// Sending `mail` failed: `permanent` (a 5xx answer) ends it (`email.bounced`); anything
    /// else is tried again later (`email.deferred`), until the tries run out.
    pub async fn mail_failed(&self, mail: &QueuedMail, error: &str, permanent: bool) -> Result<()> {
        let now = self.clock.now_ms();
        let jitter = random_bytes::<1>()?[0];
        let next = if permanent { None } else { backoff(mail.attempts, now, jitter) };
        let outcome = match next {
            Some(at) => MailOutcome::Retry { at, error: error.to_owned() },
            None => MailOutcome::Failed { error: error.to_owned() },
        };
        self.storage.recovery.mail_done(&mail.id, &outcome, now).await?;
        let (name, attrs) = match next {
            Some(at) => ("email.deferred", json!({"error": error, "attempts": mail.attempts, "retryInMs": at - now})),
            None => ("email.bounced", json!({"error": error, "attempts": mail.attempts, "permanent": permanent})),
        };
        tracing::warn!(mail = %mail.id, attempts = mail.attempts, permanent, error, "a mail was not accepted");
        self.event(mail.journey_id, "email-code", name, attrs);
        Ok(())
    }

    /// Deletes expired attempts and links and finished mail.
    pub async fn purge(&self) -> Result<u64> {
        self.storage.recovery.purge_recovery(self.clock.now_ms()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_well_formed_and_typed_loosely() {
        let code = recovery_code().unwrap();
        assert_eq!(code.len(), 14);
        assert!(code.chars().filter(|c| *c != '-').all(|c| CODE_ALPHABET.contains(&(c as u8))));
        assert_eq!(normalized_code(&code.to_lowercase().replace('-', " ")), normalized_code(&code));
        assert_ne!(recovery_code().unwrap(), code);
    }
}
