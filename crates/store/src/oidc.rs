//! The identity provider's tables (migration 0008): clients and consents, signing keys,
//! authorization requests, grants, codes, tokens and proof ids. Redeeming a code and
//! rotating a refresh token are one conditional `UPDATE … RETURNING` each; only when it
//! changes nothing does a second read tell a replay from an unknown value.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::oidc::SigningAlg;
use handoff_core::oidc::device_model::{DeviceAuthorization, DeviceTransition};
use handoff_core::oidc::model::{
    AuthRequest, Client, ClientSource, CodeRecord, CodeRedemption, GrantRecord, RefreshUse, TokenKind, TokenRecord,
};
use handoff_core::storage::{Grants, OidcClients, SigningKeyRecord, SigningKeys};

use crate::Database;
use crate::sql::{Param, Row, Sql};

fn corrupt(what: &str) -> DomainError {
    DomainError::Storage(format!("stored {what} does not parse"))
}

fn list(raw: &str) -> Result<Vec<String>> {
    serde_json::from_str(raw).map_err(|_| corrupt("list"))
}

fn json_list(values: &[String]) -> Param {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into()).into()
}

/// Stores a grant (with [`grant_params`]).
pub(crate) static GRANT_INSERT: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "INSERT INTO oidc_grants (id, client_id, user_id, scope, auth_time, amr, sid, nonce, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
});

/// The parameters of [`GRANT_INSERT`].
pub(crate) fn grant_params(grant: &GrantRecord) -> Vec<Param> {
    vec![
        grant.id.clone().into(),
        grant.client_id.clone().into(),
        grant.user_id.to_string().into(),
        grant.scope.clone().into(),
        grant.auth_time.into(),
        json_list(&grant.amr),
        grant.sid.clone().into(),
        grant.nonce.clone().into(),
        grant.created_at.into(),
        grant.expires_at.into(),
    ]
}

const CLIENT_COLUMNS: &str = "id, name, secret_digest, redirect_uris, post_logout_redirect_uris, allowed_origins, \
     first_party, id_token_alg, device, source, created_at";

fn client_from_row(r: &dyn Row) -> Result<Client> {
    Ok(Client {
        id: r.text(0)?,
        name: r.text(1)?,
        secret_digest: r.opt_text(2)?,
        redirect_uris: list(&r.text(3)?)?,
        post_logout_redirect_uris: list(&r.text(4)?)?,
        allowed_origins: list(&r.text(5)?)?,
        first_party: r.int(6)? != 0,
        id_token_alg: SigningAlg::parse(&r.text(7)?).map_err(|_| corrupt("signing algorithm"))?,
        device: r.int(8)? != 0,
        source: ClientSource::parse(&r.text(9)?).ok_or_else(|| corrupt("client source"))?,
        created_at: r.int(10)?,
    })
}

fn client_params(c: &Client) -> Vec<Param> {
    vec![
        c.id.clone().into(),
        c.name.clone().into(),
        c.secret_digest.clone().into(),
        json_list(&c.redirect_uris),
        json_list(&c.post_logout_redirect_uris),
        json_list(&c.allowed_origins),
        c.first_party.into(),
        c.id_token_alg.as_str().into(),
        c.device.into(),
        c.source.as_str().into(),
        c.created_at.into(),
    ]
}

const GRANT_COLUMNS: &str =
    "g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.sid, g.nonce, g.created_at, g.expires_at";

fn grant_from_row(r: &dyn Row, at: usize) -> Result<GrantRecord> {
    Ok(GrantRecord {
        id: r.text(at)?,
        client_id: r.text(at + 1)?,
        user_id: UserId::parse(&r.text(at + 2)?).map_err(|_| corrupt("user id"))?,
        scope: r.text(at + 3)?,
        auth_time: r.int(at + 4)?,
        amr: list(&r.text(at + 5)?)?,
        sid: r.text(at + 6)?,
        nonce: r.opt_text(at + 7)?,
        created_at: r.int(at + 8)?,
        expires_at: r.int(at + 9)?,
    })
}

