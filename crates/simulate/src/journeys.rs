//! One sign-in attempt, played through the real HTTP API the way the desktop page, the
//! phone page and the person would play it: the identifier, the server's decision, then
//! the flow the server chose, with the planted outcome drawn for that flow and segment.
//! Every event the pages would record is sent (in batches, with the device's clock), and
//! every server step is caused by a real call; the ground truth lists both, so the scoring
//! can check that no phase is reported observed that nobody emitted. Time is compressed:
//! the `elapsedMs` a page reports is the modelled duration, the real wait is that divided
//! by the time scale.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::{Recorder, SimError};
use crate::people::{Person, Stranger, environment, sign_in_discoverable};
use crate::population::{self, Plan, timing};
use crate::truth::{Segment, Truth};

/// How fast simulated time runs.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Modelled milliseconds per real millisecond.
    pub scale: f64,
}

impl Pace {
    /// Waits for a modelled duration, compressed (at most 2 s of real time).
    pub async fn wait(self, modelled_ms: i64) {
        let real = (modelled_ms.max(0) as f64 / self.scale.max(1.0)).min(2_000.0);
        tokio::time::sleep(Duration::from_millis(real as u64)).await;
    }
}

/// What an attempt needs besides its person.
pub struct Context<'a> {
    /// Randomness (seeded per attempt, so a run is reproducible).
    pub rng: fastrand::Rng,
    /// Time compression.
    pub pace: Pace,
    /// A phone signed in as someone else, for wrong-account attempts.
    pub stranger: &'a tokio::sync::Mutex<Stranger>,
    /// Share (per mille) of attempts where the person picks the site's other method.
    pub fallback_share: u32,
    /// Multiplies the published failure rates (1: realistic).
    pub failure_boost: u32,
}

