//! Two instances sharing one PostgreSQL database behind one public origin (as behind a
//! load balancer): a ceremony started on one finishes on the other, because ceremony
//! state and sessions live in the database.

use crate::support::app::{fresh_database, json_ok, postgres_url};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_and_sessions_cross_instances() {
    if postgres_url().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = TestOptions {
        database_url: Some(fresh_database(Backend::Postgres, &dir).await),
        public_origin: Some("http://localhost:8443".into()),
        ..Default::default()
    };
    let a = TestApp::spawn_with(Backend::Postgres, options.clone()).await;
    let b = TestApp::spawn_with(Backend::Postgres, options).await;
    let mut key = SoftKey::new(&a.origin);

    // Register: start on A, finish on B.
    let start = json_ok(a.registration_start("nina").await).await;
    let credential = key.create(&start["publicKey"]).await;
    let done = json_ok(b.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await).await;

    // Sign in: start on B, finish on A; the session then works on both.
    let browser = a.new_browser();
    let login: serde_json::Value = browser
        .post(b.url("/api/v1/login/start"))
        .json(&serde_json::json!({"identifier": "nina"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assertion = key.get(&login["publicKey"]).await;
    let finish = browser
        .post(a.url("/api/v1/login/finish"))
        .json(&serde_json::json!({"ceremonyId": login["ceremonyId"], "credential": assertion}))
        .send()
        .await
        .unwrap();
    let signed_in = json_ok(finish).await;
    assert_eq!(signed_in["userId"], done["userId"]);
    for app in [&a, &b] {
        let session = json_ok(browser.get(app.url("/api/v1/session")).send().await.unwrap()).await;
        assert_eq!(session["identifier"], "nina");
    }
}