#[async_trait]
impl OidcClients for Database {
    async fn add_client(&self, client: &Client) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO NOTHING"
            ))
        });
        if self.execute(&SQL, client_params(client)).await? == 0 {
            return Err(DomainError::invalid(
                "client-exists",
                format!("a client with id {:?} exists already", client.id),
            ));
        }
        Ok(())
    }

    async fn put_client(&self, client: &Client) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, secret_digest = excluded.secret_digest, \
                 redirect_uris = excluded.redirect_uris, post_logout_redirect_uris = excluded.post_logout_redirect_uris, \
                 allowed_origins = excluded.allowed_origins, first_party = excluded.first_party, \
                 id_token_alg = excluded.id_token_alg, device = excluded.device, source = excluded.source"
            ))
        });
        self.execute(&SQL, client_params(client)).await.map(drop)
    }

    async fn client(&self, id: &str) -> Result<Option<Client>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE id = $1")));
        self.optional(&SQL, &[id.into()], client_from_row).await
    }

    async fn clients(&self) -> Result<Vec<Client>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients ORDER BY created_at, id LIMIT 10000"))
        });
        self.scan(&SQL, Vec::new(), client_from_row).await
    }

    async fn remove_client(&self, id: &str) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM oidc_clients WHERE id = $1"));
        Ok(self.execute(&SQL, vec![id.into()]).await? == 1)
    }

    async fn has_consent(&self, user: UserId, client_id: &str, scope: &str) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("SELECT 1 FROM oidc_consents WHERE user_id = $1 AND client_id = $2 AND scope = $3")
        });
        Ok(self.optional(&SQL, &[user.to_string().into(), client_id.into(), scope.into()], |_| Ok(())).await?.is_some())
    }

    async fn add_consent(&self, user: UserId, client_id: &str, scope: &str, at: Millis) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "INSERT INTO oidc_consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, client_id, scope) DO UPDATE SET granted_at = excluded.granted_at",
            )
        });
        self.execute(&SQL, vec![user.to_string().into(), client_id.into(), scope.into(), at.into()]).await.map(drop)
    }
}

fn key_params(k: &SigningKeyRecord) -> Vec<Param> {
    vec![
        k.kid.clone().into(),
        k.alg.as_str().into(),
        k.private_jwk.clone().into(),
        k.created_at.into(),
        k.retired_at.into(),
    ]
}

static INSERT_KEY: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new("INSERT INTO signing_keys (kid, alg, private_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)")
});

#[async_trait]
impl SigningKeys for Database {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("SELECT kid, alg, private_jwk, created_at, retired_at FROM signing_keys ORDER BY created_at")
        });
        self.all(&SQL, &[], |r| {
            Ok(SigningKeyRecord {
                kid: r.text(0)?,
                alg: SigningAlg::parse(&r.text(1)?).map_err(|_| corrupt("signing algorithm"))?,
                private_jwk: r.text(2)?,
                created_at: r.int(3)?,
                retired_at: r.opt_int(4)?,
            })
        })
        .await
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        self.execute(&INSERT_KEY, key_params(key)).await.map(drop)
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRecord, now: Millis) -> Result<()> {
        static RETIRE: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL"));
        let mut tx = self.begin().await?;
        tx.execute(&RETIRE, &[key.alg.as_str().into(), now.into()]).await?;
        tx.execute(&INSERT_KEY, &key_params(key)).await?;
        tx.commit().await
    }
}

