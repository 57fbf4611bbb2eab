//! Device sign-ins (migration 0010): every step is one `UPDATE … WHERE state = $from …
//! RETURNING`, like QR approval; a poll is a compare-and-set on the last poll's time; the
//! redemption marks the row and stores the grant in one transaction.

use std::sync::LazyLock;

use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::domain::{JourneyId, UserId};
use handoff_core::error::Result;
use handoff_core::oidc::device_model::{ClaimVia, DeviceAuthorization, DeviceClaim, DeviceState, DeviceTransition};
use handoff_core::oidc::model::GrantRecord;

use crate::Database;
use crate::sql::{Row, Sql};

const COLUMNS: &str = "id, device_code_digest, user_code_digest, client_id, scope, journey_id, state, device_ip, \
     device_ua, created_at, expires_at, interval_ms, polled_at, claimed_session, claimed_user, claimed_ip, \
     claimed_via, approved_at, reason, updated_at";

fn corrupt(what: &str) -> DomainError {
    DomainError::Storage(format!("stored device sign-in {what} does not parse"))
}

fn from_row(r: &dyn Row) -> Result<DeviceAuthorization> {
    let claim = match (r.opt_text(13)?, r.opt_text(14)?) {
        (Some(session_digest), Some(user)) => Some(DeviceClaim {
            session_digest,
            user_id: UserId::parse(&user).map_err(|_| corrupt("user"))?,
            ip: r.opt_text(15)?,
            via: r.opt_text(16)?.as_deref().and_then(ClaimVia::parse).ok_or_else(|| corrupt("claim"))?,
        }),
        _ => None,
    };
    Ok(DeviceAuthorization {
        id: r.text(0)?,
        device_code_digest: r.text(1)?,
        user_code_digest: r.text(2)?,
        client_id: r.text(3)?,
        scope: r.text(4)?,
        journey_id: JourneyId::parse(&r.text(5)?).map_err(|_| corrupt("journey"))?,
        state: DeviceState::parse(&r.text(6)?).ok_or_else(|| corrupt("state"))?,
        device_ip: r.opt_text(7)?,
        device_ua: r.opt_text(8)?,
        created_at: r.int(9)?,
        expires_at: r.int(10)?,
        interval_ms: r.int(11)?,
        polled_at: r.int(12)?,
        claim,
        approved_at: r.int(17)?,
        reason: r.opt_text(18)?,
        updated_at: r.int(19)?,
    })
}

pub(crate) async fn add(db: &Database, a: &DeviceAuthorization) -> Result<()> {
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(format!(
            "INSERT INTO device_authorizations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
    });
    let claim = a.claim.as_ref();
    let params = vec![
        a.id.clone().into(),
        a.device_code_digest.clone().into(),
        a.user_code_digest.clone().into(),
        a.client_id.clone().into(),
        a.scope.clone().into(),
        a.journey_id.to_string().into(),
        a.state.as_str().into(),
        a.device_ip.clone().into(),
        a.device_ua.clone().into(),
        a.created_at.into(),
        a.expires_at.into(),
        a.interval_ms.into(),
        a.polled_at.into(),
        claim.map(|c| c.session_digest.clone()).into(),
        claim.map(|c| c.user_id.to_string()).into(),
        claim.and_then(|c| c.ip.clone()).into(),
        claim.map(|c| c.via.as_str().to_owned()).into(),
        a.approved_at.into(),
        a.reason.clone().into(),
        a.updated_at.into(),
    ];
    db.execute(&SQL, params).await.map(drop)
}

/// Which of a device sign-in's two codes a lookup is by.
#[derive(Clone, Copy)]
pub(crate) enum Code {
    /// What the person types.
    User = 0,
    /// The device's secret.
    Device = 1,
}

pub(crate) async fn by_code(db: &Database, code: Code, digest: &str) -> Result<Option<DeviceAuthorization>> {
    static BY: LazyLock<[Sql; 2]> = LazyLock::new(|| {
        ["user_code_digest", "device_code_digest"]
            .map(|c| Sql::new(format!("SELECT {COLUMNS} FROM device_authorizations WHERE {c} = $1")))
    });
    db.optional(&BY[code as usize], &[digest.into()], from_row).await
}

pub(crate) async fn transition(db: &Database, t: &DeviceTransition) -> Result<Option<DeviceAuthorization>> {
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(format!(
            "UPDATE device_authorizations SET state = $2, updated_at = $4, \
             claimed_session = COALESCE($5, claimed_session), claimed_user = COALESCE($6, claimed_user), \
             claimed_ip = COALESCE($7, claimed_ip), claimed_via = COALESCE($8, claimed_via), \
             reason = COALESCE($9, reason), approved_at = CASE WHEN $2 = 'approved' THEN $4 ELSE approved_at END \
             WHERE id = $1 AND state = $3 AND expires_at > $4 AND ($10 IS NULL OR claimed_session = $10) \
             RETURNING {COLUMNS}"
        ))
    });
    let claim = t.claim.as_ref();
    let params = vec![
        t.id.clone().into(),
        t.to.as_str().into(),
        t.from.as_str().into(),
        t.now.into(),
        claim.map(|c| c.session_digest.clone()).into(),
        claim.map(|c| c.user_id.to_string()).into(),
        claim.and_then(|c| c.ip.clone()).into(),
        claim.map(|c| c.via.as_str().to_owned()).into(),
        t.reason.clone().into(),
        t.session.clone().into(),
    ];
    Ok(db.returning(&SQL, params, from_row).await?.pop())
}

pub(crate) async fn polled(db: &Database, id: &str, last: Millis, now: Millis, interval_ms: Millis) -> Result<bool> {
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new("UPDATE device_authorizations SET polled_at = $3, interval_ms = $4 WHERE id = $1 AND polled_at = $2")
    });
    Ok(db.execute(&SQL, vec![id.into(), last.into(), now.into(), interval_ms.into()]).await? == 1)
}

pub(crate) async fn redeem(db: &Database, id: &str, grant: &GrantRecord, now: Millis) -> Result<bool> {
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(
            "UPDATE device_authorizations SET state = 'redeemed', updated_at = $2 \
             WHERE id = $1 AND state = 'approved' AND expires_at > $2",
        )
    });
    let mut tx = db.begin().await?;
    if tx.execute(&SQL, &[id.into(), now.into()]).await? != 1 {
        return Ok(false);
    }
    tx.execute(&crate::oidc::GRANT_INSERT, &crate::oidc::grant_params(grant)).await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn expire(db: &Database, now: Millis) -> Result<Vec<DeviceAuthorization>> {
    // RETURNING shows the row after the update; `reason` keeps the state it stopped in.
    static SQL: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(format!(
            "UPDATE device_authorizations SET reason = state, state = 'expired', updated_at = $1 \
             WHERE state IN ('pending', 'claimed', 'approved') AND expires_at <= $1 RETURNING {COLUMNS}"
        ))
    });
    let mut expired = db.returning(&SQL, vec![now.into()], from_row).await?;
    for a in &mut expired {
        // Give the caller the state it stopped in.
        if let Some(from) = a.reason.as_deref().and_then(DeviceState::parse) {
            a.state = from;
        }
    }
    Ok(expired)
}
