//! Storage traits, one per concern. The store crate implements each for SQLite and
//! PostgreSQL; the domain only ever sees these. Every method that must be atomic says so,
//! and implementations do it in one statement (compare-and-set or delete-returning), never
//! read-then-write.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Millis;
use crate::domain::{CeremonyId, CredentialId, Identifier, JourneyId, UserId};
use crate::error::Result;
use crate::intelligence::FailureHistory;
use crate::passkeys::{Account, PasskeyRecord, PasskeySummary, PasskeyUse};

mod oidc;
mod webhooks;
pub use oidc::{Grants, OidcClients, SigningKeyRecord, SigningKeys};
pub use webhooks::{ClaimedDelivery, Delivery, HealthChange, Settled, Settlement, Webhooks};

use crate::webhooks::Message;

/// Accounts and their passkeys.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// The account with this identifier.
    async fn find_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>>;
    /// The account with this id.
    async fn find_by_id(&self, id: UserId) -> Result<Option<Account>>;
    /// Creates an account and its first passkey together (one transaction), with the
    /// webhook deliveries of `reports` (`user.created`, `passkey.created`).
    /// Fails with `IdentifierTaken` or `CredentialExists`.
    async fn create_with_passkey(&self, account: &Account, passkey: &PasskeyRecord, reports: &[Message]) -> Result<()>;
    /// Adds a passkey to an existing account, with the deliveries of `report` in the same
    /// transaction. Fails with `CredentialExists`.
    async fn add_passkey(&self, passkey: &PasskeyRecord, report: Option<&Message>) -> Result<()>;
    /// The account with this identifier and all its passkeys, in one round trip (the
    /// decision needs both, and unknown identifiers must cost the same).
    async fn find_with_passkeys(&self, identifier: &Identifier) -> Result<Option<(Account, Vec<PasskeyRecord>)>>;
    /// The account with this identifier and where each of its passkeys lives (no key
    /// material), in one round trip: what a sign-in decision reads.
    async fn find_inventory(&self, identifier: &Identifier) -> Result<Option<(Account, Vec<PasskeySummary>)>>;
    /// The inventories of up to `accounts` accounts (the first by user id: random, and
    /// stable as accounts come and go), each with its user id, for decoys shaped like real
    /// accounts. An account without passkeys has an empty inventory.
    async fn sample_inventories(&self, accounts: u32) -> Result<Vec<(UserId, Vec<PasskeySummary>)>>;
    /// All passkeys of an account, oldest first.
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>>;
    /// One passkey by credential id, with its owner's account.
    async fn find_passkey(&self, id: &CredentialId) -> Result<Option<(PasskeyRecord, Account)>>;
    /// Records a sign-in. Atomic compare-and-set: succeeds only when the stored counter is
    /// below the new one, or both are zero (authenticators without counters). Returns
    /// false when the counter did not advance (a clone or a concurrent replay).
    async fn record_use(&self, usage: &PasskeyUse) -> Result<bool>;
    /// Deletes a passkey of this user, with the deliveries of `report` if it existed; false
    /// when there was none.
    async fn delete_passkey(&self, user: UserId, id: &CredentialId, report: Option<&Message>) -> Result<bool>;
}

/// Which ceremony a stored state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// `navigator.credentials.create`.
    Registration,
    /// `navigator.credentials.get`.
    Authentication,
}

impl CeremonyKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Authentication => "authentication",
        }
    }
}

/// A ceremony in flight.
#[derive(Debug, Clone)]
pub struct CeremonyRecord {
    /// Its id.
    pub id: CeremonyId,
    /// What kind.
    pub kind: CeremonyKind,
    /// Opaque JSON the passkey service wrote (webauthn state and context).
    pub payload: String,
    /// When it started.
    pub created_at: Millis,
    /// When it stops being usable.
    pub expires_at: Millis,
}

