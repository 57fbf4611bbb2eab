//! Recovery's tables (migration 0012): email code attempts, recovery codes, recovery links
//! and the mail queue. Each single use is one conditional `UPDATE`; counting a try of an
//! email code is one `UPDATE … RETURNING` that only passes while the code is live, unused
//! and has tries left (a second read tells which of those failed, for the answer).

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::domain::{JourneyId, UserId};
use handoff_core::error::Result;
use handoff_core::recovery::{EmailCodeAttempt, EmailCodeTry, MailOutcome, MailState, QueuedMail, RecoveryLink};
use handoff_core::storage::Recovery;

use crate::Database;
use crate::sql::{Row, Sql};

fn corrupt(what: &str) -> DomainError {
    DomainError::Storage(format!("stored {what} does not parse"))
}

const CODE_COLUMNS: &str = "id, user_id, code_digest, journey_id, tries, created_at, expires_at, used_at";

fn attempt_from_row(r: &dyn Row) -> Result<EmailCodeAttempt> {
    Ok(EmailCodeAttempt {
        id: r.text(0)?,
        user_id: r.opt_text(1)?.map(|u| UserId::parse(&u)).transpose().map_err(|_| corrupt("user id"))?,
        code_digest: r.text(2)?,
        journey_id: JourneyId::parse(&r.text(3)?).map_err(|_| corrupt("journey id"))?,
        tries: u32::try_from(r.int(4)?).unwrap_or(u32::MAX),
        created_at: r.int(5)?,
        expires_at: r.int(6)?,
        used_at: r.int(7)?,
    })
}

const LINK_COLUMNS: &str = "digest, user_id, journey_id, created_at, expires_at, used_at";

fn link_from_row(r: &dyn Row) -> Result<RecoveryLink> {
    Ok(RecoveryLink {
        digest: r.text(0)?,
        user_id: UserId::parse(&r.text(1)?).map_err(|_| corrupt("user id"))?,
        journey_id: JourneyId::parse(&r.text(2)?).map_err(|_| corrupt("journey id"))?,
        created_at: r.int(3)?,
        expires_at: r.int(4)?,
        used_at: r.int(5)?,
    })
}

const MAIL_COLUMNS: &str = "id, to_address, subject, text_body, html_body, journey_id, state, attempts, next_attempt_at, last_error, created_at";

/// Queues a mail (with [`mail_params`]), inside the transaction of what it is about.
static MAIL_INSERT: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!("INSERT INTO mail_queue ({MAIL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
});

fn mail_params(m: &QueuedMail) -> [crate::sql::Param; 11] {
    [
        m.id.clone().into(),
        m.to.clone().into(),
        m.subject.clone().into(),
        m.text.clone().into(),
        m.html.clone().into(),
        m.journey_id.to_string().into(),
        m.state.as_str().into(),
        i64::from(m.attempts).into(),
        m.next_attempt_at.into(),
        m.last_error.clone().into(),
        m.created_at.into(),
    ]
}

fn mail_from_row(r: &dyn Row) -> Result<QueuedMail> {
    Ok(QueuedMail {
        id: r.text(0)?,
        to: r.text(1)?,
        subject: r.text(2)?,
        text: r.text(3)?,
        html: r.text(4)?,
        journey_id: JourneyId::parse(&r.text(5)?).map_err(|_| corrupt("journey id"))?,
        state: MailState::parse(&r.text(6)?).ok_or_else(|| corrupt("mail state"))?,
        attempts: u32::try_from(r.int(7)?).unwrap_or(u32::MAX),
        next_attempt_at: r.int(8)?,
        last_error: r.opt_text(9)?,
        created_at: r.int(10)?,
    })
}

