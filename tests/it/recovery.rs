//! Nobody locked out (PRODUCT §7) over HTTP, with a real SMTP server: `tests/smtp/server.py`
//! (aiosmtpd, Debian's python3-aiosmtpd) writes every mail it accepts to a folder, and the
//! tests read the code from the delivered mail. Also a server that refuses the mail (550)
//! and one that is down until it comes up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use handoff_server::config::RawConfig;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::decisions::WINDOWS_CHROME;
use crate::oidc::OPERATOR;
use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, settled_events};
use crate::support::{SoftKey, TestApp, TestOptions};

/// A local SMTP server (a child process), killed when dropped.
struct Smtp {
    child: Child,
    /// Kept open: the server would die of a broken pipe if it wrote to a closed one.
    _stdout: std::process::ChildStdout,
    port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Starts one on `port`; `refuse`: answers 550 to every recipient.
    fn start_on(port: u16, refuse: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/server.py");
        let mut command = Command::new("/usr/bin/python3");
        command.arg(script).args(["--port", &port.to_string(), "--dir"]).arg(dir.path());
        if refuse {
            command.arg("--refuse");
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect(
            "the test SMTP server needs /usr/bin/python3 with aiosmtpd (apt-get install python3-aiosmtpd; scripts/test does)",
        );
        let mut out = child.stdout.take().unwrap();
        let mut line = [0u8; 16];
        let n = std::io::Read::read(&mut out, &mut line).expect("the SMTP server says ready");
        assert!(String::from_utf8_lossy(&line[..n]).starts_with("ready"), "SMTP server did not start");
        Self { child, _stdout: out, port, dir }
    }

    fn start() -> Self {
        Self::start_on(Self::free_port(), false)
    }

    /// The mails received so far, as text.
    fn mails(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }

    /// Waits (up to 10 s) for the `n`th mail and returns it, soft line breaks undone.
    async fn nth_mail(&self, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(mail) = self.mails().get(n - 1) {
                return mail.replace("=\r\n", "").replace("=\n", "");
            }
            assert!(Instant::now() < deadline, "mail {n} never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mail_config(port: u16) -> RawConfig {
    RawConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        smtp_allow_plaintext: Some(true),
        mail_from: Some("Handoff tests <login@example.com>".into()),
        ..RawConfig::default()
    }
}

async fn app_with_mail(backend: crate::support::Backend, port: u16) -> TestApp {
    TestApp::spawn_with(backend, TestOptions { extra: mail_config(port), ..Default::default() }).await
}

/// The 6-digit code in a mail's subject.
fn code_in(mail: &str) -> String {
    let at = mail.find(" is your sign-in code").expect("a code mail");
    mail[..at].rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().to_owned()
}

async fn start(app: &TestApp, http: &Client, identifier: &str) -> Response {
    http.post(app.url("/api/v1/email-code/start"))
        .header("user-agent", WINDOWS_CHROME)
        .json(&json!({"identifier": identifier}))
        .send()
        .await
        .unwrap()
}

async fn finish(app: &TestApp, http: &Client, attempt: &str, code: &str) -> Response {
    http.post(app.url("/api/v1/email-code/finish"))
        .json(&json!({"attemptId": attempt, "code": code}))
        .send()
        .await
        .unwrap()
}

fn browser() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

/// Signs up `identifier` with a passkey in its own browser (then drops that browser: the
/// phone that is lost).
async fn account(app: &TestApp, identifier: &str) {
    app.sign_up_in(&browser(), &mut SoftKey::new(&app.origin), identifier).await;
}

async fn session(app: &TestApp, http: &Client) -> Value {
    json_ok(http.get(app.url("/api/v1/session")).send().await.unwrap()).await
}

on_both_backends!(an_emailed_code_signs_in_once_as_a_recovery_session, |backend| async move {
    let smtp = Smtp::start();
    let app = app_with_mail(backend, smtp.port).await;
    account(&app, "ann@example.com").await;
    let laptop = browser();
    let started = start(&app, &laptop, "Ann@Example.com").await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let started: Value = started.json().await.unwrap();
    let attempt = started["attemptId"].as_str().unwrap().to_owned();
    assert_eq!(started["expiresIn"], 600);

    let mail = smtp.nth_mail(1).await;
    assert!(mail.contains("X-Envelope-To: ann@example.com"), "{mail}");
    assert!(mail.contains("Handoff tests"), "the site's name: {mail}");
    assert!(mail.contains("someone on Chrome on Windows"), "who asked: {mail}");
    assert!(mail.contains("Content-Type: text/html"), "an HTML part too: {mail}");
    let code = code_in(&mail);
    assert_eq!(code.len(), 6);
    // The SMTP server has the mail; the worker records it a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let delivery =
            json_ok(laptop.get(app.url(&format!("/api/v1/email-code/{attempt}"))).send().await.unwrap()).await;
        if delivery["delivery"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "never reported sent: {delivery}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let signed_in = json_ok(finish(&app, &laptop, &attempt, &code).await).await;
    assert_eq!(signed_in["identifier"], "ann@example.com");
    let me = session(&app, &laptop).await;
    assert_eq!((me["method"].as_str(), me["recovery"].as_bool()), (Some("email-code"), Some(true)), "{me}");
    // Single use.
    expect_error(finish(&app, &laptop, &attempt, &code).await, 400, "invalid-attempt-id").await;

    // A recovery session may add a passkey here, and nothing else sensitive before a
    // passkey ceremony on this device.
    expect_error(laptop.post(app.url("/api/v1/recovery-codes")).send().await.unwrap(), 401, "reauth-required").await;
    let mut key = SoftKey::new(&app.origin);
    let reg = json_ok(
        laptop
            .post(app.url("/api/v1/passkeys/registration/start"))
            .json(&json!({"identifier": "ann@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let credential = key.create(&reg["publicKey"]).await;
    let body = json!({"ceremonyId": reg["ceremonyId"], "credential": credential});
    json_ok(laptop.post(app.url("/api/v1/passkeys/registration/finish")).json(&body).send().await.unwrap()).await;
    let passkeys = json_ok(laptop.get(app.url("/api/v1/passkeys")).send().await.unwrap()).await;
    assert_eq!(passkeys["passkeys"].as_array().unwrap().len(), 2, "the lost phone's passkey and the new one");

    // Every step is in the journey of the email-code flow.
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(started["journeyId"].as_str().unwrap()).unwrap();
    let names: Vec<String> =
        settled_events(&db, journey, "session.established").await.into_iter().map(|e| e.name).collect();
    for step in ["email.code_sent", "email.delivered", "email.code_entered", "session.established"] {
        assert!(names.iter().any(|n| n == step), "{step} missing from {names:?}");
    }
});

on_both_backends!(codes_have_five_tries_and_ten_minutes, |backend| async move {
    let smtp = Smtp::start();
    let app = app_with_mail(backend, smtp.port).await;
    account(&app, "bea@example.com").await;
    let http = browser();
    let attempt: Value = start(&app, &http, "bea@example.com").await.json().await.unwrap();
    let attempt = attempt["attemptId"].as_str().unwrap().to_owned();
    let code = code_in(&smtp.nth_mail(1).await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let response = finish(&app, &http, &attempt, wrong).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["triesLeft"].as_u64()),
            (Some("code-wrong"), Some(left))
        );
    }
    expect_error(finish(&app, &http, &attempt, &code).await, 400, "too-many-tries").await;
    expect_error(finish(&app, &http, &attempt, "12345").await, 400, "invalid-code").await;

    let late: Value = start(&app, &http, "bea@example.com").await.json().await.unwrap();
    let late_code = code_in(&smtp.nth_mail(2).await);
    app.clock.advance(Duration::from_secs(601));
    expect_error(finish(&app, &http, late["attemptId"].as_str().unwrap(), &late_code).await, 410, "code-expired").await;
});

on_both_backends!(unknown_identifiers_get_the_same_answer_and_asking_is_limited, |backend| async move {
    let smtp = Smtp::start();
    let app = app_with_mail(backend, smtp.port).await;
    app.at_the_start_of_a_minute();
    account(&app, "cy@example.com").await;
    let http = browser();
    let mut timings = Vec::new();
    let mut shapes = Vec::new();
    for identifier in ["cy@example.com", "nobody@example.com", "cy@example.com", "ghost@example.com"] {
        let t = Instant::now();
        let response = start(&app, &http, identifier).await;
        timings.push((identifier, t.elapsed()));
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{identifier}");
        let body: Value = response.json().await.unwrap();
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        shapes.push(keys);
        // Whatever is typed, the unknown attempt takes codes and counts tries the same way.
        let attempt = body["attemptId"].as_str().unwrap();
        let wrong = finish(&app, &http, attempt, "123456").await.json::<Value>().await.unwrap();
        assert_eq!(wrong["error"]["code"], "code-wrong", "{identifier}: {wrong}");
        assert_eq!(wrong["error"]["triesLeft"], 4, "{identifier}");
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "one answer shape: {shapes:?}");
    // Both kinds write an attempt and a mail row in one transaction; the time is printed
    // for the record (bench/mail.sh measures it properly).
    eprintln!("email-code/start times: {timings:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mails().len(), 2, "only the real account got mail");
    // Three codes per identifier and minute: the fourth is refused.
    assert_eq!(start(&app, &http, "cy@example.com").await.status(), StatusCode::ACCEPTED);
    expect_error(start(&app, &http, "cy@example.com").await, 429, "rate-limited").await;
});

on_both_backends!(a_refusing_or_absent_mail_server_is_reported_and_retried, |backend| async move {
    // Refused (550): failed for good, and the page can say so.
    let refusing = Smtp::start_on(Smtp::free_port(), true);
    let app = app_with_mail(backend, refusing.port).await;
    account(&app, "dee@example.com").await;
    let http = browser();
    let started: Value = start(&app, &http, "dee@example.com").await.json().await.unwrap();
    let status = format!("/api/v1/email-code/{}", started["attemptId"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = json_ok(http.get(app.url(&status)).send().await.unwrap()).await;
        if d["delivery"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "never reported failed: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(started["journeyId"].as_str().unwrap()).unwrap();
    let bounced = settled_events(&db, journey, "email.bounced").await;
    let bounce = bounced.iter().find(|e| e.name == "email.bounced").unwrap();
    assert!(bounce.attrs.contains("550"), "{}", bounce.attrs);

    // Down: retried with backoff until the server is up.
    let port = Smtp::free_port();
    let app = app_with_mail(backend, port).await;
    account(&app, "eve@example.com").await;
    let started: Value = start(&app, &http, "eve@example.com").await.json().await.unwrap();
    let status = format!("/api/v1/email-code/{}", started["attemptId"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = json_ok(http.get(app.url(&status)).send().await.unwrap()).await;
        if d["delivery"] == "retrying" {
            break;
        }
        assert!(Instant::now() < deadline, "never reported retrying: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let smtp = Smtp::start_on(port, false);
    app.clock.advance(Duration::from_secs(15));
    let mail = smtp.nth_mail(1).await;
    assert!(mail.contains("eve@example.com"));
    let code = code_in(&mail);
    json_ok(finish(&app, &http, started["attemptId"].as_str().unwrap(), &code).await).await;
});

on_both_backends!(recovery_codes_sign_in_once_each_and_say_how_many_are_left, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.at_the_start_of_a_minute();
    let phone = browser();
    app.sign_up_in(&phone, &mut SoftKey::new(&app.origin), "fay@example.com").await;
    // Made right after a passkey sign-up: stepped up.
    let made = json_ok(phone.post(app.url("/api/v1/recovery-codes")).send().await.unwrap()).await;
    let codes: Vec<String> = made["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(json_ok(phone.get(app.url("/api/v1/recovery-codes")).send().await.unwrap()).await["codesLeft"], 10);

    let laptop = browser();
    let redeem = |identifier: &str, code: &str| {
        laptop
            .post(app.url("/api/v1/recovery-codes/redeem"))
            .json(&json!({"identifier": identifier, "code": code}))
            .send()
    };
    let typed = codes[3].to_lowercase().replace('-', " ");
    let signed_in = json_ok(redeem("fay@example.com", &typed).await.unwrap()).await;
    assert_eq!(signed_in["codesLeft"], 9);
    let me = session(&app, &laptop).await;
    assert_eq!((me["method"].as_str(), me["recovery"].as_bool()), (Some("recovery-code"), Some(true)));
    // Used once; wrong and unknown answer alike.
    expect_error(redeem("fay@example.com", &codes[3]).await.unwrap(), 400, "code-wrong").await;
    expect_error(redeem("nobody@example.com", &codes[4]).await.unwrap(), 400, "code-wrong").await;
    // New codes replace the old ones.
    let fresh = json_ok(phone.post(app.url("/api/v1/recovery-codes")).send().await.unwrap()).await;
    expect_error(redeem("fay@example.com", &codes[5]).await.unwrap(), 400, "code-wrong").await;
    for _ in 0..3 {
        expect_error(redeem("fay@example.com", "AAAA-BBBB-CCCC").await.unwrap(), 400, "code-wrong").await;
    }
    // Five wrong codes for the identifier within the minute: even a right one waits.
    expect_error(redeem("fay@example.com", fresh["codes"][0].as_str().unwrap()).await.unwrap(), 429, "rate-limited")
        .await;

    // The session's sign-in proof says how it was made: a one-time password.
    let client = crate::oidc::register(&app, json!({})).await;
    let proof = json_ok(
        laptop.post(app.url("/api/v1/session/token")).json(&json!({"clientId": client.id})).send().await.unwrap(),
    )
    .await;
    let token = proof["token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["amr"], json!(["otp"]), "{claims}");
});

on_both_backends!(an_operator_link_signs_in_once_from_its_page, |backend| async move {
    let app = TestApp::spawn(backend).await;
    account(&app, "gus@example.com").await;
    let make = |identifier: &str| {
        app.client
            .post(app.url("/api/v1/recovery-links"))
            .bearer_auth(OPERATOR)
            .json(&json!({"identifier": identifier}))
            .send()
    };
    expect_error(
        app.client
            .post(app.url("/api/v1/recovery-links"))
            .json(&json!({"identifier": "gus@example.com"}))
            .send()
            .await
            .unwrap(),
        401,
        "operator-token-required",
    )
    .await;
    expect_error(make("nobody@example.com").await.unwrap(), 400, "unknown-account").await;
    let made = make("gus@example.com").await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    let url = reqwest::Url::parse(made["url"].as_str().unwrap()).unwrap();
    assert!(url.path().starts_with("/recovery-link/"));
    let path = url.path().to_owned();

    let laptop = Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // Opening the page (a mail scanner would) does not use the link.
    for _ in 0..2 {
        let page = laptop.get(app.url(&path)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Sign in"));
    }
    let forged = laptop.post(app.url(&path)).send().await.unwrap();
    assert_eq!(forged.status(), 403, "a post without our Origin");
    let used =
        laptop.post(app.url(&path)).header("origin", app.origin.as_str().trim_end_matches('/')).send().await.unwrap();
    assert_eq!(used.status(), 303);
    assert_eq!(used.headers()["location"], "/?recovered=recovery-link");
    let me = session(&app, &laptop).await;
    assert_eq!((me["method"].as_str(), me["identifier"].as_str()), (Some("recovery-link"), Some("gus@example.com")));
    let again =
        laptop.post(app.url(&path)).header("origin", app.origin.as_str().trim_end_matches('/')).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert_eq!(laptop.get(app.url(&path)).send().await.unwrap().status(), 410);
    // Expired links are refused too.
    let late: Value = make("gus@example.com").await.unwrap().json().await.unwrap();
    app.clock.advance(Duration::from_secs(901));
    let late_path = reqwest::Url::parse(late["url"].as_str().unwrap()).unwrap().path().to_owned();
    assert_eq!(laptop.get(app.url(&late_path)).send().await.unwrap().status(), 410);
});

on_both_backends!(sign_up_mails_a_link_that_verifies_the_address_when_turned_on, |backend| async move {
    let smtp = Smtp::start();
    let extra = RawConfig { email_verification: Some(true), ..mail_config(smtp.port) };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let http = Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    app.sign_up_in(&http, &mut SoftKey::new(&app.origin), "hal@example.com").await;
    let user = session(&app, &http).await["userId"].as_str().unwrap().to_owned();
    let mail = smtp.nth_mail(1).await;
    assert!(mail.contains("Confirm your email address"), "{mail}");
    let at = mail.find("/verify-email/").expect("a link");
    let path: String = mail[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c)).collect();

    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let user = handoff_core::domain::UserId::parse(&user).unwrap();
    use handoff_core::storage::Recovery as _;
    assert!(!db.email_verified(user, "hal@example.com").await.unwrap());
    // The page does not spend the link; its button does, from our origin only.
    assert_eq!(http.get(app.url(&path)).send().await.unwrap().status(), 200);
    assert_eq!(http.post(app.url(&path)).send().await.unwrap().status(), 403);
    let origin = app.origin.as_str().trim_end_matches('/').to_owned();
    let confirmed = http.post(app.url(&path)).header("origin", &origin).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(db.email_verified(user, "hal@example.com").await.unwrap());
    assert_eq!(http.post(app.url(&path)).header("origin", &origin).send().await.unwrap().status(), 410);

    // Without the setting, sign-ups mail nothing.
    let quiet = app_with_mail(backend, smtp.port).await;
    quiet.sign_up_in(&browser(), &mut SoftKey::new(&quiet.origin), "ida@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mails().len(), 1);
});
