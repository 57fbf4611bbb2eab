//! `handoff report` on a fixed data set: the real binary, a SQLite file written through the
//! store, the text and the JSON output checked against hand-computed numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use handoff_core::domain::JourneyId;
use handoff_core::storage::{Journeys, StoredEvent};

const T0: i64 = 1_800_000_000_000;

fn event(journey: JourneyId, device: &str, name: &str, at: i64, attrs: &str) -> StoredEvent {
    StoredEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        journey_id: journey,
        name: name.into(),
        device: device.into(),
        flow: Some("cross-device".into()),
        ts: T0 + at,
        received_at: T0 + at,
        attrs: attrs.into(),
        os: (device != "server").then(|| "Windows".into()),
        browser: (device != "server").then(|| "Chrome".into()),
        form_factor: None,
        app_version: None,
        clock_offset: None,
    }
}

#[tokio::test]
async fn the_report_prints_funnels_and_root_causes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/handoff.db", dir.path().display());
    let db = handoff_store::Database::connect(&url).await.unwrap();
    let mut events = Vec::new();
    // Three cross-device journeys: one signs in after 4 s, two refused after 45 s.
    for (i, ok) in [true, false, false].into_iter().enumerate() {
        let j = JourneyId::new();
        let at = i as i64;
        events.push(event(j, "desktop", "identifier.submitted", at, "{}"));
        events.push(event(j, "server", "decision.made", at + 100, r#"{"verdict":"cross-device"}"#));
        events.push(event(j, "desktop", "ceremony.started", at + 200, "{}"));
        if ok {
            events.push(event(j, "desktop", "webauthn.completed", at + 3_900, "{}"));
            events.push(event(j, "server", "server.verification", at + 3_950, r#"{"result":"ok"}"#));
            events.push(event(j, "server", "session.established", at + 4_000, "{}"));
        } else {
            events.push(event(
                j,
                "desktop",
                "webauthn.failed",
                at + 45_200,
                r#"{"errorName":"NotAllowedError","elapsedMs":45000}"#,
            ));
        }
    }
    db.record(&events).await.unwrap();
    db.finish_idle(T0 + 1_000_000, T0 + 1_000_000, 100).await.unwrap();
    db.close().await;

    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
            .arg("report")
            .args(["--database-url", &url, "--data-dir", dir.path().to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "report failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["--by", "browser"]);
    assert!(
        text.contains("cross-device: 3 journeys, 33.3% signed in (time to session p50 4.0 s, p90 4.0 s)"),
        "{text}"
    );
    assert!(text.contains("  ceremony-started             3      100.0%         100.0%"), "{text}");
    assert!(text.contains("  webauthn-completed           1       33.3%          33.3%"), "{text}");
    assert!(text.contains("    proximity-or-connection       2 (100.0%)"), "{text}");
    assert!(text.contains("try first: Show Bluetooth"), "{text}");
    assert!(text.contains("    Chrome                        3 journeys, 33.3% signed in"), "{text}");
    assert!(!text.contains("qr-approval"), "flows without journeys are left out: {text}");

    // A window around the data set, so insights look at it: three journeys are too few.
    let window = ["--from", "1799999000000", "--to", "1800001000000"];
    let json: serde_json::Value =
        serde_json::from_str(&run(&["--json", "--flow", "cross-device", window[0], window[1], window[2], window[3]]))
            .unwrap();
    assert_eq!(json["funnels"][0]["journeys"], 3);
    assert_eq!(json["funnels"][0]["steps"][5]["count"], 1);
    assert_eq!(json["funnels"][0]["dropOff"][0]["rootCause"], "proximity-or-connection");
    assert_eq!(json["insights"], serde_json::json!([]), "three journeys make no insight (30 a side are needed)");

    // The same report from a running server's API (`--url`), and a clear refusal of a wrong token.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = "report-test-operator-token-0123";
    let mut server = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["serve", "--database-url", &url, "--data-dir", dir.path().to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--operator-token", token])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let ready = async {
        for _ in 0..100 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(ready.await, "the server did not start");
    let remote = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["report", "--url", &base, "--operator-token", token, "--by", "browser"])
        .output()
        .unwrap();
    let wrong = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["report", "--url", &base, "--operator-token", "not-the-operator-token-at-all"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(remote.status.success(), "report --url failed: {}", String::from_utf8_lossy(&remote.stderr));
    assert_eq!(String::from_utf8(remote.stdout).unwrap(), text, "--url prints what the database gives");
    assert_eq!(wrong.status.code(), Some(2));
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("403") && said.contains("operator token"), "{said}");

    let bad = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["report", "--database-url", &url, "--from", "last tuesday"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"), "the bad flag is named");
}
