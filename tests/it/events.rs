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

on_both_backends!(every_bad_field_is_named_and_the_good_events_are_kept, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let journey = uuid::Uuid::new_v4().to_string();
    let now = handoff_core::clock::now_ms();
    let day = 24 * 3600 * 1000;
    let big = "x".repeat(5000);
    // A minute ago, written as local time one hour east of UTC.
    let with_offset = handoff_core::clock::rfc3339(now + 3_600_000 - 60_000).replace('Z', "+01:00");
    let batch = json!({"events": [
        {"journeyId": 42, "name": "qr.shown", "device": "desktop", "ts": now},
        {"journeyId": journey, "name": ["qr.shown"], "device": "desktop", "ts": now},
        {"journeyId": journey, "name": "qr.shown", "device": true, "ts": now},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": true},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now + 2 * day},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now - 8 * day},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": "2019-01-01T00:00:00Z"},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now, "attrs": "sizePx=264"},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now, "attrs": {"blob": big}},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now, "eventId": 7},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now, "flow": 3},
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now, "eventId": "good-1"},
        // Clock skew within a day is fine (a phone minutes ahead), and so is RFC 3339 with an offset.
        {"journeyId": journey, "name": "mobile.opened", "device": "mobile", "ts": now + 6 * 60_000, "eventId": "good-2"},
        {"journeyId": journey, "name": "confirmation.shown", "device": "mobile", "ts": with_offset, "eventId": "good-3"},
    ]});
    let late = json!({"sentAt": "yesterday", "events": [{"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": now}]});
    expect_error(app.post("/api/v1/events", &late).await, 400, "invalid-sent-at").await;
    let body: serde_json::Value = app.post("/api/v1/events", &batch).await.json().await.unwrap();
    let codes: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["error"]["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, "invalid-journey-id"),
            (1, "invalid-name"),
            (2, "invalid-device"),
            (3, "invalid-ts"),
            (4, "invalid-ts"),
            (5, "invalid-ts"),
            (6, "invalid-ts"),
            (7, "invalid-attrs"),
            (8, "invalid-attrs"),
            (9, "invalid-event-id"),
            (10, "invalid-flow"),
        ],
        "{body}"
    );
    for r in body["rejected"].as_array().unwrap() {
        assert!(r["error"]["message"].as_str().unwrap().len() > 10, "a sentence naming the field: {r}");
    }
    // The ancient RFC 3339 one (index 6) is only refused because it is older than a week.
    let stale = body["rejected"].as_array().unwrap().iter().find(|r| r["index"] == 6).unwrap();
    assert!(stale["error"]["message"].as_str().unwrap().contains("seven days"), "{stale}");
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let id = handoff_core::domain::JourneyId::parse(&journey).unwrap();
    let stored = handoff_core::storage::Journeys::events_of(&db, id).await.unwrap();
    let ids: Vec<&str> = stored.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, vec!["good-1", "good-2", "good-3"], "the good ones of the batch are kept");
    assert_eq!(body["accepted"], 3);
    // The journey (an id the server never issued) was created by its first event.
    let journey_row = handoff_core::storage::Journeys::journey(&db, id).await.unwrap().expect("journey");
    assert_eq!(journey_row.facts.events, 3);
});
