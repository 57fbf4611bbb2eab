//! A database written by the previous release opens with this build, is checked, migrates in
//! place and keeps working, on both backends. The fixtures in `tests/fixtures/` were made by
//! the release binary of c488c53 (the last one before the store ran on one driver per
//! database) with `tests/fixtures/make-release-fixture.sh`: 8 people signed up by the
//! simulator, then 40 sign-in attempts over every flow, so they hold accounts, passkeys,
//! sessions, QR attempts, events and journeys, and sqlx's migration bookkeeping.

use handoff_core::storage::{Accounts, JourneyQuery, Journeys, Sessions};
use handoff_store::Database;
use sqlx::Connection;

use crate::on_both_backends;
use crate::support::app::{fresh_database, json_ok};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// A copy of the fixture for `backend`, as a database URL.
async fn restore(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => {
            let path = dir.path().join("handoff.db");
            std::fs::copy(format!("{FIXTURES}/release-0.1.sqlite3"), &path).unwrap();
            format!("sqlite://{}", path.display())
        }
        Backend::Postgres => {
            let url = fresh_database(backend, dir).await;
            // pg_dump's output, without psql's meta-commands; its search_path setting dies
            // with this connection.
            let dump = std::fs::read_to_string(format!("{FIXTURES}/release-0.1.postgres.sql")).unwrap();
            let script: String = dump.lines().filter(|l| !l.starts_with('\\')).map(|l| format!("{l}\n")).collect();
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(&script).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            url
        }
    }
}

on_both_backends!(a_database_from_the_previous_release_opens_and_keeps_working, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let url = restore(backend, &dir).await;
    let db = Database::connect(&url).await.expect("the previous release's database opens");

    // What the previous release stored reads back: 8 people (and the simulator's helpers).
    let sample = db.sample_inventories(64).await.unwrap();
    assert!(sample.len() >= 8, "{} accounts", sample.len());
    let someone = sample.iter().find(|(_, passkeys)| !passkeys.is_empty()).expect("someone has a passkey").0;
    let person = db.find_by_id(someone).await.unwrap().unwrap().identifier;
    assert!(person.as_str().starts_with("sim-"), "{person:?}");
    let (account, passkeys) = db.find_inventory(&person).await.unwrap().expect("the account is there");
    assert!(!passkeys.is_empty(), "its passkeys are there");
    let (_, records) = db.find_with_passkeys(&person).await.unwrap().unwrap();
    assert_eq!(records.len(), passkeys.len(), "with their credentials");
    assert!(!db.of_user(account.id, 0).await.unwrap().is_empty(), "its sessions are there");
    let all = JourneyQuery { limit: 500, ..JourneyQuery::default() };
    let before = db.search(&all).await.unwrap();
    assert_eq!(before.len(), 41, "every journey is there");
    assert!(before.iter().all(|j| j.facts.events > 0), "with their facts");
    let events = db.events_of(before[0].journey_id).await.unwrap();
    assert!(!events.is_empty(), "and their events");
    db.close().await;

    // The server runs on it: a new person signs up and signs in, and both are journeys.
    let app =
        TestApp::spawn_with(backend, TestOptions { database_url: Some(url.clone()), ..TestOptions::default() }).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "after-upgrade@example.com").await;
    json_ok(app.sign_in(&mut key, "after-upgrade@example.com").await).await;
    let db = Database::connect(&url).await.expect("opens again: nothing left to migrate");
    assert!(db.find_inventory(&person).await.unwrap().is_some());
    // Server events reach the journal moments after the response.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.search(&all).await.unwrap().len() <= 41 {
        assert!(std::time::Instant::now() < deadline, "the new sign-in's journey was added beside the old ones");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
});

// A database that a newer release migrated further is refused with a message, not used.
on_both_backends!(a_database_from_a_newer_release_is_refused, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let url = restore(backend, &dir).await;
    let db = Database::connect(&url).await.unwrap();
    db.run_script(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, X'00', 0)"
            .replace("X'00'", if backend == Backend::Postgres { "'\\x00'::bytea" } else { "X'00'" })
            .as_str(),
    )
    .await
    .unwrap();
    db.close().await;
    let err = Database::connect(&url).await.expect_err("a newer schema is refused");
    assert!(err.to_string().contains("newer Handoff"), "{err}");
});
