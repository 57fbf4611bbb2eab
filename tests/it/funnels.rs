//! `GET /funnels` on a fixed data set, against hand-computed numbers, on both backends.

use handoff_core::domain::JourneyId;
use handoff_core::storage::{Journeys, StoredEvent};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::app::{expect_error, json_ok};

const TOKEN: &str = "test-operator-token-0123456789";
pub(crate) const T0: i64 = 1_800_000_000_000;

/// (device, name, ms after the journey's start, attrs)
pub(crate) type Step<'a> = (&'a str, &'a str, i64, Value);

pub(crate) fn journey(os: &str, browser: &str, flow: &str, start: i64, steps: Vec<Step<'_>>) -> Vec<StoredEvent> {
    let id = JourneyId::new();
    steps
        .into_iter()
        .map(|(device, name, at, attrs)| StoredEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            journey_id: id,
            name: name.into(),
            device: device.into(),
            flow: Some(flow.into()),
            ts: start + at,
            received_at: start + at,
            attrs: attrs.to_string(),
            os: (device != "server").then(|| os.into()),
            browser: (device != "server").then(|| browser.into()),
            form_factor: (device != "server").then(|| "desktop".into()),
            app_version: None,
            clock_offset: None,
        })
        .collect()
}

/// Five QR journeys (two signed in, three lost at different steps), one cross-device, one
/// a day earlier; shared with the dashboard tests.
pub(crate) fn fixed_data_set() -> Vec<StoredEvent> {
    let e = || json!({});
    let qr = "qr-approval";
    let mut all = Vec::new();
    // 1. Windows Chrome: every step, session after 10 s.
    all.extend(journey(
        "Windows",
        "Chrome",
        qr,
        T0,
        vec![
            ("desktop", "qr.shown", 0, e()),
            ("server", "qr.scanned", 2_000, e()),
            ("mobile", "mobile.opened", 3_000, e()),
            ("mobile", "confirmation.shown", 4_000, e()),
            ("server", "qr.approved", 8_000, e()),
            ("desktop", "desktop.callback_received", 9_000, json!({"via": "sse"})),
            ("server", "session.established", 10_000, e()),
        ],
    ));
    // 2. Windows Chrome: no callback event (implied by the session), session after 20 s.
    all.extend(journey(
        "Windows",
        "Chrome",
        qr,
        T0 + 1,
        vec![
            ("desktop", "qr.shown", 0, e()),
            ("server", "qr.scanned", 2_000, e()),
            ("mobile", "mobile.opened", 3_000, e()),
            ("mobile", "confirmation.shown", 4_000, e()),
            ("server", "qr.approved", 8_000, e()),
            ("server", "session.established", 20_000, e()),
        ],
    ));
    // 3. macOS Safari: never scanned, expired.
    all.extend(journey(
        "macOS",
        "Safari",
        qr,
        T0 + 2,
        vec![("desktop", "qr.shown", 0, e()), ("server", "qr.expired", 300_000, json!({"from": "created"}))],
    ));
    // 4. macOS Safari: scanned, the phone page never opened.
    all.extend(journey(
        "macOS",
        "Safari",
        qr,
        T0 + 3,
        vec![("desktop", "qr.shown", 0, e()), ("server", "qr.scanned", 5_000, e())],
    ));
    // 5. Windows Chrome: the phone showed another account and denied.
    all.extend(journey(
        "Windows",
        "Chrome",
        qr,
        T0 + 4,
        vec![
            ("desktop", "qr.shown", 0, e()),
            ("server", "qr.scanned", 2_000, e()),
            ("mobile", "mobile.opened", 3_000, e()),
            ("mobile", "confirmation.shown", 4_000, json!({"mismatch": true})),
            ("server", "qr.denied", 6_000, e()),
        ],
    ));
    // 6. Another flow (not counted), and one outside the window.
    all.extend(journey("Windows", "Edge", "cross-device", T0 + 5, vec![("desktop", "ceremony.started", 0, e())]));
    all.extend(journey("Linux", "Firefox", qr, T0 - 86_400_000, vec![("desktop", "qr.shown", 0, e())]));
    all
}

fn counts(steps: &Value) -> Vec<(String, u64)> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["count"].as_u64().unwrap()))
        .collect()
}

