//! Retention (issue #18, PRODUCT §8): what is older than the cutoff goes in small batches;
//! journeys go with their events only once their hour is rolled up, and funnels keep
//! counting them from the rollups. Nothing was ever deleted on `main` at 37d6c7f.

use handoff_core::storage::{Attempt, Attempts, Journeys, Retention, SecurityEvent, SecurityEvents};
use serde_json::json;

use crate::funnels::{T0, fixed_data_set, journey};
use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::app::{expect_error, json_ok};

const TOKEN: &str = "test-operator-token-0123456789";
const HOUR: i64 = 3_600_000;

on_both_backends!(old_data_is_purged_in_batches_and_rollups_keep_the_counts, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let data = fixed_data_set();
    let old_journey = data[0].journey_id;
    Journeys::record(&db, &data).await.unwrap();
    db.finish_idle(T0 + 10_000_000, T0 + 10_000_000, 1_000).await.unwrap();
    assert!(db.refresh_rollups(T0 + 30 * 86_400_000, 1_000).await.unwrap() >= 2);
    // A journey two hours later whose hour is not rolled up yet, and one after the cutoff.
    let dirty = journey("Linux", "Firefox", "qr-approval", T0 + 2 * HOUR, vec![("desktop", "qr.shown", 0, json!({}))]);
    let dirty_id = dirty[0].journey_id;
    Journeys::record(&db, &dirty).await.unwrap();
    let recent = journey("Linux", "Firefox", "qr-approval", T0 + 5 * HOUR, vec![("desktop", "qr.shown", 0, json!({}))]);
    Journeys::record(&db, &recent).await.unwrap();
    for at in [T0 - HOUR, T0 + 5 * HOUR] {
        let event = SecurityEvent {
            kind: "qr-second-scan".into(),
            user_id: None,
            detail: json!({}),
            at,
            ip: Some("198.51.100.1".into()),
            user_agent: None,
        };
        SecurityEvents::record(&db, &event).await.unwrap();
        let attempt =
            Attempt { identifier: "old@example.com".into(), device_id: "d".into(), at, failed: true, detail: None };
        db.record_attempt(&attempt).await.unwrap();
    }

    let window = format!("from={T0}&to={}", T0 + HOUR);
    let funnel = |app: &TestApp, window: String| {
        let request = app.client.get(app.url(&format!("/api/v1/funnels?flow=qr-approval&{window}"))).bearer_auth(TOKEN);
        async move { json_ok(request.send().await.unwrap()).await }
    };
    let before = funnel(&app, window.clone()).await;
    assert_eq!(before["journeys"], 5);

    // Batches of 3 rows per table until nothing is left before the cutoff.
    let cutoff = T0 + 3 * HOUR;
    let mut batches = Vec::new();
    loop {
        let purged = db.purge_before(cutoff, 3).await.unwrap();
        if purged.total() == 0 {
            break;
        }
        assert!(purged.journeys <= 3 && purged.security_events <= 3 && purged.attempts <= 3, "{purged:?}");
        batches.push(purged);
    }
    let journeys: u64 = batches.iter().map(|b| b.journeys).sum();
    let events: u64 = batches.iter().map(|b| b.events).sum();
    assert_eq!(journeys, 7, "the fixed set's seven journeys, not the dirty hour's nor the recent one");
    assert_eq!(events, data.len() as u64);
    assert!(batches.len() >= 3, "small batches: {batches:?}");
    assert_eq!(batches.iter().map(|b| b.security_events).sum::<u64>(), 1);
    assert_eq!(batches.iter().map(|b| b.attempts).sum::<u64>(), 1);

    let gone = app.client.get(app.url(&format!("/api/v1/journeys/{old_journey}"))).bearer_auth(TOKEN);
    expect_error(gone.send().await.unwrap(), 404, "journey-not-found").await;
    let kept = app.client.get(app.url(&format!("/api/v1/journeys/{dirty_id}"))).bearer_auth(TOKEN);
    json_ok(kept.send().await.unwrap()).await;
    // The rolled-up hour still counts what was deleted.
    let after = funnel(&app, window).await;
    assert_eq!(after["journeys"], before["journeys"]);
    assert_eq!(after["steps"][0]["count"], before["steps"][0]["count"]);
    assert_eq!(after["steps"][6]["count"], before["steps"][6]["count"]);
});
