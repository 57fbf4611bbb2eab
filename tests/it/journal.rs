//! The journal's grouping, on a real store: the server's own events linger for company, and
//! a request that waits for its commit ends the wait at once. A wrapper counts the groups
//! the journal hands to the store and passes every call through to the real database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use handoff_core::clock::{Millis, now_ms};
use handoff_core::domain::JourneyId;
use handoff_core::error::Result;
use handoff_core::observe::{Journal, JournalSettings};
use handoff_core::storage::{
    FunnelCounts, FunnelQuery, JourneyQuery, JourneyRecord, Journeys, SegmentedOutcome, StoredEvent,
};
use handoff_store::Database;

use crate::on_both_backends;
use crate::support::TestApp;

/// The real store, remembering how many events each `record` call carried (once stored).
struct Counted {
    inner: Database,
    groups: Mutex<Vec<usize>>,
    /// Held for writing, it stops the journal's writer before its next commit.
    gate: tokio::sync::RwLock<()>,
}

#[async_trait]
impl Journeys for Counted {
    async fn begin_stitch(&self) -> Result<Box<dyn handoff_core::observe::stitch::StitchUnit>> {
        self.inner.begin_stitch().await
    }
    async fn record(&self, events: &[StoredEvent]) -> Result<Vec<(JourneyId, String)>> {
        let _open = self.gate.read().await;
        let stored = self.inner.record(events).await;
        self.groups.lock().unwrap().push(events.len());
        stored
    }
    async fn finish_idle(&self, idle_since: Millis, now: Millis, limit: u32) -> Result<u64> {
        self.inner.finish_idle(idle_since, now, limit).await
    }
    async fn journey(&self, id: JourneyId) -> Result<Option<JourneyRecord>> {
        self.inner.journey(id).await
    }
    async fn events_of(&self, id: JourneyId) -> Result<Vec<StoredEvent>> {
        self.inner.events_of(id).await
    }
    async fn search(&self, query: &JourneyQuery) -> Result<Vec<JourneyRecord>> {
        self.inner.search(query).await
    }
    async fn funnel(&self, query: &FunnelQuery, steps: usize) -> Result<Vec<FunnelCounts>> {
        self.inner.funnel(query, steps).await
    }
    async fn drop_offs(&self, query: &FunnelQuery) -> Result<Vec<(String, u64)>> {
        self.inner.drop_offs(query).await
    }
    async fn outcome_counts(&self, from: Millis, to: Millis) -> Result<Vec<SegmentedOutcome>> {
        self.inner.outcome_counts(from, to).await
    }
    async fn time_to_session(&self, query: &FunnelQuery, percentiles: &[f64]) -> Result<Vec<Option<Millis>>> {
        self.inner.time_to_session(query, percentiles).await
    }
}

async fn counted_journal(app: &TestApp, linger: Duration) -> (Arc<Counted>, Journal) {
    let settings = JournalSettings { server_linger: linger, ..JournalSettings::default() };
    counted_journal_with(app, settings).await
}

async fn counted_journal_with(app: &TestApp, settings: JournalSettings) -> (Arc<Counted>, Journal) {
    let inner = Database::connect(&app.database_url).await.unwrap();
    let store = Arc::new(Counted { inner, groups: Mutex::new(Vec::new()), gate: tokio::sync::RwLock::new(()) });
    (store.clone(), Journal::start(store, settings))
}