/// Ceremony state, single-use.
#[async_trait]
pub trait Ceremonies: Send + Sync {
    /// Stores a new ceremony.
    async fn put(&self, ceremony: &CeremonyRecord) -> Result<()>;
    /// Removes and returns the ceremony of this id and kind, atomically: of two concurrent
    /// takes, at most one gets it. Expired ceremonies are returned too (the caller says
    /// "expired" rather than "unknown").
    async fn take(&self, id: CeremonyId, kind: CeremonyKind) -> Result<Option<CeremonyRecord>>;
    /// Deletes ceremonies that expired before `now`; returns how many.
    async fn purge_expired(&self, now: Millis) -> Result<u64>;
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// SHA-256 of the token (the token itself is never stored).
    pub token_digest: String,
    /// The user.
    pub user_id: UserId,
    /// When it started.
    pub created_at: Millis,
    /// When it ends.
    pub expires_at: Millis,
    /// How the session was made.
    pub method: crate::passkeys::SessionMethod,
    /// Last user-verified passkey ceremony in this browser during the session (0: none).
    pub verified_at: Millis,
    /// Until when the session may add one passkey on this device without a step-up (0: no).
    pub may_add_passkey_until: Millis,
    /// When the session was last used (kept to the minute).
    pub last_seen_at: Millis,
    /// The device's user agent when it started.
    pub user_agent: Option<String>,
    /// The client's IP when it started.
    pub ip: Option<String>,
}

/// Server-side sessions.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Stores a session, with the webhook deliveries of `report` in the same transaction.
    async fn create(&self, session: &SessionRecord, report: Option<&Message>) -> Result<()>;
    /// The live (unexpired) session with this token digest.
    async fn find(&self, token_digest: &str, now: Millis) -> Result<Option<SessionRecord>>;
    /// Deletes a session (with the deliveries of `report` if it existed); false when there
    /// was none.
    async fn revoke(&self, token_digest: &str, report: Option<&Message>) -> Result<bool>;
    /// The live sessions of a user, newest first.
    async fn of_user(&self, user: UserId, now: Millis) -> Result<Vec<SessionRecord>>;
    /// Ends the session of `user` whose digest starts with `id_prefix`; false when none.
    /// `report`'s deliveries are written if one ended.
    async fn revoke_for_user(&self, user: UserId, id_prefix: &str, report: Option<&Message>) -> Result<bool>;
    /// Records a new user-verified passkey ceremony in a live session.
    async fn mark_verified(&self, token_digest: &str, at: Millis) -> Result<bool>;
    /// Uses up the session's grant to add a passkey without a step-up; false when the
    /// session has no live grant (none, expired or already used).
    async fn take_passkey_grant(&self, token_digest: &str, now: Millis) -> Result<bool>;
    /// Ends every session of `user`; returns how many.
    /// `report`'s deliveries are written if any ended.
    async fn revoke_all(&self, user: UserId, report: Option<&Message>) -> Result<u64>;
    /// Notes that a live session was used at `now`.
    async fn touch(&self, token_digest: &str, now: Millis) -> Result<()>;
    /// Deletes sessions that expired, or were last used before `idle_since`; returns how many.
    async fn purge_expired(&self, now: Millis, idle_since: Millis) -> Result<u64>;
}

/// A security-relevant event (counter regression, refused QR scan, …).
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// Stable kind, e.g. `counter-regression`.
    pub kind: String,
    /// The user concerned, when known.
    pub user_id: Option<UserId>,
    /// JSON details.
    pub detail: serde_json::Value,
    /// When.
    pub at: Millis,
    /// Client IP, when known.
    pub ip: Option<String>,
    /// Client user agent, when known.
    pub user_agent: Option<String>,
}

/// The security event log.
#[async_trait]
pub trait SecurityEvents: Send + Sync {
    /// Appends an event.
    async fn record(&self, event: &SecurityEvent) -> Result<()>;
    /// The latest events of a user, newest first.
    async fn of_user(&self, user: UserId, limit: u32) -> Result<Vec<SecurityEvent>>;
}

