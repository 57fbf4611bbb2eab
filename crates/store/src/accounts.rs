//! Accounts and passkeys.

use crate::cells::Cells;
use crate::db::{Database, flag, is_unique_violation_on, storage_error};
use crate::inline::{Param, Statement};
use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::device::{DeviceInfo, FormFactor};
use handoff_core::domain::{CredentialId, DisplayName, Identifier, UserId};
use handoff_core::error::Result;
use handoff_core::passkeys::{Account, PasskeyRecord, PasskeySummary, PasskeyUse};
use handoff_core::storage::Accounts;

const ACCOUNT_COLUMNS: &str = "u.id, u.identifier, u.display_name, u.created_at";
const PASSKEY_COLUMNS: &str = "p.credential_id, p.user_id, p.credential, p.aaguid, p.provider, p.transports, \
     p.attachment, p.backup_eligible, p.backup_state, p.created_at, p.created_os, p.created_browser, \
     p.created_form_factor, p.last_used_at, p.last_used_os, p.last_used_browser, p.last_used_form_factor, \
     p.created_device_id, p.last_used_device_id";
/// Where each passkey lives, without the credential JSON (key material, attestation).
const SUMMARY_COLUMNS: &str = "p.credential_id, p.aaguid, p.provider, p.transports, p.attachment, p.backup_eligible, \
     p.backup_state, p.created_os, p.created_browser, p.created_form_factor, p.last_used_os, p.last_used_browser, \
     p.last_used_form_factor, p.created_device_id, p.last_used_device_id";
/// Where the passkey columns start when the account's four columns come first.
const PASSKEY_OFFSET: usize = 4;

fn corrupt(what: &str) -> DomainError {
    DomainError::Storage(format!("stored {what} does not parse"))
}

fn account_from_row(row: &(impl Cells + ?Sized)) -> Result<Account> {
    Ok(Account {
        id: UserId::parse(&row.text(0)?).map_err(|_| corrupt("user id"))?,
        identifier: Identifier::parse(&row.text(1)?).map_err(|_| corrupt("identifier"))?,
        display_name: DisplayName::from_stored(row.text(2)?),
        created_at: row.int(3)?,
    })
}

fn passkey_from_row(row: &(impl Cells + ?Sized), offset: usize) -> Result<PasskeyRecord> {
    let text = |i: usize| row.text(offset + i);
    let opt_text = |i: usize| row.opt_text(offset + i);
    let int = |i: usize| row.int(offset + i);
    let last_used_at = row.opt_int(offset + 13)?;
    let last_used_on = device_of(opt_text(14)?, opt_text(15)?, opt_text(16)?);
    Ok(PasskeyRecord {
        credential_id: CredentialId::parse(&text(0)?).map_err(|_| corrupt("credential id"))?,
        user_id: UserId::parse(&text(1)?).map_err(|_| corrupt("user id"))?,
        credential: serde_json::from_str(&text(2)?).map_err(|_| corrupt("credential"))?,
        aaguid: text(3)?.parse().map_err(|_| corrupt("aaguid"))?,
        provider: text(4)?,
        transports: serde_json::from_str(&text(5)?).map_err(|_| corrupt("transports"))?,
        attachment: opt_text(6)?,
        backup_eligible: int(7)? != 0,
        backup_state: int(8)? != 0,
        created_at: int(9)?,
        created_on: DeviceInfo { os: text(10)?, browser: text(11)?, form_factor: FormFactor::from_stored(&text(12)?) },
        last_used_at,
        last_used_on,
        created_device_id: opt_text(17)?,
        last_used_device_id: opt_text(18)?,
    })
}

fn device_of(os: Option<String>, browser: Option<String>, form: Option<String>) -> Option<DeviceInfo> {
    match (os, browser, form) {
        (Some(os), Some(browser), Some(ff)) => {
            Some(DeviceInfo { os, browser, form_factor: FormFactor::from_stored(&ff) })
        }
        _ => None,
    }
}

fn summary_from_row(row: &(impl Cells + ?Sized), offset: usize) -> Result<PasskeySummary> {
    let text = |i: usize| row.text(offset + i);
    let opt = |i: usize| row.opt_text(offset + i);
    let int = |i: usize| row.int(offset + i);
    Ok(PasskeySummary {
        credential_id: CredentialId::parse(&text(0)?).map_err(|_| corrupt("credential id"))?,
        aaguid: text(1)?.parse().map_err(|_| corrupt("aaguid"))?,
        provider: text(2)?,
        transports: serde_json::from_str(&text(3)?).map_err(|_| corrupt("transports"))?,
        attachment: opt(4)?,
        backup_eligible: int(5)? != 0,
        backup_state: int(6)? != 0,
        created_on: device_of(Some(text(7)?), Some(text(8)?), Some(text(9)?)).ok_or_else(|| corrupt("device"))?,
        last_used_on: device_of(opt(10)?, opt(11)?, opt(12)?),
        created_device_id: opt(13)?,
        last_used_device_id: opt(14)?,
    })
}

