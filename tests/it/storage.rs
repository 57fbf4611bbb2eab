//! The shared storage suite: the same assertions on SQLite and PostgreSQL, at the level of
//! the storage traits, for the properties the domain relies on (single use, compare-and-
//! set, uniqueness, transactions).

use std::sync::Arc;

use handoff_core::DomainError;
use handoff_core::clock::now_ms;
use handoff_core::domain::{CeremonyId, CredentialId, Identifier, UserId};
use handoff_core::passkeys::PasskeyUse;
use handoff_core::storage::{Accounts, Ceremonies, CeremonyKind, CeremonyRecord, SessionRecord, Sessions};
use handoff_store::Database;

use crate::on_both_backends;
use crate::support::{SoftKey, TestApp};

on_both_backends!(ceremonies_are_taken_once_even_concurrently, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let db = Arc::new(Database::connect(&app.database_url).await.unwrap());
    let id = CeremonyId::new();
    let now = now_ms();
    let record = CeremonyRecord {
        id,
        kind: CeremonyKind::Authentication,
        payload: "{}".into(),
        created_at: now,
        expires_at: now + 60_000,
    };
    db.put(&record).await.unwrap();
    assert!(db.take(id, CeremonyKind::Registration).await.unwrap().is_none(), "kind must match");
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.take(id, CeremonyKind::Authentication).await.unwrap() })
        })
        .collect();
    let mut got = 0;
    for t in takers {
        if t.await.unwrap().is_some() {
            got += 1;
        }
    }
    assert_eq!(got, 1, "exactly one of eight concurrent takes gets the ceremony");
    let old = CeremonyRecord {
        id: CeremonyId::new(),
        kind: CeremonyKind::Registration,
        payload: "{}".into(),
        created_at: 0,
        expires_at: 1,
    };
    db.put(&old).await.unwrap();
    assert_eq!(Ceremonies::purge_expired(&*db, now).await.unwrap(), 1);
});

on_both_backends!(accounts_keep_identifiers_and_credentials_unique, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "pat").await;
    let db = Database::connect(&app.database_url).await.unwrap();
    let account = db.find_by_identifier(&Identifier::parse("pat").unwrap()).await.unwrap().unwrap();
    let passkey = db.passkeys_of(account.id).await.unwrap().remove(0);

    // The same identifier again: refused, and the passkey of that attempt is not kept.
    let mut other = account.clone();
    other.id = UserId::new();
    let mut fresh_passkey = passkey.clone();
    fresh_passkey.credential_id = CredentialId::from_bytes(vec![9; 16]);
    fresh_passkey.user_id = other.id;
    let err = db.create_with_passkey(&other, &fresh_passkey, &[]).await.unwrap_err();
    assert!(matches!(err, DomainError::IdentifierTaken), "{err:?}");
    assert!(db.find_passkey(&fresh_passkey.credential_id).await.unwrap().is_none(), "the transaction rolled back");

    // The same credential id again: refused.
    let err = db.add_passkey(&passkey, None).await.unwrap_err();
    assert!(matches!(err, DomainError::CredentialExists), "{err:?}");
    let (found, owner) = db.find_passkey(&passkey.credential_id).await.unwrap().unwrap();
    assert_eq!((found.user_id, owner.identifier.as_str()), (account.id, "pat"));
});

on_both_backends!(counter_updates_are_compare_and_set, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "quinn").await;
    let db = Database::connect(&app.database_url).await.unwrap();
    let account = db.find_by_identifier(&Identifier::parse("quinn").unwrap()).await.unwrap().unwrap();
    let passkey = db.passkeys_of(account.id).await.unwrap().remove(0);
    let usage = |counter: u32| PasskeyUse {
        credential_id: passkey.credential_id.clone(),
        credential: {
            let mut c = passkey.credential.clone();
            c.counter = counter;
            c
        },
        counter,
        backup_state: false,
        backup_eligible: false,
        at: now_ms(),
        on: handoff_core::device::DeviceInfo::unknown(),
        device_id: Some("browser-1".into()),
    };
    let start = passkey.credential.counter;
    assert!(db.record_use(&usage(start + 5)).await.unwrap());
    assert!(!db.record_use(&usage(start + 5)).await.unwrap(), "the same counter twice is a replay");
    assert!(!db.record_use(&usage(start + 1)).await.unwrap(), "a lower counter is a regression");
    assert!(db.record_use(&usage(start + 6)).await.unwrap());
    let stored = db.passkeys_of(account.id).await.unwrap().remove(0);
    assert_eq!(stored.credential.counter, start + 6);
    assert!(stored.last_used_at.is_some());
});