/// One passkey attempt in one browser.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The normalised identifier (known or not).
    pub identifier: String,
    /// The browser's device cookie.
    pub device_id: String,
    /// When.
    pub at: Millis,
    /// True for a failure.
    pub failed: bool,
    /// Error code or name, for failures.
    pub detail: Option<String>,
}

/// Passkey attempts per identifier and browser.
#[async_trait]
pub trait Attempts: Send + Sync {
    /// Records an attempt.
    async fn record_attempt(&self, attempt: &Attempt) -> Result<()>;
    /// Failures since the last success and since `since`.
    async fn failure_history(&self, identifier: &str, device_id: &str, since: Millis) -> Result<FailureHistory>;
}

/// A product event as stored (journeys are built from these).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Unique within its journey (the client's id, or a UUID); a repeat is ignored.
    pub event_id: String,
    /// The journey.
    pub journey_id: JourneyId,
    /// Canonical name, e.g. `decision.made`.
    pub name: String,
    /// `desktop`, `mobile` or `server`.
    pub device: String,
    /// `passkey-local`, `cross-device`, `qr-approval` or `fallback`.
    pub flow: Option<String>,
    /// The emitter's clock.
    pub ts: Millis,
    /// The server's clock on receipt.
    pub received_at: Millis,
    /// Free attributes: a JSON object, as text (validated on the way in, parsed only
    /// where something reads it).
    pub attrs: String,
    /// Emitting device's OS.
    pub os: Option<String>,
    /// Emitting device's browser.
    pub browser: Option<String>,
    /// Emitting device's form factor.
    pub form_factor: Option<String>,
    /// Native app version, when given.
    pub app_version: Option<String>,
    /// The emitter's clock minus the server's, measured for its batch (`receivedAt - sentAt`:
    /// the skew plus the network's delay); `None` when the batch did not say when it was
    /// sent. Used when the event is folded; not stored with it.
    pub clock_offset: Option<Millis>,
}

/// A stored journey: its facts, and when it was finished (idle or with a session).
#[derive(Debug, Clone)]
pub struct JourneyRecord {
    /// The journey.
    pub journey_id: JourneyId,
    /// Everything folded in so far.
    pub facts: crate::observe::JourneyFacts,
    /// When it was finished; `None` while open.
    pub finished_at: Option<Millis>,
}

/// A journey search (support lookup), newest first.
#[derive(Debug, Clone, Default)]
pub struct JourneyQuery {
    /// Exact identifier.
    pub identifier: Option<String>,
    /// Started at or after (ms).
    pub from: Option<Millis>,
    /// Started before (ms).
    pub to: Option<Millis>,
    /// `success`, `abandoned`, `failed`.
    pub outcome: Option<String>,
    /// Root cause code.
    pub root_cause: Option<String>,
    /// Flow.
    pub flow: Option<String>,
    /// Continue after this (started_at, journey id) — the last row of the previous page.
    pub after: Option<(Millis, JourneyId)>,
    /// Page size.
    pub limit: u32,
}

impl StoredEvent {
    /// The attributes, parsed (`{}` when unreadable).
    pub fn attrs_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.attrs).unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
    }

    /// An event the server records itself (its clock is the receive time).
    pub fn server(
        journey_id: JourneyId,
        name: &str,
        flow: Option<&str>,
        attrs: serde_json::Value,
        now: Millis,
    ) -> Self {
        Self {
            event_id: uuid::Uuid::new_v4().to_string(),
            journey_id,
            name: name.to_owned(),
            device: "server".into(),
            flow: flow.map(str::to_owned),
            ts: now,
            received_at: now,
            attrs: attrs.to_string(),
            os: None,
            browser: None,
            form_factor: None,
            app_version: None,
            clock_offset: None,
        }
    }
}

