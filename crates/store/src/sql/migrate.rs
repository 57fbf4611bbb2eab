//! Migrations, run through the executor on both backends, in one transaction. They keep
//! the bookkeeping table that releases up to 0.1 wrote through sqlx's migrator
//! (`_sqlx_migrations`: version, description, success, SHA-384 checksum, execution time), so
//! a database made by an older release opens, is checked and migrates in place. Adding a
//! migration: a file in `migrations/{sqlite,postgres}/` and a line in each list below.

use std::fmt::Write as _;
use std::time::Instant;

use handoff_core::DomainError;
use handoff_core::error::Result;
use sha2::{Digest, Sha384};

use super::{Param, Sql, Tx};
use crate::Backend;

/// One migration: its file's name without `.sql` (`NNNN_name`), and its SQL.
struct Migration {
    file: &'static str,
    sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(Migration { file: $file, sql: include_str!(concat!("../../migrations/", $dir, "/", $file, ".sql")) }),*]
    };
}

static SQLITE: &[Migration] = migrations!("sqlite":
    "0001_init", "0002_decisions", "0003_qr", "0004_journeys", "0005_rollups", "0006_step_up", "0007_rate_counters",
    "0008_oidc", "0009_journey_client", "0010_device_grants", "0011_webhooks", "0012_recovery", "0013_email_verification");
static POSTGRES: &[Migration] = migrations!("postgres":
    "0001_init", "0002_decisions", "0003_qr", "0004_journeys", "0005_rollups", "0006_step_up", "0007_rate_counters",
    "0008_oidc", "0009_journey_client", "0010_device_grants", "0011_webhooks", "0012_recovery", "0013_email_verification");

impl Migration {
    /// The number before the first `_`.
    fn version(&self) -> i64 {
        self.file.split('_').next().and_then(|n| n.parse().ok()).unwrap_or(i64::MAX)
    }

    /// The name after the number.
    fn name(&self) -> &'static str {
        self.file.split_once('_').map_or(self.file, |(_, name)| name)
    }

    /// As sqlx describes it: the name with spaces for underscores.
    fn description(&self) -> String {
        self.name().replace('_', " ")
    }

    /// As sqlx sums it: SHA-384 of the file, in lower-case hex.
    fn checksum(&self) -> String {
        Sha384::digest(self.sql.as_bytes()).iter().fold(String::with_capacity(96), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// Brings the schema up to date: checks what was applied (same file, finished), then applies
/// the rest in order, in the transaction `tx`. On PostgreSQL an advisory lock lets one
/// instance at a time migrate.
pub(crate) async fn run(mut tx: Tx) -> Result<u32> {
    let backend = tx.backend();
    let (list, table) = match backend {
        Backend::Sqlite => (
            SQLITE,
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        ),
        Backend::Postgres => (
            POSTGRES,
            "SELECT pg_advisory_xact_lock(7165326452960381029); \
             CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
        ),
    };
    tx.script(table).await?;
    let hex = match backend {
        Backend::Sqlite => "lower(hex(checksum))",
        Backend::Postgres => "encode(checksum, 'hex')",
    };
    let applied = tx
        .all(
            &Sql::new(format!(
                "SELECT version, {hex}, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) FROM _sqlx_migrations \
                 ORDER BY version"
            )),
            &[],
            |row| Ok((row.int(0)?, row.text(1)?, row.int(2)? == 1)),
        )
        .await?;
    let refuse = |why: String| DomainError::Storage(format!("cannot migrate the database: {why}"));
    for (version, checksum, success) in &applied {
        let Some(known) = list.iter().find(|m| m.version() == *version) else {
            return Err(refuse(format!("it was migrated by a newer Handoff (migration {version} is unknown here)")));
        };
        if !success {
            return Err(refuse(format!("migration {version} ({}) failed earlier; restore a backup", known.name())));
        }
        if *checksum != known.checksum() {
            return Err(refuse(format!("migration {version} ({}) was changed since it was applied", known.name())));
        }
    }
    let mut ran = 0;
    for m in list.iter().filter(|m| !applied.iter().any(|(v, ..)| *v == m.version())) {
        let started = Instant::now();
        tx.script(m.sql).await.map_err(|e| refuse(format!("migration {}: {e}", m.file)))?;
        let checksum = match backend {
            Backend::Sqlite => format!("X'{}'", m.checksum()),
            Backend::Postgres => format!("decode('{}', 'hex')", m.checksum()),
        };
        let record = Sql::new(format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, {checksum}, $3)"
        ));
        let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        tx.execute(&record, &[Param::from(m.version()), m.description().into(), nanos.into()]).await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lists_name_the_same_migrations_in_order() {
        let names = |l: &[Migration]| l.iter().map(|m| m.file).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
        assert!(SQLITE.windows(2).all(|w| w[0].version() + 1 == w[1].version()));
        assert_eq!(SQLITE[0].version(), 1);
        assert_eq!(SQLITE[5].description(), "step up");
        assert_eq!(SQLITE[0].checksum().len(), 96);
    }
}