fn passkey_insert_error(err: sqlx::Error) -> DomainError {
    if is_unique_violation_on(&err, "identifier") {
        DomainError::IdentifierTaken
    } else if matches!(&err, sqlx::Error::Database(db) if db.is_unique_violation()) {
        DomainError::CredentialExists
    } else {
        storage_error(err)
    }
}

const INSERT_PASSKEY: &str = "INSERT INTO passkeys (credential_id, user_id, credential, counter, aaguid, provider, \
     transports, attachment, backup_eligible, backup_state, created_at, created_os, created_browser, created_form_factor, \
     created_device_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

async fn insert_passkey<'e, E>(executor: E, p: &PasskeyRecord) -> std::result::Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let credential = serde_json::to_string(&p.credential).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let transports = serde_json::to_string(&p.transports).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(INSERT_PASSKEY)
        .bind(p.credential_id.to_base64url())
        .bind(p.user_id.to_string())
        .bind(credential)
        .bind(i64::from(p.credential.counter))
        .bind(p.aaguid.to_string())
        .bind(p.provider.clone())
        .bind(transports)
        .bind(p.attachment.clone())
        .bind(flag(p.backup_eligible))
        .bind(flag(p.backup_state))
        .bind(p.created_at)
        .bind(p.created_on.os.clone())
        .bind(p.created_on.browser.clone())
        .bind(p.created_on.form_factor.as_str())
        .bind(p.created_device_id.clone())
        .execute(executor)
        .await?;
    Ok(())
}