/// A segment column journeys can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The desktop's operating system.
    Os,
    /// The desktop's browser.
    Browser,
    /// The desktop's form factor.
    FormFactor,
    /// The native app version.
    AppVersion,
    /// The phone's operating system.
    MobileOs,
    /// The phone's browser.
    MobileBrowser,
    /// The application signed in to (OIDC client id).
    Client,
}

impl Segment {
    /// Every segment with its query-string name.
    pub const ALL: [(&'static str, Segment); 7] = [
        ("os", Segment::Os),
        ("browser", Segment::Browser),
        ("formFactor", Segment::FormFactor),
        ("appVersion", Segment::AppVersion),
        ("mobileOs", Segment::MobileOs),
        ("mobileBrowser", Segment::MobileBrowser),
        ("client", Segment::Client),
    ];
}

/// The journeys a funnel counts: one flow, started in a time window.
#[derive(Debug, Clone)]
pub struct FunnelQuery {
    /// The flow.
    pub flow: String,
    /// Started at or after (ms).
    pub from: Option<Millis>,
    /// Started before (ms).
    pub to: Option<Millis>,
    /// Break down by this segment.
    pub by: Option<Segment>,
}

/// Funnel counts of one segment (or of all journeys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelCounts {
    /// The segment's value (`None`: all journeys, or the segment is unknown).
    pub segment: Option<String>,
    /// Journeys of the flow.
    pub journeys: u64,
    /// Journeys that reached step `i` (observed or implied).
    pub reached: Vec<u64>,
}

/// Finished journeys of one flow and segment value with one outcome and root cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The flow.
    pub flow: String,
    /// The segment's value (`None`: not reported).
    pub segment: Option<String>,
    /// `success`, `abandoned` or `failed`.
    pub outcome: String,
    /// Root cause, when not a success.
    pub root_cause: Option<String>,
    /// How many journeys.
    pub journeys: u64,
}

/// Finished journeys with the same flow, every segment value, outcome and root cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentedOutcome {
    /// The flow.
    pub flow: String,
    /// The segment values, in the order of [`Segment::ALL`].
    pub segments: [Option<String>; 7],
    /// `success`, `abandoned` or `failed`.
    pub outcome: String,
    /// Root cause, when not a success.
    pub root_cause: Option<String>,
    /// How many journeys.
    pub journeys: u64,
}

impl SegmentedOutcome {
    /// The same count seen along one segment dimension (index into [`Segment::ALL`]).
    pub fn along(&self, dimension: usize) -> OutcomeCount {
        OutcomeCount {
            flow: self.flow.clone(),
            segment: self.segments.get(dimension).cloned().flatten(),
            outcome: self.outcome.clone(),
            root_cause: self.root_cause.clone(),
            journeys: self.journeys,
        }
    }
}

/// Builds the webhook message (if any) for a journey being finished.
pub type JourneyReport = dyn for<'j> Fn(&'j crate::observe::JourneyColumns) -> Option<Message> + Send + Sync;