fn named(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

on_both_backends!(funnels_match_hand_computed_numbers, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    db.record(&fixed_data_set()).await.unwrap();
    // Everything not yet successful is finished now (as the idle janitor would).
    db.finish_idle(T0 + 10_000_000, T0 + 10_000_000, 1_000).await.unwrap();

    let get = |path: String| {
        let app = &app;
        async move { app.client.get(app.url(&path)).bearer_auth(TOKEN).send().await.unwrap() }
    };
    // First every hour is read row by row (its rollup is dirty); then the hours are rolled
    // up and the same answers must come from the rollups (the window starts a second
    // before an hour, so that second is still read row by row).
    for rolled_up in [false, true] {
        if rolled_up {
            assert!(db.refresh_rollups(T0 + 30 * 86_400_000, 1_000).await.unwrap() >= 2, "hours were rolled up");
        }
        let window = format!("from={}&to={}", T0 - 1_000, T0 + 3_600_000);
        let f = json_ok(get(format!("/api/v1/funnels?flow=qr-approval&{window}&by=os")).await).await;
        assert_eq!(f["journeys"], 5, "{f}");
        assert_eq!(
            counts(&f["steps"]),
            named(&[
                ("shown", 5),
                ("scanned", 4),
                ("mobile-opened", 3),
                ("confirmation-shown", 3),
                ("confirmed", 2),
                ("callback-received", 2),
                ("session", 2)
            ])
        );
        let session = &f["steps"][6];
        assert_eq!(session["conversion"], 0.4);
        assert_eq!(session["stepConversion"], 1.0);
        assert_eq!((session["p50Ms"].as_i64(), session["p90Ms"].as_i64()), (Some(10_000), Some(20_000)));
        assert_eq!(f["steps"][1]["stepConversion"], 0.8);
        let drops: Vec<(String, u64)> = f["dropOff"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["rootCause"].as_str().unwrap().to_owned(), d["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(drops, named(&[("handoff-failure", 1), ("scan-failure", 1), ("wrong-account", 1)]));
        assert!(f["dropOff"][0]["action"].as_str().unwrap().len() > 20);
        let breakdown = f["breakdown"].as_array().unwrap();
        assert_eq!(breakdown.len(), 2);
        assert_eq!((breakdown[0]["segment"].as_str(), breakdown[0]["journeys"].as_u64()), (Some("Windows"), Some(3)));
        assert_eq!(
            counts(&breakdown[0]["steps"]),
            named(&[
                ("shown", 3),
                ("scanned", 3),
                ("mobile-opened", 3),
                ("confirmation-shown", 3),
                ("confirmed", 2),
                ("callback-received", 2),
                ("session", 2)
            ])
        );
        assert_eq!(counts(&breakdown[1]["steps"])[..2], named(&[("shown", 2), ("scanned", 1)])[..]);

        // Without a window: the journey from the day before counts too.
        let all = json_ok(get("/api/v1/funnels?flow=qr-approval".into()).await).await;
        assert_eq!(all["journeys"], 6);
    }
    // Bad queries are named; the token is required.
    expect_error(get("/api/v1/funnels".into()).await, 400, "invalid-query").await;
    expect_error(get("/api/v1/funnels?flow=qr-approval&by=shoe-size".into()).await, 400, "invalid-query").await;
    expect_error(get("/api/v1/funnels?flow=qr-approval&from=soon".into()).await, 400, "invalid-query").await;
    expect_error(app.get("/api/v1/funnels?flow=qr-approval").await, 401, "operator-token-required").await;
});

on_both_backends!(insights_name_the_segment_that_differs, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    // Three hours ago: whole hours the rollups answer for.
    let start = handoff_core::clock::now_ms() - 3 * 3_600_000;
    let cd = "cross-device";
    let mut events = Vec::new();
    let ok =
        || vec![("desktop", "ceremony.started", 0, json!({})), ("server", "session.established", 4_000, json!({}))];
    let far = || {
        vec![
            ("desktop", "ceremony.started", 0, json!({})),
            ("desktop", "webauthn.failed", 45_000, json!({"errorName": "NotAllowedError", "elapsedMs": 45_000})),
        ]
    };
    for i in 0..100 {
        events.extend(journey("Android", "Chrome", cd, start + i, if i < 40 { ok() } else { far() }));
    }
    for i in 0..200 {
        events.extend(journey("iOS", "Safari", cd, start + 1_000 + i, if i < 186 { ok() } else { far() }));
    }
    // Five journeys of a rare system: too few for any statement.
    for i in 0..5 {
        events.extend(journey("Tizen", "Samsung", cd, start + 2_000 + i, far()));
    }
    db.record(&events).await.unwrap();
    db.finish_idle(start + 10_000_000, start + 10_000_000, 10_000).await.unwrap();
    // Read from the rollups (every hour rolled up, the current one too).
    db.refresh_rollups(handoff_core::clock::now_ms() + 7_200_000, 1_000).await.unwrap();

    let resp = app.client.get(app.url("/api/v1/insights")).bearer_auth(TOKEN).send().await.unwrap();
    let body = json_ok(resp).await;
    let list = body["insights"].as_array().unwrap();
    let android = list.iter().find(|i| i["segment"] == "os=Android, flow=cross-device").expect("Android stands out");
    assert_eq!((android["value"].as_f64(), android["n"].as_u64()), (Some(0.4), Some(100)), "{android}");
    assert_eq!(android["metric"], "success-rate");
    let statement = android["statement"].as_str().unwrap();
    assert!(
        statement.contains("Android users (os) in cross-device sign-ins succeed in 40% of attempts (n=100)"),
        "{statement}"
    );
    assert!(statement.contains("60% fail with proximity-or-connection"), "{statement}");
    assert!(android["significance"].as_f64().unwrap() < 0.01);
    assert!(!list.iter().any(|i| i["segment"].as_str().unwrap().contains("Tizen")), "n=5 makes no headline");
    // The same split shows by browser too (Chrome vs Safari); the ranking is by strength.
    assert!(list.iter().any(|i| i["segment"] == "browser=Chrome, flow=cross-device"));
    expect_error(app.get("/api/v1/insights").await, 401, "operator-token-required").await;
    let bad = app.client.get(app.url("/api/v1/insights?from=later")).bearer_auth(TOKEN).send().await.unwrap();
    expect_error(bad, 400, "invalid-query").await;
});