/// The server-side events a call causes, added to the ground truth as it happens.
struct Caused(Vec<&'static str>);

impl Caused {
    fn add(&mut self, names: &[&'static str]) {
        self.0.extend_from_slice(names);
    }
}

/// Plays one attempt for `person`; returns its ground truth.
pub async fn attempt(person: &mut Person, cx: &mut Context<'_>) -> Result<Truth, SimError> {
    // The server names the journey (and binds it to this browser); the identifier step is
    // recorded at the moment the person submitted, as the SDK does.
    let mut desk = Recorder::new("", None);
    let mut caused = Caused(Vec::new());
    desk.track(&person.desktop, "identifier.submitted", json!({}));
    let mut body = json!({
        "identifier": person.identifier,
        "client": environment(&person.desktop.device),
    });
    if cx.rng.u32(0..1000) < cx.fallback_share {
        body["prefer"] = json!("fallback");
    }
    let start = person.desktop.post_ok("/api/v1/login/start", &body).await?;
    let journey_id = start["journeyId"]
        .as_str()
        .ok_or_else(|| SimError::Other(format!("login/start named no journey: {start}")))?
        .to_owned();
    desk.set_journey(&journey_id);
    caused.add(&["decision.made"]);
    if !start["ceremonyId"].is_null() {
        caused.add(&["challenge.created"]);
    }
    let flow = match start["decision"]["verdict"].as_str() {
        Some("cross-device") => "cross-device",
        Some("qr-approval") => "qr-approval",
        Some("fallback") => "fallback",
        _ => "passkey-local",
    };
    desk.set_flow(flow);
    let plan = population::plan(&mut cx.rng, flow, &person.desktop.device, &person.phone.device, cx.failure_boost);
    let mut phone_events = Vec::new();
    match flow {
        "qr-approval" => phone_events = qr(person, cx, plan, &start, &mut desk, &mut caused).await?,
        "fallback" => {
            cx.pace.wait(cx.rng.i64(1_000..4_000)).await;
            desk.track(&person.desktop, "fallback.chosen", json!({ "method": "password" }));
            desk.flush(&person.desktop).await?;
        }
        _ => passkey(person, cx, plan, flow, &start, &mut desk, &mut caused).await?,
    }
    let mut emitted = std::mem::take(&mut desk.sent);
    emitted.extend(phone_events);
    emitted.extend(caused.0.iter().map(|s| (*s).to_owned()));
    Ok(Truth {
        journey_id,
        identifier: person.identifier.clone(),
        flow: flow.to_owned(),
        planted: plan.planted().map(str::to_owned),
        desktop: Segment::of(&person.desktop.device),
        mobile: (flow != "passkey-local" && flow != "fallback").then(|| Segment::of(&person.phone.device)),
        emitted,
    })
}

/// The local and cross-device passkey flows.
async fn passkey(
    person: &mut Person,
    cx: &mut Context<'_>,
    plan: Plan,
    flow: &str,
    start: &Value,
    desk: &mut Recorder,
    caused: &mut Caused,
) -> Result<(), SimError> {
    let browser = &person.desktop;
    let cross_device = flow == "cross-device";
    let ceremony_id = start["ceremonyId"].clone();
    cx.pace.wait(timing::ceremony_start(&mut cx.rng)).await;
    if plan == Plan::LeavesEarly || ceremony_id.is_null() {
        desk.track(browser, "page.hidden", json!({}));
        return desk.flush(browser).await;
    }
    let hints = start["publicKey"]["hints"].clone();
    desk.track(browser, "ceremony.started", json!({ "mediation": "optional", "hints": hints }));
    let refused = |error: &'static str, elapsed: i64| (error, elapsed);
    let failure = match plan {
        Plan::Cancels => Some(refused("NotAllowedError", timing::cancelled(&mut cx.rng))),
        Plan::NoCredential => Some(refused("NotAllowedError", timing::immediate(&mut cx.rng))),
        Plan::LosesConnection => Some(refused("NotAllowedError", timing::timed_out(&mut cx.rng))),
        Plan::Misconfigured if cx.rng.bool() => Some(refused("SecurityError", cx.rng.i64(5..60))),
        _ => None,
    };
    if let Some((error_name, elapsed)) = failure {
        cx.pace.wait(elapsed).await;
        desk.track(browser, "webauthn.failed", json!({ "errorName": error_name, "elapsedMs": elapsed }));
        browser
            .post_ok(
                "/api/v1/login/failure",
                &json!({ "ceremonyId": ceremony_id, "errorName": error_name, "elapsedMs": elapsed }),
            )
            .await?;
        caused.add(&["webauthn.failed"]);
        return desk.flush(browser).await;
    }
    let elapsed = timing::completed(&mut cx.rng, cross_device);
    cx.pace.wait(elapsed).await;
    let key = match (&mut person.desktop_key, cross_device) {
        (Some(key), false) => key,
        _ => &mut person.phone_key,
    };
    let assertion = if plan == Plan::Misconfigured {
        // The page runs on an origin the server does not list: the authenticator signs
        // client data naming it.
        wrong_origin_assertion(key, start).await?
    } else {
        let mut assertion = key.get(&start["publicKey"]).await?;
        if plan == Plan::BadSignature {
            tamper_signature(&mut assertion);
        }
        assertion
    };
    let attachment = if cross_device { "cross-platform" } else { "platform" };
    desk.track(
        &person.desktop,
        "webauthn.completed",
        json!({ "elapsedMs": elapsed, "authenticatorAttachment": attachment }),
    );
    desk.flush(&person.desktop).await?;
    let finish = person
        .desktop
        .call(
            Method::POST,
            "/api/v1/login/finish",
            Some(&json!({ "ceremonyId": ceremony_id, "credential": assertion })),
        )
        .await?;
    caused.add(&["server.verification"]);
    match (plan, finish.status.is_success()) {
        (Plan::Success, true) => {
            caused.add(&["session.established"]);
            person.desktop.call(Method::DELETE, "/api/v1/session", None).await?;
            Ok(())
        }
        (Plan::Success, false) | (_, true) => {
            Err(SimError::Other(format!("planned {plan:?}, /login/finish answered {}: {}", finish.status, finish.body)))
        }
        _ => Ok(()),
    }
}

/// An assertion from a copy of `key` signed for an origin the server does not allow.
async fn wrong_origin_assertion(key: &crate::SoftKey, start: &Value) -> Result<Value, SimError> {
    let mut origin = key.origin().clone();
    let host = format!("stale.{}", origin.host_str().unwrap_or("localhost"));
    origin.set_host(Some(&host)).map_err(|e| SimError::Other(format!("cannot make a wrong origin: {e}")))?;
    let mut elsewhere = crate::SoftKey::with_aaguid(&origin, population::aaguid::ONE_PASSWORD);
    elsewhere.store().restore(key.store().snapshot());
    Ok(elsewhere.get(&start["publicKey"]).await?)
}

/// Flips a bit of the assertion's signature.
fn tamper_signature(assertion: &mut Value) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some(sig) = assertion["response"]["signature"].as_str() else { return };
    let Ok(mut bytes) = URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')) else { return };
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    assertion["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(bytes));
}

/// Handoff QR approval: the desktop shows a code, a phone scans and answers.
async fn qr(
    person: &mut Person,
    cx: &mut Context<'_>,
    plan: Plan,
    _start: &Value,
    desk: &mut Recorder,
    caused: &mut Caused,
) -> Result<Vec<String>, SimError> {
    let desktop = &person.desktop;
    cx.pace.wait(cx.rng.i64(300..1_500)).await;
    if plan == Plan::LeavesEarly {
        desk.track(desktop, "page.hidden", json!({}));
        desk.flush(desktop).await?;
        return Ok(Vec::new());
    }
    let journey_id = desk.journey_id().to_owned();
    let code =
        desktop.post_ok("/api/v1/qr", &json!({ "journeyId": journey_id, "identifier": person.identifier })).await?;
    caused.add(&["qr.created"]);
    desk.track(desktop, "qr.shown", json!({ "sizePx": 264, "rotations": 0 }));
    desk.flush(desktop).await?;
    let token = code["url"].as_str().and_then(|u| u.rsplit('/').next()).unwrap_or_default().to_owned();
    if plan == Plan::NeverScans {
        caused.add(&["qr.expired"]);
        return Ok(Vec::new());
    }
    cx.pace.wait(cx.rng.i64(3_000..12_000)).await;
    let mut stranger = None;
    if plan == Plan::WrongAccount {
        stranger = Some(cx.stranger.lock().await);
    }
    let (phone, key) = match stranger.as_deref_mut() {
        Some(s) => (&s.phone, &mut s.key),
        None => (&person.phone, &mut person.phone_key),
    };
    let mut mobile = Recorder::new(&journey_id, Some("qr-approval"));
    let claim = phone.post_ok("/api/v1/qr/claim", &json!({ "token": token })).await?;
    caused.add(&["qr.scanned"]);
    if plan == Plan::PageNeverOpens {
        caused.add(&["qr.expired"]);
        return Ok(Vec::new());
    }
    mobile.track(phone, "mobile.opened", json!({}));
    let mismatch = claim["account"]["identifier"] != claim["requestedIdentifier"];
    mobile.track(phone, "confirmation.shown", json!({ "mismatch": mismatch }));
    mobile.flush(phone).await?;
    cx.pace.wait(cx.rng.i64(2_000..8_000)).await;
    let deny = plan == Plan::Denies || (plan == Plan::WrongAccount && cx.rng.bool());
    if plan == Plan::LeavesConfirmation || (plan == Plan::WrongAccount && !deny) {
        caused.add(&["qr.expired"]);
        return Ok(mobile.sent);
    }
    if deny {
        phone.post_ok("/api/v1/qr/deny", &json!({ "token": token })).await?;
        caused.add(&["qr.denied"]);
        mobile.track(phone, "confirmation.completed", json!({ "action": "deny" }));
        mobile.flush(phone).await?;
        return Ok(mobile.sent);
    }
    let approval = json!({ "token": token, "matchCode": code["matchCode"] });
    let mut answer = phone.call(Method::POST, "/api/v1/qr/approve", Some(&approval)).await?;
    if answer.code() == Some("reauth-required") {
        // Fresh user verification on the phone, then the same approval (as the phone page does).
        sign_in_discoverable(phone, key).await?;
        answer = phone.call(Method::POST, "/api/v1/qr/approve", Some(&approval)).await?;
    }
    answer.ok(&Method::POST, "/api/v1/qr/approve")?;
    caused.add(&["qr.approved"]);
    mobile.track(phone, "confirmation.completed", json!({ "action": "approve", "matchOk": true }));
    mobile.flush(phone).await?;
    if plan == Plan::CallbackLost {
        caused.add(&["qr.expired"]);
        return Ok(mobile.sent);
    }
    // The desktop hears of the approval (its next poll), then redeems with its cookie.
    let qr_id = code["qrId"].as_str().unwrap_or_default();
    let heard = desktop.call(Method::GET, &format!("/api/v1/qr/{qr_id}"), None).await?;
    if heard.body["state"] != "approved" {
        return Err(SimError::Other(format!("the desktop waited for the approval and saw {}", heard.body)));
    }
    desk.track(desktop, "desktop.callback_received", json!({ "via": "poll" }));
    desktop.post_ok(&format!("/api/v1/qr/{qr_id}/redeem"), &json!({})).await?;
    caused.add(&["qr.redeemed", "session.established"]);
    desk.flush(desktop).await?;
    desktop.call(Method::DELETE, "/api/v1/session", None).await?;
    Ok(mobile.sent)
}
