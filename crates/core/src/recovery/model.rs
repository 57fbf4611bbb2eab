//! What recovery stores: email code attempts, recovery codes, operator recovery links and
//! the mail queue (PRODUCT §7).

use crate::clock::Millis;
use crate::domain::{JourneyId, UserId};

/// One request for an email code. An attempt exists for unknown identifiers too
/// (`user_id` None: every code is wrong), so the answer does not tell who has an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCodeAttempt {
    /// Random id (the `attemptId` the browser holds).
    pub id: String,
    /// The account, when the identifier has one with an email address.
    pub user_id: Option<UserId>,
    /// HMAC of the code under the server's key.
    pub code_digest: String,
    /// The sign-in's journey.
    pub journey_id: JourneyId,
    /// Wrong and right codes entered so far.
    pub tries: u32,
    /// When it was asked for.
    pub created_at: Millis,
    /// When the code stops working.
    pub expires_at: Millis,
    /// When it was used (0: not yet).
    pub used_at: Millis,
}

/// What counting one more try of an email code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailCodeTry {
    /// Counted: the attempt with its tries so far (this one included); compare the code.
    Counted(EmailCodeAttempt),
    /// Its time ran out.
    Expired(EmailCodeAttempt),
    /// Its tries are used up.
    TooManyTries(EmailCodeAttempt),
    /// Already used to sign in.
    Used,
    /// No such attempt.
    Unknown,
}

/// An operator's single-use recovery link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryLink {
    /// Digest of the link's token.
    pub digest: String,
    /// The account it signs in.
    pub user_id: UserId,
    /// Its journey.
    pub journey_id: JourneyId,
    /// When it was made.
    pub created_at: Millis,
    /// When it stops working.
    pub expires_at: Millis,
    /// When it was used (0: not yet).
    pub used_at: Millis,
}

/// Where a queued mail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    /// Waiting for the worker (or for its next try).
    Pending,
    /// The SMTP server accepted it.
    Sent,
    /// Refused for good (a 5xx answer) or given up after the last try.
    Failed,
    /// Written for an unknown identifier, never sent (see [`EmailCodeAttempt`]).
    Discarded,
}

impl MailState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Discarded => "discarded",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "discarded" => Self::Discarded,
            _ => return None,
        })
    }
}

/// A mail in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Random id.
    pub id: String,
    /// The recipient's address (empty when discarded).
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// The journey its events go to.
    pub journey_id: JourneyId,
    /// Where it is.
    pub state: MailState,
    /// Tries so far.
    pub attempts: u32,
    /// When the worker may try it (again).
    pub next_attempt_at: Millis,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Millis,
}

/// How a try to send a mail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Accepted by the SMTP server.
    Sent,
    /// A temporary failure: try again at this time.
    Retry {
        /// When.
        at: Millis,
        /// What went wrong.
        error: String,
    },
    /// Refused for good, or out of tries.
    Failed {
        /// What went wrong.
        error: String,
    },
}