#[async_trait]
impl Accounts for Database {
    async fn find_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.identifier = $1");
        let row =
            sqlx::query(&sql).bind(identifier.as_str()).fetch_optional(&self.pool).await.map_err(storage_error)?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await.map_err(storage_error)?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn create_with_passkey(&self, account: &Account, passkey: &PasskeyRecord) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO users (id, identifier, display_name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(account.id.to_string())
            .bind(account.identifier.as_str())
            .bind(account.display_name.as_str())
            .bind(account.created_at)
            .execute(&mut *tx)
            .await
            .map_err(passkey_insert_error)?;
        insert_passkey(&mut *tx, passkey).await.map_err(passkey_insert_error)?;
        tx.commit().await
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<()> {
        let mut conn = self.writer.conn().await?;
        insert_passkey(&mut *conn, passkey).await.map_err(passkey_insert_error)
    }

    async fn find_with_passkeys(&self, identifier: &Identifier) -> Result<Option<(Account, Vec<PasskeyRecord>)>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, {PASSKEY_COLUMNS} FROM users u LEFT JOIN passkeys p ON p.user_id = u.id \
             WHERE u.identifier = $1 ORDER BY p.created_at, p.credential_id"
        );
        let rows = sqlx::query(&sql).bind(identifier.as_str()).fetch_all(&self.pool).await.map_err(storage_error)?;
        let Some(first) = rows.first() else { return Ok(None) };
        let account = account_from_row(first)?;
        let mut passkeys = Vec::with_capacity(rows.len());
        for row in &rows {
            let has_passkey = row.opt_text(PASSKEY_OFFSET)?.is_some();
            if has_passkey {
                passkeys.push(passkey_from_row(row, PASSKEY_OFFSET)?);
            }
        }
        Ok(Some((account, passkeys)))
    }

    async fn sample_inventories(&self, accounts: u32) -> Result<Vec<(UserId, Vec<PasskeySummary>)>> {
        let sql = format!(
            "SELECT u.id, {SUMMARY_COLUMNS} FROM (SELECT id FROM users ORDER BY id LIMIT $1) u \
             LEFT JOIN passkeys p ON p.user_id = u.id ORDER BY u.id, p.created_at, p.credential_id"
        );
        let rows = sqlx::query(&sql).bind(i64::from(accounts)).fetch_all(&self.pool).await.map_err(storage_error)?;
        let mut out: Vec<(UserId, Vec<PasskeySummary>)> = Vec::new();
        for row in &rows {
            let user = UserId::parse(&row.text(0)?)?;
            if out.last().is_none_or(|(u, _)| *u != user) {
                out.push((user, Vec::new()));
            }
            if row.opt_text(1)?.is_some()
                && let Some((_, passkeys)) = out.last_mut()
            {
                passkeys.push(summary_from_row(row, 1)?);
            }
        }
        Ok(out)
    }

    async fn find_inventory(&self, identifier: &Identifier) -> Result<Option<(Account, Vec<PasskeySummary>)>> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(format!(
                "SELECT {ACCOUNT_COLUMNS}, {SUMMARY_COLUMNS} FROM users u LEFT JOIN passkeys p ON p.user_id = u.id \
                 WHERE u.identifier = $1 ORDER BY p.created_at, p.credential_id"
            ))
        });
        // One row per passkey (one with NULL passkey columns for an account without any).
        fn fold(rows: Vec<(Account, Option<PasskeySummary>)>) -> Option<(Account, Vec<PasskeySummary>)> {
            let account = rows.first()?.0.clone();
            Some((account, rows.into_iter().filter_map(|(_, p)| p).collect()))
        }
        fn decode(row: &(impl Cells + ?Sized)) -> Result<(Account, Option<PasskeySummary>)> {
            let passkey = match row.opt_text(PASSKEY_OFFSET)? {
                Some(_) => Some(summary_from_row(row, PASSKEY_OFFSET)?),
                None => None,
            };
            Ok((account_from_row(row)?, passkey))
        }
        if let Some(inline) = &self.inline {
            return inline
                .read(|conn| {
                    let mut stmt = conn.prepare_cached(&SQL.inline)?;
                    let mut rows = stmt.query([identifier.as_str()])?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        out.push(decode(row));
                    }
                    Ok(out)
                })?
                .into_iter()
                .collect::<Result<Vec<_>>>()
                .map(fold);
        }
        if let Some(held) = &self.held {
            let params = [Param::from(identifier.as_str().to_owned())];
            return Ok(fold(held.fetch_all(&SQL, &params, |row| decode(row)).await?));
        }
        let rows =
            sqlx::query(&SQL.sqlx).bind(identifier.as_str()).fetch_all(&self.pool).await.map_err(storage_error)?;
        Ok(fold(rows.iter().map(decode).collect::<Result<Vec<_>>>()?))
    }

    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>> {
        let sql = format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys p WHERE p.user_id = $1 ORDER BY p.created_at, p.credential_id"
        );
        let rows = sqlx::query(&sql).bind(user.to_string()).fetch_all(&self.pool).await.map_err(storage_error)?;
        rows.iter().map(|r| passkey_from_row(r, 0)).collect()
    }

    async fn find_passkey(&self, id: &CredentialId) -> Result<Option<(PasskeyRecord, Account)>> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(format!(
                "SELECT {ACCOUNT_COLUMNS}, {PASSKEY_COLUMNS} FROM passkeys p JOIN users u ON u.id = p.user_id \
                 WHERE p.credential_id = $1"
            ))
        });
        fn both(row: &(impl Cells + ?Sized)) -> Result<(PasskeyRecord, Account)> {
            Ok((passkey_from_row(row, PASSKEY_OFFSET)?, account_from_row(row)?))
        }
        self.read_optional(&SQL, &[id.to_base64url().into()], |row| both(row)).await
    }

    async fn record_use(&self, usage: &PasskeyUse) -> Result<bool> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "UPDATE passkeys SET credential = $2, counter = $3, backup_state = $4, backup_eligible = $5, \
                 last_used_at = $6, last_used_os = $7, last_used_browser = $8, last_used_form_factor = $9, \
                 last_used_device_id = COALESCE($10, last_used_device_id) \
                 WHERE credential_id = $1 AND (counter < $3 OR ($3 = 0 AND counter = 0))"
                    .into(),
            )
        });
        let credential = serde_json::to_string(&usage.credential).map_err(|_| corrupt("credential"))?;
        let params = [
            usage.credential_id.to_base64url().into(),
            credential.into(),
            i64::from(usage.counter).into(),
            flag(usage.backup_state).into(),
            flag(usage.backup_eligible).into(),
            usage.at.into(),
            usage.on.os.clone().into(),
            usage.on.browser.clone().into(),
            usage.on.form_factor.as_str().into(),
            usage.device_id.clone().into(),
        ];
        Ok(self.writer.execute(&SQL, params).await? == 1)
    }

    async fn delete_passkey(&self, user: UserId, id: &CredentialId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE credential_id = $1 AND user_id = $2")
            .bind(id.to_base64url())
            .bind(user.to_string())
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected() == 1)
    }
}
