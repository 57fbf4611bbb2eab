//! No account enumeration (issue #18 item 3, PRODUCT §3). On `main` at 37d6c7f
//! `registration/start` answered an existing identifier 409, a decoy always had exactly one
//! credential (real accounts two or three), and decision reasons named a real account's
//! providers and operating systems to anyone who typed its identifier.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::decisions::{WINDOWS_CHROME, start_as};
use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok};
use crate::support::{SoftKey, TestApp, TestOptions};

fn aaguid(text: &str) -> [u8; 16] {
    *uuid::Uuid::parse_str(text).unwrap().as_bytes()
}

/// Providers and the transports their passkeys report.
const KINDS: &[(&str, &[&str])] = &[
    ("fbfc3007-154e-4ecc-8c0b-6e020557d7bd", &["hybrid", "internal"]), // iCloud Keychain
    ("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4", &["hybrid", "internal"]), // Google Password Manager
    ("bada5566-a7aa-401f-bd96-45619a55120d", &["hybrid", "internal"]), // 1Password
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", &["internal"]),           // Windows Hello
    ("00000000-0000-0000-0000-000000000000", &["usb", "nfc"]),         // a security key
];

/// What an anonymous caller can see of one `/login/start` answer, without the values
/// that differ anyway (ids, challenges).
fn shape(answer: &Value) -> String {
    let allow = answer["publicKey"]["allowCredentials"].as_array().cloned().unwrap_or_default();
    let mut creds: Vec<String> = allow
        .iter()
        .map(|c| {
            let mut t: Vec<&str> = c["transports"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            t.sort_unstable();
            format!("{}:{}", c["id"].as_str().unwrap().len(), t.join("+"))
        })
        .collect();
    creds.sort();
    let codes: BTreeSet<&str> =
        answer["decision"]["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    format!("{} [{}] {:?}", answer["decision"]["verdict"], creds.join(", "), codes)
}

on_both_backends!(unknown_identifiers_are_shaped_like_real_accounts, |backend| async move {
    let extra = handoff_server::config::RawConfig {
        registration_start_per_minute: Some(100_000),
        login_start_per_minute: Some(100_000),
        ..handoff_server::config::RawConfig::default()
    };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    // 24 accounts: 1–3 passkeys of mixed providers each.
    let mut known = Vec::new();
    for i in 0..24usize {
        let identifier = format!("real{i}@example.com");
        let browser = app.new_browser();
        for j in 0..=(i % 3) {
            let (id, transports) = KINDS[(i + j * 2) % KINDS.len()];
            let mut key = SoftKey::with_aaguid(&app.origin, aaguid(id));
            let start = json_ok(
                browser
                    .post(app.url("/api/v1/passkeys/registration/start"))
                    .json(&json!({"identifier": identifier}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let mut credential = key.create(&start["publicKey"]).await;
            credential["response"]["transports"] = json!(transports);
            let finish = browser
                .post(app.url("/api/v1/passkeys/registration/finish"))
                .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
                .send()
                .await
                .unwrap();
            json_ok(finish).await;
        }
        known.push(identifier);
    }
    // A second instance on the same database samples the accounts at start (a running one
    // does every ten minutes).
    let extra = handoff_server::config::RawConfig {
        login_start_per_minute: Some(100_000),
        ..handoff_server::config::RawConfig::default()
    };
    let options = TestOptions { database_url: Some(app.database_url.clone()), extra, ..Default::default() };
    let second = TestApp::spawn_with(backend, options).await;
    let desktop = second.new_browser();
    let client = json!({"capabilities": {"hybridTransport": true}});
    let mut answers = Vec::new();
    for id in &known {
        answers.push((
            true,
            start_as(&second, &desktop, WINDOWS_CHROME, json!({"identifier": id, "client": client})).await,
        ));
    }
    for i in 0..240 {
        let body = json!({"identifier": format!("ghost{i}@example.net"), "client": client});
        answers.push((false, start_as(&second, &desktop, WINDOWS_CHROME, body).await));
    }

    // No reason names a provider, an operating system or a browser.
    for (_, answer) in &answers {
        let reasons = answer["decision"]["reasons"].to_string();
        for word in
            ["iCloud", "Google", "Samsung", "1Password", "Windows", "iOS", "Android", "macOS", "Chrome", "Safari"]
        {
            assert!(!reasons.contains(word), "{word} in {reasons}");
        }
    }
    // Every shape a ghost gets is one a real account has, and the number of passkeys is
    // distributed alike.
    let known_shapes: BTreeSet<String> = answers.iter().filter(|(k, _)| *k).map(|(_, a)| shape(a)).collect();
    for (_, answer) in answers.iter().filter(|(k, _)| !*k) {
        assert!(known_shapes.contains(&shape(answer)), "a ghost's shape no account has: {}", shape(answer));
    }
    let counts = |real: bool| {
        let mut by: BTreeMap<usize, f64> = BTreeMap::new();
        let all: Vec<&Value> = answers.iter().filter(|(k, _)| *k == real).map(|(_, a)| a).collect();
        for a in &all {
            *by.entry(a["publicKey"]["allowCredentials"].as_array().map_or(0, Vec::len)).or_default() += 1.0;
        }
        by.into_iter().map(|(n, c)| (n, c / all.len() as f64)).collect::<BTreeMap<_, _>>()
    };
    let (real, ghosts) = (counts(true), counts(false));
    for n in real.keys().chain(ghosts.keys()) {
        let (r, g) = (real.get(n).copied().unwrap_or(0.0), ghosts.get(n).copied().unwrap_or(0.0));
        assert!(
            (r - g).abs() < 0.15,
            "{n} passkeys: {r:.2} of real accounts, {g:.2} of ghosts ({real:?} / {ghosts:?})"
        );
    }
    assert!(ghosts.len() >= 2, "ghosts have more than one inventory size: {ghosts:?}");
});

on_both_backends!(sign_up_of_a_taken_identifier_looks_like_a_new_one, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "taken@example.com").await;
    let stranger = app.new_browser();
    let start = |identifier: &str| {
        let request =
            stranger.post(app.url("/api/v1/passkeys/registration/start")).json(&json!({"identifier": identifier}));
        async move { json_ok(request.send().await.unwrap()).await }
    };
    let taken = start("taken@example.com").await;
    let free = start("free@example.com").await;
    // Same fields, same options apart from the name and the random values.
    let keys = |v: &Value| v["publicKey"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&taken), keys(&free));
    assert_eq!(taken["publicKey"]["excludeCredentials"], free["publicKey"]["excludeCredentials"]);
    assert_eq!(taken["publicKey"]["user"]["displayName"], "taken@example.com");
    // The collision shows only at finish, after a whole ceremony, as for two people racing.
    let credential = SoftKey::new(&app.origin).create(&taken["publicKey"]).await;
    let finish = stranger
        .post(app.url("/api/v1/passkeys/registration/finish"))
        .json(&json!({"ceremonyId": taken["ceremonyId"], "credential": credential}))
        .send()
        .await
        .unwrap();
    expect_error(finish, 409, "identifier-taken").await;
});