#[async_trait]
impl Recovery for Database {
    async fn start_email_code(&self, a: &EmailCodeAttempt, m: &QueuedMail) -> Result<()> {
        static ATTEMPT: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!("INSERT INTO email_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
        });
        let mut tx = self.begin().await?;
        tx.execute(
            &ATTEMPT,
            &[
                a.id.clone().into(),
                a.user_id.map(|u| u.to_string()).into(),
                a.code_digest.clone().into(),
                a.journey_id.to_string().into(),
                i64::from(a.tries).into(),
                a.created_at.into(),
                a.expires_at.into(),
                a.used_at.into(),
            ],
        )
        .await?;
        tx.execute(&MAIL_INSERT, &mail_params(m)).await?;
        tx.commit().await
    }

    async fn try_email_code(&self, id: &str, max_tries: u32, now: Millis) -> Result<EmailCodeTry> {
        static COUNT: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "UPDATE email_codes SET tries = tries + 1 \
                 WHERE id = $1 AND used_at = 0 AND expires_at > $2 AND tries < $3 RETURNING {CODE_COLUMNS}"
            ))
        });
        static READ: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {CODE_COLUMNS} FROM email_codes WHERE id = $1")));
        let params = vec![id.into(), now.into(), i64::from(max_tries).into()];
        if let Some(counted) = self.returning(&COUNT, params, attempt_from_row).await?.pop() {
            return Ok(EmailCodeTry::Counted(counted));
        }
        Ok(match self.optional(&READ, &[id.into()], attempt_from_row).await? {
            None => EmailCodeTry::Unknown,
            Some(a) if a.used_at > 0 => EmailCodeTry::Used,
            Some(a) if a.expires_at <= now => EmailCodeTry::Expired(a),
            Some(a) => EmailCodeTry::TooManyTries(a),
        })
    }

    async fn use_email_code(&self, id: &str, now: Millis) -> Result<bool> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at = 0"));
        Ok(self.execute(&SQL, vec![id.into(), now.into()]).await? == 1)
    }

    async fn replace_recovery_codes(&self, user: UserId, digests: &[String], now: Millis) -> Result<()> {
        static DELETE: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM recovery_codes WHERE user_id = $1"));
        static INSERT: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("INSERT INTO recovery_codes (user_id, digest, created_at) VALUES ($1, $2, $3)"));
        let mut tx = self.begin().await?;
        tx.execute(&DELETE, &[user.to_string().into()]).await?;
        for digest in digests {
            tx.execute(&INSERT, &[user.to_string().into(), digest.clone().into(), now.into()]).await?;
        }
        tx.commit().await
    }

    async fn use_recovery_code(&self, user: UserId, digest: &str, now: Millis) -> Result<Option<u64>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND digest = $2 AND used_at = 0")
        });
        if self.execute(&SQL, vec![user.to_string().into(), digest.into(), now.into()]).await? != 1 {
            return Ok(None);
        }
        self.recovery_codes_left(user).await.map(Some)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u64> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at = 0"));
        self.one(&SQL, &[user.to_string().into()], |r| r.int(0)).await.map(|n| u64::try_from(n).unwrap_or(0))
    }

    async fn add_recovery_link(&self, l: &RecoveryLink) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!("INSERT INTO recovery_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        });
        let params = vec![
            l.digest.clone().into(),
            l.user_id.to_string().into(),
            l.journey_id.to_string().into(),
            l.created_at.into(),
            l.expires_at.into(),
            l.used_at.into(),
        ];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn recovery_link(&self, digest: &str) -> Result<Option<RecoveryLink>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {LINK_COLUMNS} FROM recovery_links WHERE digest = $1")));
        self.optional(&SQL, &[digest.into()], link_from_row).await
    }

    async fn use_recovery_link(&self, digest: &str, now: Millis) -> Result<Option<RecoveryLink>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "UPDATE recovery_links SET used_at = $2 WHERE digest = $1 AND used_at = 0 AND expires_at > $2 \
                 RETURNING {LINK_COLUMNS}"
            ))
        });
        Ok(self.returning(&SQL, vec![digest.into(), now.into()], link_from_row).await?.pop())
    }

    async fn claim_mail(&self, now: Millis, lease_until: Millis, limit: u32) -> Result<Vec<QueuedMail>> {
        // A lease: the rows this statement moved `locked_until` forward on are this
        // worker's; on PostgreSQL `SKIP LOCKED` lets other instances take the next ones.
        static SQL: LazyLock<[Sql; 2]> = LazyLock::new(|| {
            let claim = |lock: &str| {
                Sql::new(format!(
                    "UPDATE mail_queue SET locked_until = $2, attempts = attempts + 1 WHERE id IN \
                     (SELECT id FROM mail_queue WHERE state = 'pending' AND next_attempt_at <= $1 AND locked_until <= $1 \
                      ORDER BY next_attempt_at LIMIT $3{lock}) RETURNING {MAIL_COLUMNS}"
                ))
            };
            [claim(""), claim(" FOR UPDATE SKIP LOCKED")]
        });
        let sql = match self.backend() {
            crate::Backend::Sqlite => &SQL[0],
            crate::Backend::Postgres => &SQL[1],
        };
        self.returning(sql, vec![now.into(), lease_until.into(), i64::from(limit).into()], mail_from_row).await
    }

    async fn mail_done(&self, id: &str, outcome: &MailOutcome, now: Millis) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE mail_queue SET state = $2, next_attempt_at = $3, last_error = $4, locked_until = 0, \
                 sent_at = $5 WHERE id = $1",
            )
        });
        let (state, next, error, sent) = match outcome {
            MailOutcome::Sent => (MailState::Sent, now, None, now),
            MailOutcome::Retry { at, error } => (MailState::Pending, *at, Some(error.clone()), 0),
            MailOutcome::Failed { error } => (MailState::Failed, now, Some(error.clone()), 0),
        };
        let params = vec![id.into(), state.as_str().into(), next.into(), error.into(), sent.into()];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn mail(&self, id: &str) -> Result<Option<QueuedMail>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {MAIL_COLUMNS} FROM mail_queue WHERE id = $1")));
        self.optional(&SQL, &[id.into()], mail_from_row).await
    }

    async fn add_email_verification(
        &self,
        digest: &str,
        user: UserId,
        address: &str,
        expires_at: Millis,
        m: &QueuedMail,
    ) -> Result<()> {
        static LINK: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "INSERT INTO email_verifications (digest, user_id, address, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
        });
        let mut tx = self.begin().await?;
        let link = [digest.into(), user.to_string().into(), address.into(), m.created_at.into(), expires_at.into()];
        tx.execute(&LINK, &link).await?;
        tx.execute(&MAIL_INSERT, &mail_params(m)).await?;
        tx.commit().await
    }

    async fn use_email_verification(&self, digest: &str, now: Millis) -> Result<Option<UserId>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE email_verifications SET used_at = $2 WHERE digest = $1 AND used_at = 0 AND expires_at > $2 \
                 RETURNING user_id",
            )
        });
        let found = self.returning(&SQL, vec![digest.into(), now.into()], |r| r.text(0)).await?.pop();
        found.map(|u| UserId::parse(&u).map_err(|_| corrupt("user id"))).transpose()
    }

    async fn email_verified(&self, user: UserId, address: &str) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("SELECT COUNT(*) FROM email_verifications WHERE user_id = $1 AND address = $2 AND used_at > 0")
        });
        Ok(self.one(&SQL, &[user.to_string().into(), address.into()], |r| r.int(0)).await? > 0)
    }

    async fn purge_recovery(&self, now: Millis) -> Result<u64> {
        static SQL: LazyLock<[Sql; 4]> = LazyLock::new(|| {
            [
                Sql::new("DELETE FROM email_codes WHERE expires_at <= $1 - 86400000"),
                Sql::new("DELETE FROM recovery_links WHERE expires_at <= $1 - 86400000"),
                Sql::new("DELETE FROM email_verifications WHERE used_at = 0 AND expires_at <= $1 - 86400000"),
                Sql::new("DELETE FROM mail_queue WHERE state <> 'pending' AND created_at <= $1 - 86400000"),
            ]
        });
        let mut purged = 0;
        for sql in SQL.iter() {
            purged += self.execute(sql, vec![now.into()]).await?;
        }
        Ok(purged)
    }
}
