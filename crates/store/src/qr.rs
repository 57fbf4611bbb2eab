//! QR approval attempts: every transition is one `UPDATE … WHERE state = $from AND <guard>
//! RETURNING …`, atomic on SQLite and PostgreSQL alike.

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::device::{DeviceInfo, FormFactor};
use handoff_core::domain::{JourneyId, UserId};
use handoff_core::error::Result;
use handoff_core::qr::{QrAttempt, QrState, Requester};
use handoff_core::storage::{QrAttempts, QrGuard, QrTransition};
use handoff_core::webhooks::Message;
use std::sync::LazyLock;

use uuid::Uuid;

use crate::Database;
use crate::sql::{Reported, Row, Sql};

const COLUMNS: &str = "id, journey_id, state, token_digest, token_expires_at, rotations, redeem_digest, match_code, \
     identifier, desktop_os, desktop_browser, desktop_form, desktop_ip, desktop_ua, created_at, expires_at, \
     claimed_session, claimed_user, phone_ip, reason, updated_at, allow_passkey";

fn corrupt(what: &str) -> DomainError {
    DomainError::Storage(format!("stored QR {what} does not parse"))
}

fn from_row(r: &dyn Row) -> Result<QrAttempt> {
    let s = |i: usize| r.text(i);
    let o = |i: usize| r.opt_text(i);
    let n = |i: usize| r.int(i);
    Ok(QrAttempt {
        id: s(0)?.parse().map_err(|_| corrupt("id"))?,
        journey_id: JourneyId::parse(&s(1)?).map_err(|_| corrupt("journey"))?,
        state: QrState::parse(&s(2)?).ok_or_else(|| corrupt("state"))?,
        token_digest: s(3)?,
        token_expires_at: n(4)?,
        rotations: u32::try_from(n(5)?).unwrap_or(0),
        redeem_digest: s(6)?,
        match_code: u8::try_from(n(7)?).map_err(|_| corrupt("match code"))?,
        identifier: o(8)?,
        requester: Requester {
            device: DeviceInfo { os: s(9)?, browser: s(10)?, form_factor: FormFactor::from_stored(&s(11)?) },
            ip: o(12)?,
            user_agent: o(13)?,
        },
        created_at: n(14)?,
        expires_at: n(15)?,
        claimed_session: o(16)?,
        claimed_user: o(17)?.map(|u| UserId::parse(&u)).transpose().map_err(|_| corrupt("user"))?,
        phone_ip: o(18)?,
        reason: o(19)?,
        updated_at: n(20)?,
        allow_passkey: n(21)? != 0,
    })
}

/// `UPDATE qr_attempts … RETURNING` for each guard a transition can have.
static TRANSITIONS: LazyLock<[Reported; 4]> = LazyLock::new(|| {
    ["token_digest = $9 AND token_expires_at > $4", "claimed_session = $9", "redeem_digest = $9", "$9 IS NULL"].map(
        |guard| {
            Reported::new(format!(
                "UPDATE qr_attempts SET state = $2, updated_at = $4, \
                 claimed_session = COALESCE($5, claimed_session), claimed_user = COALESCE($6, claimed_user), \
                 phone_ip = COALESCE($7, phone_ip), reason = COALESCE($8, reason), \
                 allow_passkey = COALESCE($10, allow_passkey) \
                 WHERE id = $1 AND state = $3 AND expires_at > $4 AND {guard} RETURNING {COLUMNS}"
            ))
        },
    )
});

#[async_trait]
impl QrAttempts for Database {
    async fn create_qr(&self, a: &QrAttempt) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "INSERT INTO qr_attempts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17, $18, $19, $20, $21, $22)"
            ))
        });
        let params = vec![
            a.id.to_string().into(),
            a.journey_id.to_string().into(),
            a.state.as_str().into(),
            a.token_digest.clone().into(),
            a.token_expires_at.into(),
            i64::from(a.rotations).into(),
            a.redeem_digest.clone().into(),
            i64::from(a.match_code).into(),
            a.identifier.clone().into(),
            a.requester.device.os.clone().into(),
            a.requester.device.browser.clone().into(),
            a.requester.device.form_factor.as_str().into(),
            a.requester.ip.clone().into(),
            a.requester.user_agent.clone().into(),
            a.created_at.into(),
            a.expires_at.into(),
            a.claimed_session.clone().into(),
            a.claimed_user.map(|u| u.to_string()).into(),
            a.phone_ip.clone().into(),
            a.reason.clone().into(),
            a.updated_at.into(),
            a.allow_passkey.into(),
        ];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn qr_by_id(&self, id: Uuid) -> Result<Option<QrAttempt>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {COLUMNS} FROM qr_attempts WHERE id = $1")));
        self.optional(&SQL, &[id.to_string().into()], from_row).await
    }

    async fn qr_by_token(&self, token_digest: &str) -> Result<Option<QrAttempt>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {COLUMNS} FROM qr_attempts WHERE token_digest = $1")));
        self.optional(&SQL, &[token_digest.into()], from_row).await
    }

    async fn qr_transition(&self, t: &QrTransition, report: Option<&Message>) -> Result<Option<QrAttempt>> {
        let (sql, guard_value) = match &t.guard {
            QrGuard::Token(d) => (&TRANSITIONS[0], Some(d.clone())),
            QrGuard::Session(d) => (&TRANSITIONS[1], Some(d.clone())),
            QrGuard::Redeem(d) => (&TRANSITIONS[2], Some(d.clone())),
            QrGuard::None => (&TRANSITIONS[3], None),
        };
        let (session, user, ip) = match &t.claim {
            Some((s, u, ip)) => (Some(s.clone()), Some(u.to_string()), ip.clone()),
            None => (None, None, None),
        };
        let params = vec![
            t.id.to_string().into(),
            t.to.as_str().into(),
            t.from.as_str().into(),
            t.now.into(),
            session.into(),
            user.into(),
            ip.into(),
            t.reason.clone().into(),
            guard_value.into(),
            t.allow_passkey.map(i64::from).into(),
        ];
        Ok(self.returning_reported(sql, params, from_row, report).await?.pop())
    }

    async fn qr_rotate(&self, id: Uuid, token_digest: &str, token_expires_at: Millis, now: Millis) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE qr_attempts SET token_digest = $2, token_expires_at = $3, rotations = rotations + 1, \
                 updated_at = $4 WHERE id = $1 AND state = 'created' AND expires_at > $4",
            )
        });
        let params = vec![id.to_string().into(), token_digest.into(), token_expires_at.into(), now.into()];
        Ok(self.execute(&SQL, params).await? == 1)
    }

    async fn qr_expire_due(&self, now: Millis) -> Result<Vec<QrAttempt>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "UPDATE qr_attempts SET reason = state, state = 'expired', updated_at = $1 \
                 WHERE state IN ('created', 'scanned', 'approved') AND expires_at <= $1 RETURNING {COLUMNS}"
            ))
        });
        self.returning(&SQL, vec![now.into()], from_row).await
    }
}
