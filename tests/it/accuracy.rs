//! Diagnosis accuracy (issue #6): the simulator plays sign-ins with planted outcomes
//! through the real HTTP API, the server stitches and diagnoses them, and the diagnosis is
//! scored against the ground truth. At least 95 % of journeys must get the planted root
//! cause, and no phase may be reported observed when nobody emitted its event.

use std::time::Duration;

use handoff_server::config::RawConfig;
use handoff_simulate::{Options, Target};

use crate::on_both_backends;
use crate::support::{TestApp, TestOptions};

/// Short lifetimes so unfinished journeys are diagnosed within seconds, and limits high
/// enough for one simulator to act as many people.
fn quick_server() -> TestOptions {
    TestOptions {
        extra: RawConfig {
            qr_ttl_seconds: Some(3),
            journey_idle_seconds: Some(3),
            qr_create_per_minute: Some(100_000),
            qr_approve_per_minute: Some(100_000),
            events_per_minute: Some(1_000_000),
            login_start_per_minute: Some(1_000_000),
            login_start_per_identifier: Some(1_000_000),
            registration_start_per_minute: Some(1_000_000),
            registration_start_per_identifier: Some(1_000_000),
            ..RawConfig::default()
        },
        ..TestOptions::default()
    }
}

on_both_backends!(the_diagnosis_finds_the_planted_root_causes, |backend| async move {
    let app = TestApp::spawn_with(backend, quick_server()).await;
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.jsonl");
    let options = Options {
        target: Target { base: app.base.clone(), origin: app.origin.clone() },
        journeys: 300,
        people: 60,
        rate: 120.0,
        seed: 7,
        time_scale: 400.0,
        desktop_passkey_share: 350,
        fallback_share: 30,
        // Three times the published failure rates, so 300 attempts plant every kind.
        failure_boost: 3,
        truth_path: Some(truth_path.clone()),
        progress: false,
    };
    let report = handoff_simulate::simulate(&options).await.expect("the simulation runs");
    assert!(report.errors.is_empty(), "attempts broke: {:?}", report.errors);
    assert_eq!(report.truths.len(), 300);
    let written = std::fs::read_to_string(&truth_path).unwrap();
    assert_eq!(written.lines().count(), 300, "one ground-truth line per attempt");

    // The people are done: move the server's clock past the QR and idle lifetimes, so the
    // janitors' next rounds expire what is left and finish every journey.
    app.clock.advance(Duration::from_secs(4));
    let token = "test-operator-token-0123456789";
    let score = handoff_simulate::score(&options.target, token, &report.truths, Duration::from_secs(60), false)
        .await
        .expect("scoring runs");
    println!("{}", score.render());
    assert_eq!(score.undiagnosed, 0, "every journey is diagnosed: {}", score.render());
    assert!(score.phase_violations.is_empty(), "phases observed without their event: {:?}", score.phase_violations);
    assert!(score.accuracy() >= 0.95, "accuracy below 95 %:\n{}", score.render());
    // The run covered the flows and a real spread of planted causes.
    let flows: std::collections::BTreeSet<&str> = report.truths.iter().map(|t| t.flow.as_str()).collect();
    for flow in ["passkey-local", "cross-device", "qr-approval"] {
        assert!(flows.contains(flow), "no {flow} attempts in {flows:?}");
    }
    // (Which person plays which attempt depends on timing, so the exact mix varies a little.)
    let planted = score.causes.iter().filter(|(cause, c)| *cause != "success" && c.planted > 0).count();
    assert!(planted >= 9, "only {planted} root causes were planted: {}", score.render());
});