on_both_backends!(sessions_expire_and_revoke, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let done = app.sign_up(&mut key, "rita").await;
    let db = Database::connect(&app.database_url).await.unwrap();
    let user = UserId::parse(done["userId"].as_str().unwrap()).unwrap();
    let now = now_ms();
    let s = SessionRecord {
        token_digest: "d1".into(),
        user_id: user,
        created_at: now,
        expires_at: now + 1000,
        verified_at: now,
        method: handoff_core::passkeys::SessionMethod::Passkey,
        may_add_passkey_until: 0,
        last_seen_at: now,
        user_agent: None,
        ip: Some("127.0.0.1".into()),
    };
    db.create(&s, None).await.unwrap();
    assert!(db.find("d1", now).await.unwrap().is_some());
    assert!(db.find("d1", now + 1000).await.unwrap().is_none(), "expired sessions are not found");
    assert!(Sessions::purge_expired(&db, now + 1000, 0).await.unwrap() >= 1);
    let s2 = SessionRecord { token_digest: "d2".into(), expires_at: now + 60_000, ..s };
    db.create(&s2, None).await.unwrap();
    assert!(db.revoke("d2", None).await.unwrap());
    assert!(!db.revoke("d2", None).await.unwrap());
    assert!(db.find("d2", now).await.unwrap().is_none());
});

// On SQLite, short writes that queue up while the write lane is busy commit in one
// transaction. Each caller must still get its own answer: a duplicate key or a missing
// account fails that write alone, and every write reported as done is stored.
on_both_backends!(concurrent_short_writes_fail_alone_and_keep_the_rest, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let done = app.sign_up(&mut key, "lane").await;
    let db = Arc::new(Database::connect(&app.database_url).await.unwrap());
    let user = UserId::parse(done["userId"].as_str().unwrap()).unwrap();
    let now = now_ms();
    let session = move |digest: String, user_id: UserId| SessionRecord {
        token_digest: digest,
        user_id,
        created_at: now,
        expires_at: now + 60_000,
        verified_at: now,
        method: handoff_core::passkeys::SessionMethod::Passkey,
        may_add_passkey_until: 0,
        last_seen_at: now,
        user_agent: None,
        ip: None,
    };
    // 64 distinct sessions, 8 with one shared digest, 4 for an account that does not exist.
    let mut writes = Vec::new();
    for i in 0..76 {
        let (digest, owner, kind) = match i {
            0..64 => (format!("lane-{i}"), user, "distinct"),
            64..72 => ("lane-dup".to_owned(), user, "duplicate"),
            _ => (format!("lane-orphan-{i}"), UserId::new(), "orphan"),
        };
        let (db, record) = (db.clone(), session(digest, owner));
        writes.push((kind, tokio::spawn(async move { db.create(&record, None).await })));
    }
    let mut ok = std::collections::HashMap::<&str, usize>::new();
    for (kind, write) in writes {
        if write.await.unwrap().is_ok() {
            *ok.entry(kind).or_default() += 1;
        }
    }
    assert_eq!(ok.get("distinct"), Some(&64), "every distinct session is stored: {ok:?}");
    assert_eq!(ok.get("duplicate"), Some(&1), "exactly one of eight duplicates is stored: {ok:?}");
    assert_eq!(ok.get("orphan"), None, "sessions of a missing account are refused: {ok:?}");
    for i in 0..64 {
        assert!(db.find(&format!("lane-{i}"), now).await.unwrap().is_some(), "session {i} was reported stored");
    }
    assert!(db.find("lane-dup", now).await.unwrap().is_some());
    assert!(db.find("lane-orphan-72", now).await.unwrap().is_none());
});

