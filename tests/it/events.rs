//! `POST /api/v1/events`: per-event validation, the good kept beside the bad, idempotent
//! event ids, limits.

use serde_json::json;

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::app::expect_error;

on_both_backends!(events_are_validated_one_by_one_and_stored, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let journey = uuid::Uuid::new_v4().to_string();
    let now = handoff_core::clock::now_ms();
    let batch = json!({"events": [
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "flow": "qr-approval", "ts": now, "attrs": {"sizePx": 264}, "eventId": "a"},
        {"journeyId": "not-a-uuid", "name": "qr.shown", "device": "desktop", "ts": now},
        {"journeyId": journey, "name": "mobile.opened", "device": "server", "ts": now},
        {"journeyId": journey, "name": "some.future.name", "device": "mobile", "ts": now - 5 * 60 * 1000, "eventId": "b"},
    ]});
    let resp = app.post("/api/v1/events", &batch).await;
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["error"]["code"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected, vec![(1, "invalid-journey-id"), (2, "invalid-device")]);
    // The same batch again: event ids make it idempotent.
    let again: serde_json::Value = app.post("/api/v1/events", &batch).await.json().await.unwrap();
    assert_eq!(again["accepted"], 2);
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let id = handoff_core::domain::JourneyId::parse(&journey).unwrap();
    let stored = handoff_core::storage::Journeys::events_of(&db, id).await.unwrap();
    let names: Vec<&str> = stored.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["qr.shown", "some.future.name"], "unknown names are kept; repeats are not");
    assert_eq!(stored[0].attrs_value()["sizePx"], 264);
    assert_eq!(stored[0].device, "desktop");

    // Limits and malformed bodies.
    let too_many: Vec<_> =
        (0..101).map(|_| json!({"journeyId": journey, "name": "x", "device": "desktop", "ts": now})).collect();
    expect_error(app.post("/api/v1/events", &json!({"events": too_many})).await, 400, "batch-too-large").await;
    expect_error(app.post("/api/v1/events", &json!({"events": "nope"})).await, 400, "invalid-field").await;
    let raw = app
        .client
        .post(app.url("/api/v1/events"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(raw, 400, "malformed-json").await;
});