/// Product events and the journeys stitched from them.
#[async_trait]
pub trait Journeys: Send + Sync {
    /// A unit of work for stitching events into journeys (`observe::stitch`).
    async fn begin_stitch(&self) -> Result<Box<dyn crate::observe::stitch::StitchUnit>>;
    /// In one transaction: stores the events (a repeated event id is ignored) and folds
    /// the new ones into their journeys' facts (`observe::stitch`). Returns the (journey,
    /// event id) of the new events.
    async fn record(&self, events: &[StoredEvent]) -> Result<Vec<(JourneyId, String)>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        crate::observe::stitch::stitch(self.begin_stitch().await?, events).await
    }
    /// Finishes open journeys with no event received since `idle_since`; returns how many.
    async fn finish_idle(&self, idle_since: Millis, now: Millis, limit: u32) -> Result<u64>;
    /// [`Journeys::finish_idle`], writing in the same transaction the webhook message
    /// `report` builds for each journey it finishes (`signin.failed` for a failed one, with
    /// its final root cause). Stores without an outbox finish without reporting.
    async fn finish_idle_reported(
        &self,
        idle_since: Millis,
        now: Millis,
        limit: u32,
        report: &JourneyReport,
    ) -> Result<u64> {
        let _ = report;
        self.finish_idle(idle_since, now, limit).await
    }
    /// One journey.
    async fn journey(&self, id: JourneyId) -> Result<Option<JourneyRecord>>;
    /// The events of a journey, in order of receipt.
    async fn events_of(&self, id: JourneyId) -> Result<Vec<StoredEvent>>;
    /// Journeys matching a search, newest first.
    async fn search(&self, query: &JourneyQuery) -> Result<Vec<JourneyRecord>>;
    /// Step counts of a flow's funnel (`steps` steps), per segment when `by` is set,
    /// largest segments first.
    async fn funnel(&self, query: &FunnelQuery, steps: usize) -> Result<Vec<FunnelCounts>>;
    /// Finished journeys of the flow that did not succeed, by root cause, most first.
    async fn drop_offs(&self, query: &FunnelQuery) -> Result<Vec<(String, u64)>>;
    /// Finished journeys started in `[from, to)`, counted by flow, every segment value,
    /// outcome and root cause (one scan serves every segment dimension).
    async fn outcome_counts(&self, from: Millis, to: Millis) -> Result<Vec<SegmentedOutcome>>;
    /// Percentiles (0–1) of the time from first event to session of the flow's successes.
    async fn time_to_session(&self, query: &FunnelQuery, percentiles: &[f64]) -> Result<Vec<Option<Millis>>>;
}

/// Server-wide secrets shared by every instance on the same database.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret called `name`; stores `candidate` first if there is none yet (the first
    /// instance to ask wins, the others read its value).
    async fn get_or_create(&self, name: &str, candidate: &str) -> Result<String>;
}

/// What happened to a passkey-append offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    /// The offer was shown.
    Offered,
    /// The person skipped it.
    Skipped,
    /// The person created a passkey.
    Accepted,
}

impl AppendAction {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Skipped => "skipped",
            Self::Accepted => "accepted",
        }
    }
}

/// A user's passkey-append history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendHistory {
    /// Offers since the given time (for a per-day cap).
    pub offers_since: u32,
    /// Skips ever.
    pub skips_total: u32,
    /// The latest skip.
    pub last_skip_at: Option<Millis>,
}

/// Passkey-append offers.
#[async_trait]
pub trait AppendOffers: Send + Sync {
    /// Records an offer, skip or acceptance.
    async fn record_append(&self, user: UserId, device_id: &str, at: Millis, action: AppendAction) -> Result<()>;
    /// The user's history, counting offers since `since`.
    async fn append_history(&self, user: UserId, since: Millis) -> Result<AppendHistory>;
}

/// What must hold for a QR transition besides its `from` state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrGuard {
    /// The displayed token (digest) is the current one and has not expired.
    Token(String),
    /// The phone session (digest) is the one that claimed the attempt.
    Session(String),
    /// The desktop's redemption secret (digest) matches.
    Redeem(String),
    /// Nothing else.
    None,
}

/// One compare-and-set transition of a QR attempt.
#[derive(Debug, Clone)]
pub struct QrTransition {
    /// The attempt.
    pub id: uuid::Uuid,
    /// The state it must be in.
    pub from: crate::qr::QrState,
    /// The state it moves to.
    pub to: crate::qr::QrState,
    /// The extra condition.
    pub guard: QrGuard,
    /// Now (the attempt must not have expired).
    pub now: Millis,
    /// Set the claiming phone session (digest), user and IP.
    pub claim: Option<(String, UserId, Option<String>)>,
    /// Set the reason (denials and rejections).
    pub reason: Option<String>,
    /// Set whether the redeeming desktop may add a passkey (approvals).
    pub allow_passkey: Option<bool>,
}