// Short statements run on connections that stay checked out (PostgreSQL) or inline
// (SQLite). A statement abandoned midway (its request dropped) must not leave its answer
// for the next statement on that connection to read, and connections the server cut must
// be replaced without failing a sign-in once they have sat idle.
on_both_backends!(abandoned_and_cut_connections_answer_the_right_rows, |backend| async move {
    let app = TestApp::spawn(backend).await;
    for name in ["held-a", "held-b"] {
        app.sign_up(&mut SoftKey::new(&app.origin), name).await;
    }
    let db = Arc::new(Database::connect(&app.database_url).await.unwrap());
    let (a, b) = (Identifier::parse("held-a").unwrap(), Identifier::parse("held-b").unwrap());
    let owner = |found: Option<(handoff_core::passkeys::Account, Vec<handoff_core::passkeys::PasskeySummary>)>| {
        found.unwrap().0.identifier
    };
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (db, a, b) = (db.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                for i in 0..60u64 {
                    // Give up on a lookup of A after 0 to 300 µs: sometimes before it was
                    // sent, sometimes while its answer is on the way.
                    let wait = std::time::Duration::from_micros((i * 7 + w * 13) % 7 * 50);
                    let _ = tokio::time::timeout(wait, db.find_inventory(&a)).await;
                    assert_eq!(owner(db.find_inventory(&b).await.unwrap()), b, "worker {w}, round {i}");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    if backend != crate::support::Backend::Postgres {
        return;
    }
    // Cut every connection to this database, let the held ones sit idle past their retest
    // time, then look up again: every lookup must succeed.
    let db_name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&crate::support::app::postgres_url().unwrap()).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1) AS t",
    )
    .bind(&db_name)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(cut >= 1, "the held connections were open ({cut} cut)");
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let lookups: Vec<_> = (0..16)
        .map(|_| {
            let (db, b) = (db.clone(), b.clone());
            tokio::spawn(async move { db.find_inventory(&b).await.map(owner) })
        })
        .collect();
    for l in lookups {
        assert_eq!(l.await.unwrap().expect("a cut connection is replaced before use"), b);
    }
});

// Each unique key answers with the same domain error whichever path of the executor ran the
// statement: a short write (group commit on SQLite, a held connection on PostgreSQL), the
// same raced eight times at once, or a transaction. Repeated event ids are not an error:
// the journal stores an event once and reports the repeats as not new.
on_both_backends!(unique_keys_answer_the_same_error_on_every_path, |backend| async move {
    use handoff_core::domain::JourneyId;
    use handoff_core::storage::{Journeys, StoredEvent};
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "uniq").await;
    let db = Arc::new(Database::connect(&app.database_url).await.unwrap());
    let account = db.find_by_identifier(&Identifier::parse("uniq").unwrap()).await.unwrap().unwrap();
    let passkey = db.passkeys_of(account.id).await.unwrap().remove(0);

    // Duplicate credential: short write, and inside a transaction.
    let err = db.add_passkey(&passkey, None).await.unwrap_err();
    assert!(matches!(err, DomainError::CredentialExists), "short write: {err:?}");
    let mut stranger = account.clone();
    stranger.id = UserId::new();
    stranger.identifier = Identifier::parse("uniq-stranger").unwrap();
    let mut copied = passkey.clone();
    copied.user_id = stranger.id;
    let err = db.create_with_passkey(&stranger, &copied, &[]).await.unwrap_err();
    assert!(matches!(err, DomainError::CredentialExists), "transaction: {err:?}");
    assert!(db.find_by_identifier(&stranger.identifier).await.unwrap().is_none(), "rolled back");

    // The same new credential raced eight times: one stored, seven refused the same way.
    let mut raced = passkey.clone();
    raced.credential_id = CredentialId::from_bytes(vec![7; 16]);
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (db, raced) = (db.clone(), raced.clone());
            tokio::spawn(async move { db.add_passkey(&raced, None).await })
        })
        .collect();
    let mut stored = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(()) => stored += 1,
            Err(DomainError::CredentialExists) => {}
            Err(e) => panic!("raced write: {e:?}"),
        }
    }
    assert_eq!(stored, 1);

    // Duplicate identifier, in a transaction.
    let mut twin = account.clone();
    twin.id = UserId::new();
    let mut twin_passkey = passkey.clone();
    twin_passkey.credential_id = CredentialId::from_bytes(vec![8; 16]);
    twin_passkey.user_id = twin.id;
    let err = db.create_with_passkey(&twin, &twin_passkey, &[]).await.unwrap_err();
    assert!(matches!(err, DomainError::IdentifierTaken), "{err:?}");

    // Duplicate event ids: within one group and across groups.
    let journey = JourneyId::new();
    let event = |id: &str| StoredEvent {
        event_id: id.to_owned(),
        journey_id: journey,
        name: "identifier.submitted".into(),
        device: "desktop".into(),
        flow: Some("passkey-local".into()),
        ts: now_ms(),
        received_at: now_ms(),
        attrs: "{}".into(),
        os: None,
        browser: None,
        form_factor: None,
        app_version: None,
        clock_offset: None,
    };
    let first = db.record(&[event("e1"), event("e2"), event("e1")]).await.unwrap();
    assert_eq!(first.len(), 2, "a repeat inside one group is stored once: {first:?}");
    assert!(db.record(&[event("e2")]).await.unwrap().is_empty(), "a repeat in a later group is not new");
    assert_eq!(db.events_of(journey).await.unwrap().len(), 2);
});
