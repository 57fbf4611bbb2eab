//! `GET /metrics`: Prometheus text after real traffic, behind the operator token.

use serde_json::json;

use crate::on_both_backends;
use crate::support::app::expect_error;
use crate::support::{SoftKey, TestApp};

on_both_backends!(metrics_count_sign_ins_decisions_qr_and_events, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "maja@example.com").await;
    assert_eq!(app.sign_in(&mut key, "maja@example.com").await.status(), 200);
    let qr = app.new_browser().post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap();
    assert_eq!(qr.status(), 200);
    let journey = uuid::Uuid::new_v4().to_string();
    let batch = json!({"events": [
        {"journeyId": journey, "name": "qr.shown", "device": "desktop", "ts": handoff_core::clock::now_ms()},
        {"journeyId": "nope", "name": "qr.shown", "device": "desktop", "ts": 0},
    ]});
    assert_eq!(app.post("/api/v1/events", &batch).await.status(), 202);

    expect_error(app.get("/metrics").await, 401, "operator-token-required").await;
    let resp = app.client.get(app.url("/metrics")).bearer_auth("test-operator-token-0123456789").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    for line in [
        r#"handoff_sign_ins_total{flow="passkey-local",outcome="success"} 1"#,
        r#"handoff_qr_attempts_total{value="created"} 1"#,
        r#"handoff_events_total{value="accepted"} 1"#,
        r#"handoff_events_total{value="rejected"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("handoff_decisions_total{value=") && l.ends_with(" 1")), "{text}");
    assert!(
        text.contains(
            r#"handoff_http_request_duration_seconds_count{method="POST",route="/api/v1/login/finish",status="2xx"} 1"#
        ),
        "latency by route pattern:\n{text}"
    );
    assert!(!text.contains(&journey), "labels never carry ids");
    assert!(text.trim_end().ends_with("# EOF"));
});