/// QR approval attempts. Every transition is one compare-and-set statement.
#[async_trait]
pub trait QrAttempts: Send + Sync {
    /// Stores a new attempt.
    async fn create_qr(&self, attempt: &crate::qr::QrAttempt) -> Result<()>;
    /// The attempt with this id.
    async fn qr_by_id(&self, id: uuid::Uuid) -> Result<Option<crate::qr::QrAttempt>>;
    /// The attempt whose current token has this digest.
    async fn qr_by_token(&self, token_digest: &str) -> Result<Option<crate::qr::QrAttempt>>;
    /// Applies a transition if its conditions hold; returns the attempt after it, or `None`.
    /// `report`'s deliveries are written with the transition, if it happened.
    async fn qr_transition(&self, t: &QrTransition, report: Option<&Message>) -> Result<Option<crate::qr::QrAttempt>>;
    /// Replaces the displayed token of a `created`, unexpired attempt.
    async fn qr_rotate(
        &self,
        id: uuid::Uuid,
        token_digest: &str,
        token_expires_at: Millis,
        now: Millis,
    ) -> Result<bool>;
    /// Moves every unfinished attempt whose time ran out to `expired`; returns them.
    async fn qr_expire_due(&self, now: Millis) -> Result<Vec<crate::qr::QrAttempt>>;
}

/// All storage a Handoff instance uses.
#[derive(Clone)]
pub struct Storage {
    /// Accounts and passkeys.
    pub accounts: Arc<dyn Accounts>,
    /// Ceremony state.
    pub ceremonies: Arc<dyn Ceremonies>,
    /// Sessions.
    pub sessions: Arc<dyn Sessions>,
    /// Security events.
    pub security: Arc<dyn SecurityEvents>,
    /// Passkey attempts per browser.
    pub attempts: Arc<dyn Attempts>,
    /// Product events and journeys.
    pub journeys: Arc<dyn Journeys>,
    /// Server-wide secrets.
    pub secrets: Arc<dyn Secrets>,
    /// Passkey-append offers.
    pub append_offers: Arc<dyn AppendOffers>,
    /// QR approval attempts.
    pub qr: Arc<dyn QrAttempts>,
    /// Rate-limit counters shared by every instance.
    pub rate_counters: Arc<dyn RateCounters>,
    /// Purging what is older than the retention period.
    pub retention: Arc<dyn Retention>,
    /// The identity provider's clients and consents.
    pub oidc_clients: Arc<dyn OidcClients>,
    /// The identity provider's signing keys.
    pub signing_keys: Arc<dyn SigningKeys>,
    /// The identity provider's requests, grants, codes and tokens.
    pub grants: Arc<dyn Grants>,
    /// Email codes, recovery codes, recovery links and the mail queue.
    pub recovery: Arc<dyn Recovery>,
    /// Webhook endpoints and the outbox.
    pub webhooks: Arc<dyn Webhooks>,
}

/// What one retention batch deleted, per kind of row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Journeys (whose rolled-up counts stay in the hourly rollups).
    pub journeys: u64,
    /// Events of those journeys.
    pub events: u64,
    /// Finished QR attempts.
    pub qr_attempts: u64,
    /// Security events.
    pub security_events: u64,
    /// Passkey attempts (the failure history of browsers).
    pub attempts: u64,
    /// Passkey-append offers and skips.
    pub append_offers: u64,
}

impl Purged {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.journeys + self.events + self.qr_attempts + self.security_events + self.attempts + self.append_offers
    }
}

/// Retention (PRODUCT §8): deletes personal data older than the retention period in small
/// batches, so no transaction holds the write lock for long.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Deletes at most `batch` rows of each kind that are older than `cutoff`. Journeys go
    /// with their events, and only once their hour is rolled up (so funnels and insights
    /// keep counting them); unfinished QR attempts are left to expire first.
    async fn purge_before(&self, cutoff: Millis, batch: u32) -> Result<Purged>;
}