#[async_trait]
impl Grants for Database {
    async fn put_request(&self, request: &AuthRequest, expires_at: Millis) -> Result<()> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("INSERT INTO oidc_requests (id, payload, expires_at) VALUES ($1, $2, $3)"));
        let payload = serde_json::to_string(request).map_err(|e| DomainError::Internal(format!("request: {e}")))?;
        self.execute(&SQL, vec![request.id.clone().into(), payload.into(), expires_at.into()]).await.map(drop)
    }

    async fn request(&self, id: &str, now: Millis) -> Result<Option<AuthRequest>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT payload FROM oidc_requests WHERE id = $1 AND expires_at > $2"));
        self.optional(&SQL, &[id.into(), now.into()], |r| {
            serde_json::from_str(&r.text(0)?).map_err(|_| corrupt("authorization request"))
        })
        .await
    }

    async fn take_request(&self, id: &str) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM oidc_requests WHERE id = $1"));
        Ok(self.execute(&SQL, vec![id.into()]).await? == 1)
    }

    async fn issue_code(&self, grant: &GrantRecord, code: &CodeRecord) -> Result<()> {
        static CODE: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "INSERT INTO oidc_codes (digest, grant_id, client_id, redirect_uri, code_challenge, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
        });
        let mut tx = self.begin().await?;
        tx.execute(&GRANT_INSERT, &grant_params(grant)).await?;
        tx.execute(
            &CODE,
            &[
                code.digest.clone().into(),
                code.grant_id.clone().into(),
                grant.client_id.clone().into(),
                code.redirect_uri.clone().into(),
                code.code_challenge.clone().into(),
                code.expires_at.into(),
            ],
        )
        .await?;
        tx.commit().await
    }

    async fn redeem_code(&self, digest: &str, client_id: &str, now: Millis) -> Result<CodeRedemption> {
        static USE: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE oidc_codes SET used_at = $3 WHERE digest = $1 AND client_id = $2 AND used_at = 0 AND expires_at > $3 \
                 RETURNING grant_id, redirect_uri, code_challenge, expires_at",
            )
        });
        static USED: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("SELECT grant_id FROM oidc_codes WHERE digest = $1 AND client_id = $2 AND used_at > 0")
        });
        let used = self
            .returning(&USE, vec![digest.into(), client_id.into(), now.into()], |r| {
                Ok((r.text(0)?, r.text(1)?, r.opt_text(2)?, r.int(3)?))
            })
            .await?;
        let Some((grant_id, redirect_uri, code_challenge, expires_at)) = used.into_iter().next() else {
            let reused = self.optional(&USED, &[digest.into(), client_id.into()], |r| r.text(0)).await?;
            return Ok(reused.map_or(CodeRedemption::Unknown, |grant_id| CodeRedemption::Reused { grant_id }));
        };
        let Some(grant) = self.live_grant(&grant_id, now).await? else { return Ok(CodeRedemption::Unknown) };
        let code = CodeRecord { digest: digest.to_owned(), grant_id, redirect_uri, code_challenge, expires_at };
        Ok(CodeRedemption::Fresh(code, grant))
    }

    async fn add_tokens(&self, client_id: &str, tokens: &[TokenRecord]) -> Result<()> {
        static ONE: LazyLock<Sql> = LazyLock::new(|| token_insert(1));
        static TWO: LazyLock<Sql> = LazyLock::new(|| token_insert(2));
        let sql = match tokens.len() {
            0 => return Ok(()),
            1 => &*ONE,
            2 => &*TWO,
            n => return Err(DomainError::Internal(format!("{n} tokens at once"))),
        };
        let mut params = Vec::with_capacity(tokens.len() * 6);
        for t in tokens {
            params.extend([
                t.digest.clone().into(),
                t.grant_id.clone().into(),
                client_id.into(),
                t.kind.as_str().into(),
                t.created_at.into(),
                t.expires_at.into(),
            ]);
        }
        self.execute(sql, params).await.map(drop)
    }

    async fn token(&self, digest: &str, kind: TokenKind, now: Millis) -> Result<Option<(TokenRecord, GrantRecord)>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT t.created_at, t.expires_at, {GRANT_COLUMNS} FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
                 WHERE t.digest = $1 AND t.kind = $2 AND t.expires_at > $3 AND t.rotated_at = 0 AND g.revoked_at = 0"
            ))
        });
        self.optional(&SQL, &[digest.into(), kind.as_str().into(), now.into()], |r| {
            let grant = grant_from_row(r, 2)?;
            let token = TokenRecord {
                digest: digest.to_owned(),
                grant_id: grant.id.clone(),
                kind,
                created_at: r.int(0)?,
                expires_at: r.int(1)?,
            };
            Ok((token, grant))
        })
        .await
    }

    async fn use_refresh(&self, digest: &str, client_id: &str, now: Millis) -> Result<RefreshUse> {
        static USE: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE oidc_tokens SET rotated_at = $3 WHERE digest = $1 AND client_id = $2 AND kind = 'refresh' \
                 AND rotated_at = 0 AND expires_at > $3 RETURNING grant_id",
            )
        });
        static ROTATED: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "SELECT grant_id FROM oidc_tokens WHERE digest = $1 AND client_id = $2 AND kind = 'refresh' AND rotated_at > 0",
            )
        });
        let used = self.returning(&USE, vec![digest.into(), client_id.into(), now.into()], |r| r.text(0)).await?;
        let Some(grant_id) = used.into_iter().next() else {
            let reused = self.optional(&ROTATED, &[digest.into(), client_id.into()], |r| r.text(0)).await?;
            return Ok(reused.map_or(RefreshUse::Unknown, |grant_id| RefreshUse::Reused { grant_id }));
        };
        Ok(self.live_grant(&grant_id, now).await?.map_or(RefreshUse::Unknown, RefreshUse::Fresh))
    }

    async fn revoke_grant(&self, grant_id: &str, now: Millis) -> Result<()> {
        static REVOKE: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("UPDATE oidc_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0"));
        static TOKENS: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM oidc_tokens WHERE grant_id = $1"));
        let mut tx = self.begin().await?;
        tx.execute(&REVOKE, &[grant_id.into(), now.into()]).await?;
        tx.execute(&TOKENS, &[grant_id.into()]).await?;
        tx.commit().await
    }

    async fn delete_token(&self, digest: &str) -> Result<Option<(TokenKind, String)>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("DELETE FROM oidc_tokens WHERE digest = $1 RETURNING kind, grant_id"));
        let rows = self
            .returning(&SQL, vec![digest.into()], |r| {
                Ok((TokenKind::parse(&r.text(0)?).ok_or_else(|| corrupt("token kind"))?, r.text(1)?))
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn use_proof_id(&self, jti: &str, expires_at: Millis) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("INSERT INTO proof_ids (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
        });
        Ok(self.execute(&SQL, vec![jti.into(), expires_at.into()]).await? == 1)
    }

    async fn add_device(&self, a: &DeviceAuthorization) -> Result<()> {
        crate::device::add(self, a).await
    }

    async fn device_by_user_code(&self, digest: &str) -> Result<Option<DeviceAuthorization>> {
        crate::device::by_code(self, crate::device::Code::User, digest).await
    }

    async fn device_by_device_code(&self, digest: &str) -> Result<Option<DeviceAuthorization>> {
        crate::device::by_code(self, crate::device::Code::Device, digest).await
    }

    async fn device_transition(&self, t: &DeviceTransition) -> Result<Option<DeviceAuthorization>> {
        crate::device::transition(self, t).await
    }

    async fn device_polled(&self, id: &str, last_polled: Millis, now: Millis, interval_ms: Millis) -> Result<bool> {
        crate::device::polled(self, id, last_polled, now, interval_ms).await
    }

    async fn redeem_device(&self, id: &str, grant: &GrantRecord, now: Millis) -> Result<bool> {
        crate::device::redeem(self, id, grant, now).await
    }

    async fn expire_devices(&self, now: Millis) -> Result<Vec<DeviceAuthorization>> {
        crate::device::expire(self, now).await
    }

    async fn purge_expired_grants(&self, now: Millis) -> Result<u64> {
        static SQL: LazyLock<[Sql; 5]> = LazyLock::new(|| {
            [
                // Finished device sign-ins stay a day (the dashboard and support read them).
                Sql::new("DELETE FROM device_authorizations WHERE expires_at <= $1 - 86400000"),
                Sql::new("DELETE FROM oidc_requests WHERE expires_at <= $1"),
                Sql::new("DELETE FROM proof_ids WHERE expires_at <= $1"),
                // Used codes stay until their grant ends, so a late replay still revokes it.
                Sql::new("DELETE FROM oidc_tokens WHERE expires_at <= $1"),
                Sql::new("DELETE FROM oidc_grants WHERE expires_at <= $1"),
            ]
        });
        let mut purged = 0;
        for sql in SQL.iter() {
            purged += self.execute(sql, vec![now.into()]).await?;
        }
        Ok(purged)
    }
}

fn token_insert(rows: usize) -> Sql {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let b = i * 6;
            format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
        })
        .collect();
    Sql::new(format!(
        "INSERT INTO oidc_tokens (digest, grant_id, client_id, kind, created_at, expires_at) VALUES {}",
        values.join(", ")
    ))
}

impl Database {
    async fn live_grant(&self, id: &str, now: Millis) -> Result<Option<GrantRecord>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT {GRANT_COLUMNS} FROM oidc_grants g WHERE g.id = $1 AND g.revoked_at = 0 AND g.expires_at > $2"
            ))
        });
        self.optional(&SQL, &[id.into(), now.into()], |r| grant_from_row(r, 0)).await
    }
}
