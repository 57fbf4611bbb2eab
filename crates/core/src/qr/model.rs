//! The QR attempt and its states.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::device::DeviceInfo;
use crate::domain::{JourneyId, UserId};

/// Where an attempt is: `created → scanned → approved | denied → redeemed`, or one of the
/// terminal `expired`, `cancelled`, `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QrState {
    /// Shown on the desktop, not scanned yet.
    Created,
    /// Claimed by the first phone that scanned it.
    Scanned,
    /// Approved on the phone; the desktop may redeem it.
    Approved,
    /// Denied on the phone.
    Denied,
    /// Redeemed: the desktop is signed in.
    Redeemed,
    /// Its time ran out.
    Expired,
    /// The desktop gave up (new code or another method).
    Cancelled,
    /// Refused for risk (a wrong number was picked).
    Rejected,
}

impl QrState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Scanned => "scanned",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Redeemed => "redeemed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "created" => Self::Created,
            "scanned" => Self::Scanned,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "redeemed" => Self::Redeemed,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }

    /// True when nothing can happen to the attempt any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Denied | Self::Redeemed | Self::Expired | Self::Cancelled | Self::Rejected)
    }
}

/// The desktop that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// OS, browser, form factor.
    pub device: DeviceInfo,
    /// IP address.
    pub ip: Option<String>,
    /// Raw user agent.
    pub user_agent: Option<String>,
}

/// One QR approval attempt as stored.
#[derive(Debug, Clone)]
pub struct QrAttempt {
    /// Public id (the desktop uses it in URLs).
    pub id: uuid::Uuid,
    /// The journey it belongs to.
    pub journey_id: JourneyId,
    /// Where it is.
    pub state: QrState,
    /// SHA-256 of the token currently shown in the QR (rotates).
    pub token_digest: String,
    /// When the current token stops working.
    pub token_expires_at: Millis,
    /// How many times the code was rotated.
    pub rotations: u32,
    /// SHA-256 of the redemption secret held in the desktop's cookie.
    pub redeem_digest: String,
    /// The two-digit number shown on the desktop.
    pub match_code: u8,
    /// The identifier the desktop typed, if any (shown to the phone as a hint).
    pub identifier: Option<String>,
    /// The desktop.
    pub requester: Requester,
    /// When it was created.
    pub created_at: Millis,
    /// When the whole attempt ends.
    pub expires_at: Millis,
    /// The phone session (digest) that claimed it.
    pub claimed_session: Option<String>,
    /// The user signed in on that phone.
    pub claimed_user: Option<UserId>,
    /// The phone's IP.
    pub phone_ip: Option<String>,
    /// Why it was rejected or denied, when it was.
    pub reason: Option<String>,
    /// The approver chose "also let this computer save a passkey" (honoured only when
    /// the operator allows it: `qr_session_may_add_passkey`).
    pub allow_passkey: bool,
    /// Last state change.
    pub updated_at: Millis,
}