/// Fixed-window request counters kept in the database, so that every instance on one
/// PostgreSQL counts against the same limit (N instances must not allow N times it).
#[async_trait]
pub trait RateCounters: Send + Sync {
    /// Counts one request under each of `keys` (distinct) in the window starting at
    /// `window_start`, in one statement; returns how many each window now holds, this one
    /// included, in the order of `keys`.
    async fn hit(&self, keys: &[String], window_start: Millis) -> Result<Vec<u64>>;
    /// How many requests the window holds under `key`, without counting one.
    async fn hits(&self, key: &str, window_start: Millis) -> Result<u64>;
    /// Deletes the counters of windows that started before `before`; returns how many.
    async fn purge_rate_counters(&self, before: Millis) -> Result<u64>;
}

/// Recovery (PRODUCT §7): email codes, recovery codes, operator links and the mail queue.
/// Every single use is one conditional statement.
#[async_trait]
pub trait Recovery: Send + Sync {
    /// In one transaction: stores an email code attempt and its mail (a `discarded` mail
    /// for an unknown identifier, so both cases do the same work).
    async fn start_email_code(
        &self,
        attempt: &crate::recovery::EmailCodeAttempt,
        mail: &crate::recovery::QueuedMail,
    ) -> Result<()>;
    /// Counts one try of an attempt, atomically, while it is live, unused and has tries left.
    async fn try_email_code(&self, id: &str, max_tries: u32, now: Millis) -> Result<crate::recovery::EmailCodeTry>;
    /// Marks an attempt used; false when it was used already (a concurrent finish).
    async fn use_email_code(&self, id: &str, now: Millis) -> Result<bool>;
    /// In one transaction: replaces the account's recovery codes by these digests.
    async fn replace_recovery_codes(&self, user: UserId, digests: &[String], now: Millis) -> Result<()>;
    /// Uses one unused recovery code of the account; how many are left after it, or `None`
    /// when there is no such unused code.
    async fn use_recovery_code(&self, user: UserId, digest: &str, now: Millis) -> Result<Option<u64>>;
    /// How many unused recovery codes the account has.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u64>;
    /// Stores a recovery link.
    async fn add_recovery_link(&self, link: &crate::recovery::RecoveryLink) -> Result<()>;
    /// The link with this digest, whatever its state.
    async fn recovery_link(&self, digest: &str) -> Result<Option<crate::recovery::RecoveryLink>>;
    /// Uses a live, unused link, atomically.
    async fn use_recovery_link(&self, digest: &str, now: Millis) -> Result<Option<crate::recovery::RecoveryLink>>;
    /// Leases up to `limit` due mails until `lease_until` (so one worker sends each).
    async fn claim_mail(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<crate::recovery::QueuedMail>>;
    /// Records how a try ended.
    async fn mail_done(&self, id: &str, outcome: &crate::recovery::MailOutcome, now: Millis) -> Result<()>;
    /// The mail with this id.
    async fn mail(&self, id: &str) -> Result<Option<crate::recovery::QueuedMail>>;
    /// In one transaction: stores an email verification link (its digest) and its mail.
    async fn add_email_verification(
        &self,
        digest: &str,
        user: UserId,
        address: &str,
        expires_at: Millis,
        mail: &crate::recovery::QueuedMail,
    ) -> Result<()>;
    /// Uses a live, unused verification link, atomically; the account it verified.
    async fn use_email_verification(&self, digest: &str, now: Millis) -> Result<Option<UserId>>;
    /// Whether one of the account's verification links was used for this address.
    async fn email_verified(&self, user: UserId, address: &str) -> Result<bool>;
    /// Deletes expired attempts and links and mails finished a day ago; returns how many.
    async fn purge_recovery(&self, now: Millis) -> Result<u64>;
}
