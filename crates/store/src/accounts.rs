//! Accounts and passkeys. A duplicate identifier or credential is refused by the database's
//! unique keys (`IdentifierTaken`, `CredentialExists`: the mapping in `sql/mod.rs`).

use std::sync::LazyLock;

use crate::Database;
use crate::sql::{Param, Reported, Row, Sql};

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::device::{DeviceInfo, FormFactor};
use handoff_core::domain::{CredentialId, DisplayName, Identifier, UserId};
use handoff_core::error::Result;
use handoff_core::passkeys::{Account, PasskeyRecord, PasskeySummary, PasskeyUse};
use handoff_core::storage::Accounts;
use handoff_core::webhooks::Message;

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

fn account_from_row(row: &dyn Row) -> Result<Account> {
    Ok(Account {
        id: UserId::parse(&row.text(0)?).map_err(|_| corrupt("user id"))?,
        identifier: Identifier::parse(&row.text(1)?).map_err(|_| corrupt("identifier"))?,
        display_name: DisplayName::from_stored(row.text(2)?),
        created_at: row.int(3)?,
    })
}

fn passkey_from_row(row: &dyn Row, offset: usize) -> Result<PasskeyRecord> {
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

fn summary_from_row(row: &dyn Row, offset: usize) -> Result<PasskeySummary> {
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

static INSERT_PASSKEY: LazyLock<Reported> = LazyLock::new(|| {
    Reported::new(
        "INSERT INTO passkeys (credential_id, user_id, credential, counter, aaguid, provider, transports, attachment, \
         backup_eligible, backup_state, created_at, created_os, created_browser, created_form_factor, created_device_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
});

fn passkey_params(p: &PasskeyRecord) -> Result<Vec<Param>> {
    let credential = serde_json::to_string(&p.credential).map_err(|_| corrupt("credential"))?;
    let transports = serde_json::to_string(&p.transports).map_err(|_| corrupt("transports"))?;
    Ok(vec![
        p.credential_id.to_base64url().into(),
        p.user_id.to_string().into(),
        credential.into(),
        i64::from(p.credential.counter).into(),
        p.aaguid.to_string().into(),
        p.provider.clone().into(),
        transports.into(),
        p.attachment.clone().into(),
        p.backup_eligible.into(),
        p.backup_state.into(),
        p.created_at.into(),
        p.created_on.os.clone().into(),
        p.created_on.browser.clone().into(),
        p.created_on.form_factor.as_str().into(),
        p.created_device_id.clone().into(),
    ])
}

/// One row per passkey (one with NULL passkey columns for an account without any), folded
/// into the account and its passkeys.
fn fold<P>(rows: Vec<(Account, Option<P>)>) -> Option<(Account, Vec<P>)> {
    let account = rows.first()?.0.clone();
    Some((account, rows.into_iter().filter_map(|(_, p)| p).collect()))
}

#[async_trait]
impl Accounts for Database {
    async fn find_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.identifier = $1")));
        self.optional(&SQL, &[identifier.as_str().into()], account_from_row).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<Account>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.id = $1")));
        self.optional(&SQL, &[id.to_string().into()], account_from_row).await
    }

    async fn create_with_passkey(&self, account: &Account, passkey: &PasskeyRecord, reports: &[Message]) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("INSERT INTO users (id, identifier, display_name, created_at) VALUES ($1, $2, $3, $4)")
        });
        let user = [
            account.id.to_string().into(),
            account.identifier.as_str().into(),
            account.display_name.as_str().into(),
            account.created_at.into(),
        ];
        let mut tx = self.begin().await?;
        tx.execute(&SQL, &user).await?;
        tx.execute(&INSERT_PASSKEY.write, &passkey_params(passkey)?).await?;
        for message in reports {
            tx.report(message).await?;
        }
        tx.commit().await
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord, report: Option<&Message>) -> Result<()> {
        self.execute_reported(&INSERT_PASSKEY, passkey_params(passkey)?, report).await.map(drop)
    }

    async fn find_with_passkeys(&self, identifier: &Identifier) -> Result<Option<(Account, Vec<PasskeyRecord>)>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT {ACCOUNT_COLUMNS}, {PASSKEY_COLUMNS} FROM users u LEFT JOIN passkeys p ON p.user_id = u.id \
                 WHERE u.identifier = $1 ORDER BY p.created_at, p.credential_id"
            ))
        });
        let rows = self
            .all(&SQL, &[identifier.as_str().into()], |row| {
                let passkey = match row.opt_text(PASSKEY_OFFSET)? {
                    Some(_) => Some(passkey_from_row(row, PASSKEY_OFFSET)?),
                    None => None,
                };
                Ok((account_from_row(row)?, passkey))
            })
            .await?;
        Ok(fold(rows))
    }

    async fn sample_inventories(&self, accounts: u32) -> Result<Vec<(UserId, Vec<PasskeySummary>)>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT u.id, {SUMMARY_COLUMNS} FROM (SELECT id FROM users ORDER BY id LIMIT $1) u \
                 LEFT JOIN passkeys p ON p.user_id = u.id ORDER BY u.id, p.created_at, p.credential_id"
            ))
        });
        let rows = self
            .scan(&SQL, vec![i64::from(accounts).into()], |row| {
                let passkey = match row.opt_text(1)? {
                    Some(_) => Some(summary_from_row(row, 1)?),
                    None => None,
                };
                Ok((UserId::parse(&row.text(0)?)?, passkey))
            })
            .await?;
        let mut out: Vec<(UserId, Vec<PasskeySummary>)> = Vec::new();
        for (user, passkey) in rows {
            if out.last().is_none_or(|(u, _)| *u != user) {
                out.push((user, Vec::new()));
            }
            if let (Some(p), Some((_, passkeys))) = (passkey, out.last_mut()) {
                passkeys.push(p);
            }
        }
        Ok(out)
    }

    async fn find_inventory(&self, identifier: &Identifier) -> Result<Option<(Account, Vec<PasskeySummary>)>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT {ACCOUNT_COLUMNS}, {SUMMARY_COLUMNS} FROM users u LEFT JOIN passkeys p ON p.user_id = u.id \
                 WHERE u.identifier = $1 ORDER BY p.created_at, p.credential_id"
            ))
        });
        let rows = self
            .all(&SQL, &[identifier.as_str().into()], |row| {
                let passkey = match row.opt_text(PASSKEY_OFFSET)? {
                    Some(_) => Some(summary_from_row(row, PASSKEY_OFFSET)?),
                    None => None,
                };
                Ok((account_from_row(row)?, passkey))
            })
            .await?;
        Ok(fold(rows))
    }

    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT {PASSKEY_COLUMNS} FROM passkeys p WHERE p.user_id = $1 ORDER BY p.created_at, p.credential_id"
            ))
        });
        self.all(&SQL, &[user.to_string().into()], |row| passkey_from_row(row, 0)).await
    }

    async fn find_passkey(&self, id: &CredentialId) -> Result<Option<(PasskeyRecord, Account)>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT {ACCOUNT_COLUMNS}, {PASSKEY_COLUMNS} FROM passkeys p JOIN users u ON u.id = p.user_id \
                 WHERE p.credential_id = $1"
            ))
        });
        self.optional(&SQL, &[id.to_base64url().into()], |row| {
            Ok((passkey_from_row(row, PASSKEY_OFFSET)?, account_from_row(row)?))
        })
        .await
    }

    async fn record_use(&self, usage: &PasskeyUse) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE passkeys SET credential = $2, counter = $3, backup_state = $4, backup_eligible = $5, \
                 last_used_at = $6, last_used_os = $7, last_used_browser = $8, last_used_form_factor = $9, \
                 last_used_device_id = COALESCE($10, last_used_device_id) \
                 WHERE credential_id = $1 AND (counter < $3 OR ($3 = 0 AND counter = 0))",
            )
        });
        let credential = serde_json::to_string(&usage.credential).map_err(|_| corrupt("credential"))?;
        let params = vec![
            usage.credential_id.to_base64url().into(),
            credential.into(),
            i64::from(usage.counter).into(),
            usage.backup_state.into(),
            usage.backup_eligible.into(),
            usage.at.into(),
            usage.on.os.clone().into(),
            usage.on.browser.clone().into(),
            usage.on.form_factor.as_str().into(),
            usage.device_id.clone().into(),
        ];
        Ok(self.execute(&SQL, params).await? == 1)
    }

    async fn delete_passkey(&self, user: UserId, id: &CredentialId, report: Option<&Message>) -> Result<bool> {
        static SQL: LazyLock<Reported> =
            LazyLock::new(|| Reported::new("DELETE FROM passkeys WHERE credential_id = $1 AND user_id = $2"));
        let params = vec![id.to_base64url().into(), user.to_string().into()];
        Ok(self.execute_reported(&SQL, params, report).await? == 1)
    }
}
