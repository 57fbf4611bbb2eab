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
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::{Database, storage_error};

const COLUMNS: &str = "id, journey_id, state, token_digest, token_expires_at, rotations, redeem_digest, match_code, \
     identifier, desktop_os, desktop_browser, desktop_form, desktop_ip, desktop_ua, created_at, expires_at, \
     claimed_session, claimed_user, phone_ip, reason, updated_at, allow_passkey";

fn corrupt(what: &str) -> DomainError {
    DomainError::Storage(format!("stored QR {what} does not parse"))
}

fn from_row(r: &AnyRow) -> Result<QrAttempt> {
    let s = |i: usize| -> Result<String> { r.try_get::<String, _>(i).map_err(storage_error) };
    let o = |i: usize| -> Result<Option<String>> { r.try_get::<Option<String>, _>(i).map_err(storage_error) };
    let n = |i: usize| -> Result<i64> { r.try_get::<i64, _>(i).map_err(storage_error) };
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

#[async_trait]
impl QrAttempts for Database {
    async fn create_qr(&self, a: &QrAttempt) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO qr_attempts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18, $19, $20, $21, $22)"
        ))
        .bind(a.id.to_string())
        .bind(a.journey_id.to_string())
        .bind(a.state.as_str())
        .bind(a.token_digest.clone())
        .bind(a.token_expires_at)
        .bind(i64::from(a.rotations))
        .bind(a.redeem_digest.clone())
        .bind(i64::from(a.match_code))
        .bind(a.identifier.clone())
        .bind(a.requester.device.os.clone())
        .bind(a.requester.device.browser.clone())
        .bind(a.requester.device.form_factor.as_str())
        .bind(a.requester.ip.clone())
        .bind(a.requester.user_agent.clone())
        .bind(a.created_at)
        .bind(a.expires_at)
        .bind(a.claimed_session.clone())
        .bind(a.claimed_user.map(|u| u.to_string()))
        .bind(a.phone_ip.clone())
        .bind(a.reason.clone())
        .bind(a.updated_at)
        .bind(i64::from(a.allow_passkey))
        .execute(&mut *self.writer.conn().await?)
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    async fn qr_by_id(&self, id: Uuid) -> Result<Option<QrAttempt>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM qr_attempts WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn qr_by_token(&self, token_digest: &str) -> Result<Option<QrAttempt>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM qr_attempts WHERE token_digest = $1"))
            .bind(token_digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn qr_transition(&self, t: &QrTransition) -> Result<Option<QrAttempt>> {
        let (guard_sql, guard_value) = match &t.guard {
            QrGuard::Token(d) => ("token_digest = $9 AND token_expires_at > $4", Some(d.clone())),
            QrGuard::Session(d) => ("claimed_session = $9", Some(d.clone())),
            QrGuard::Redeem(d) => ("redeem_digest = $9", Some(d.clone())),
            QrGuard::None => ("$9 IS NULL", None),
        };
        let sql = format!(
            "UPDATE qr_attempts SET state = $2, updated_at = $4, \
             claimed_session = COALESCE($5, claimed_session), claimed_user = COALESCE($6, claimed_user), \
             phone_ip = COALESCE($7, phone_ip), reason = COALESCE($8, reason), \
             allow_passkey = COALESCE($10, allow_passkey) \
             WHERE id = $1 AND state = $3 AND expires_at > $4 AND {guard_sql} RETURNING {COLUMNS}"
        );
        let (session, user, ip) = match &t.claim {
            Some((s, u, ip)) => (Some(s.clone()), Some(u.to_string()), ip.clone()),
            None => (None, None, None),
        };
        let row = sqlx::query(&sql)
            .bind(t.id.to_string())
            .bind(t.to.as_str())
            .bind(t.from.as_str())
            .bind(t.now)
            .bind(session)
            .bind(user)
            .bind(ip)
            .bind(t.reason.clone())
            .bind(guard_value)
            .bind(t.allow_passkey.map(i64::from))
            .fetch_optional(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn qr_rotate(&self, id: Uuid, token_digest: &str, token_expires_at: Millis, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE qr_attempts SET token_digest = $2, token_expires_at = $3, rotations = rotations + 1, updated_at = $4 \
             WHERE id = $1 AND state = 'created' AND expires_at > $4",
        )
        .bind(id.to_string())
        .bind(token_digest)
        .bind(token_expires_at)
        .bind(now)
        .execute(&mut *self.writer.conn().await?)
        .await
        .map_err(storage_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn qr_expire_due(&self, now: Millis) -> Result<Vec<QrAttempt>> {
        let rows = sqlx::query(&format!(
            "UPDATE qr_attempts SET reason = state, state = 'expired', updated_at = $1 \
             WHERE state IN ('created', 'scanned', 'approved') AND expires_at <= $1 RETURNING {COLUMNS}"
        ))
        .bind(now)
        .fetch_all(&mut *self.writer.conn().await?)
        .await
        .map_err(storage_error)?;
        rows.iter().map(from_row).collect()
    }
}