// When the database cannot keep up, the server's own events fill a bounded queue and the
// rest are dropped and counted: no task per event, no memory growth, no request waits. On
// `main` at 37d6c7f each event beyond the queue spawned a task waiting for room.
on_both_backends!(a_full_journal_queue_drops_server_events_and_counts_them, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let settings = JournalSettings { queue: 8, server_linger: Duration::ZERO, ..JournalSettings::default() };
    let (store, journal) = counted_journal_with(&app, settings).await;
    let stopped = store.gate.write().await;
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let started = std::time::Instant::now();
    for _ in 0..5_000 {
        journal.submit_server(vec![server_event(JourneyId::default(), "decision.made")]);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "submitting never waits for room");
    let after = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    assert!(after <= tasks + 2, "no task per dropped event: {tasks} tasks before, {after} after");
    let dropped = journal.dropped_server_events();
    // The queue holds eight, and the writer took what it could into its (stopped) group
    // while the burst ran; everything else was dropped.
    assert!((4_000..=5_000 - 8).contains(&dropped), "dropped {dropped}");
    drop(stopped);
    // What was queued is still stored once the database answers again.
    let mut waited = 0;
    while store.groups.lock().unwrap().iter().sum::<usize>() < (5_000 - dropped) as usize {
        assert!(waited < 300, "the queued events were never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    // The operator sees the count.
    let metrics = app.client.get(app.url("/metrics")).bearer_auth("test-operator-token-0123456789").send().await;
    let text = metrics.unwrap().text().await.unwrap();
    assert!(text.contains("handoff_journal_dropped_events_total"), "{text}");
});

fn server_event(journey: JourneyId, name: &str) -> StoredEvent {
    StoredEvent::server(journey, name, Some("local"), serde_json::json!({}), now_ms())
}

on_both_backends!(a_waiting_request_ends_the_linger_of_server_events, |backend| async move {
    let app = TestApp::spawn(backend).await;
    // A linger far longer than the test may take: only the waiting request can end it.
    let (store, journal) = counted_journal(&app, Duration::from_secs(600)).await;
    let journeys: Vec<JourneyId> = (0..5).map(|_| JourneyId::default()).collect();
    for j in &journeys {
        journal.submit_server(vec![server_event(*j, "decision.made")]);
    }
    let client = JourneyId::default();
    let stored = tokio::time::timeout(Duration::from_secs(60), journal.record(vec![server_event(client, "qr.shown")]))
        .await
        .expect("a request waiting for its commit must not wait out the server events' linger")
        .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(*store.groups.lock().unwrap(), vec![6], "five server jobs and the request share one commit");
    for j in journeys.iter().chain([&client]) {
        assert_eq!(store.events_of(*j).await.unwrap().len(), 1, "journey {j} has its event");
    }
});

on_both_backends!(server_events_alone_are_stored_when_the_linger_ends, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (store, journal) = counted_journal(&app, Duration::from_millis(200)).await;
    let journey = JourneyId::default();
    for name in ["decision.made", "challenge.created", "server.verification"] {
        journal.submit_server(vec![server_event(journey, name)]);
    }
    let mut waited = 0;
    while store.groups.lock().unwrap().is_empty() {
        assert!(waited < 300, "the server events were never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(*store.groups.lock().unwrap(), vec![3], "three server jobs, one commit");
    let names: Vec<String> = store.events_of(journey).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names.len(), 3, "stored: {names:?}");
});

// A journey's second write leaves its identifier and start out of the upsert when they did
// not change (so SQLite skips those indexes); when they do change, they are written.
on_both_backends!(journey_rewrites_keep_or_move_the_identifier_and_start, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let db = Database::connect(&app.database_url).await.unwrap();
    let now = now_ms();
    let by_identifier = |identifier: &str| JourneyQuery {
        identifier: Some(identifier.to_owned()),
        limit: 10,
        ..JourneyQuery::default()
    };
    let event = |journey: JourneyId, name: &str, attrs: serde_json::Value, at: Millis| {
        StoredEvent::server(journey, name, Some("passkey-local"), attrs, at)
    };

    // Kept: the identifier comes with the first group; a later group leaves it as it is.
    let kept = JourneyId::new();
    let decision = serde_json::json!({"verdict": "local", "identifier": "kept@example.com"});
    db.record(&[event(kept, "decision.made", decision, now)]).await.unwrap();
    db.record(&[event(kept, "session.established", serde_json::json!({}), now + 5)]).await.unwrap();
    let found = db.search(&by_identifier("kept@example.com")).await.unwrap();
    assert_eq!(found.iter().map(|j| j.journey_id).collect::<Vec<_>>(), vec![kept]);
    assert_eq!(found[0].facts.events, 2);

    // Moved: a journey first seen without an identifier gets one in a later group, and an
    // earlier event arriving late moves its start back.
    let moved = JourneyId::new();
    db.record(&[event(moved, "challenge.created", serde_json::json!({}), now + 10)]).await.unwrap();
    let decision = serde_json::json!({"verdict": "local", "identifier": "moved@example.com"});
    db.record(&[event(moved, "decision.made", decision, now + 20)]).await.unwrap();
    let found = db.search(&by_identifier("moved@example.com")).await.unwrap();
    assert_eq!(found.iter().map(|j| j.journey_id).collect::<Vec<_>>(), vec![moved], "found by its new identifier");
    let early =
        StoredEvent { ts: now - 60_000, ..event(moved, "identifier.submitted", serde_json::json!({}), now + 30) };
    db.record(&[early]).await.unwrap();
    let window =
        JourneyQuery { from: Some(now - 61_000), to: Some(now - 59_000), limit: 10, ..JourneyQuery::default() };
    let found = db.search(&window).await.unwrap();
    assert!(found.iter().any(|j| j.journey_id == moved), "its start moved back with the late event");
});

// Two writers (two instances on PostgreSQL, two connections on one SQLite file) folding
// events into the same new journeys at once: whichever creates a row, the other reads it
// again and folds its events in, so no event is lost from the journey's facts.
on_both_backends!(two_writers_creating_the_same_journeys_lose_no_event, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let a = Arc::new(Database::connect(&app.database_url).await.unwrap());
    let b = Arc::new(Database::connect(&app.database_url).await.unwrap());
    let now = now_ms();
    let journeys: Vec<JourneyId> = (0..24).map(|_| JourneyId::new()).collect();
    let mut writes = Vec::new();
    for (i, &journey) in journeys.iter().enumerate() {
        for (db, name) in [(a.clone(), "challenge.created"), (b.clone(), "decision.made")] {
            let event =
                StoredEvent::server(journey, name, Some("passkey-local"), serde_json::json!({}), now + i as i64);
            writes.push(tokio::spawn(async move { db.record(&[event]).await }));
        }
    }
    for write in writes {
        assert_eq!(write.await.unwrap().unwrap().len(), 1, "each event is stored once");
    }
    for journey in journeys {
        let record = a.journey(journey).await.unwrap().expect("the journey exists");
        assert_eq!(record.facts.events, 2, "both writers' events are in journey {journey}");
    }
});
