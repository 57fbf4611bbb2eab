//! The simulated people and how they sign up. Everyone creates their account on their
//! phone (so the phone is signed in and holds a passkey, the case Handoff exists for); a
//! share of them later adds a passkey on their desktop too, the way the passkey-append
//! offer leads people to: they sign in on the desktop with the phone (cross-device) and
//! register the desktop's own passkey, then sign out. A few "stranger" phones, signed in
//! as other accounts, are what scans a code by mistake in wrong-account journeys.

use serde_json::{Value, json};

use crate::SoftKey;
use crate::browser::{Browser, Recorder, SimError, Target};
use crate::population::{self, DESKTOPS, Device, PHONES};

/// A person with a desktop browser and a phone.
pub struct Person {
    /// Their identifier.
    pub identifier: String,
    /// Their desktop browser.
    pub desktop: Browser,
    /// Their phone's browser (signed in).
    pub phone: Browser,
    /// The passkey on the phone (also what signs in the cross-device flow).
    pub phone_key: SoftKey,
    /// The passkey on the desktop, when they added one.
    pub desktop_key: Option<SoftKey>,
}

/// A phone signed in as somebody else.
pub struct Stranger {
    /// Its browser (signed in).
    pub phone: Browser,
    /// Its passkey.
    pub key: SoftKey,
}

/// Per mille of desktops whose events never arrive (the SDK is blocked).
pub const SDK_BLOCKED_PER_MILLE: u32 = 30;

/// A random clock error: most devices are right, some are minutes off.
fn skew(rng: &mut fastrand::Rng, share_per_mille: u32) -> i64 {
    if rng.u32(0..1000) < share_per_mille {
        let minutes = rng.i64(1..6) * 60_000;
        if rng.bool() { minutes } else { -minutes }
    } else {
        0
    }
}

/// The `client` environment the SDK reports with `/login/start`.
pub fn environment(device: &Device) -> Value {
    json!({
        "userAgent": device.user_agent,
        "platformAuthenticator": !device.phone || device.os == "iOS" || device.os == "Android",
        "conditionalMediation": device.browser != "Firefox",
        "capabilities": { "hybridTransport": device.hybrid },
    })
}

/// Registers a passkey from `browser` for `identifier` with `key`.
async fn register(browser: &Browser, key: &mut SoftKey, identifier: &str) -> Result<(), SimError> {
    let start = browser.post_ok("/api/v1/passkeys/registration/start", &json!({ "identifier": identifier })).await?;
    let credential = key.create(&start["publicKey"]).await?;
    browser
        .post_ok(
            "/api/v1/passkeys/registration/finish",
            &json!({ "ceremonyId": start["ceremonyId"], "credential": credential }),
        )
        .await?;
    Ok(())
}

/// The events the page records around a passkey sign-in that just works (the SDK's, so
/// the journey knows the device).
async fn record_sign_in(browser: &Browser, start: &Value, flow: &'static str) -> Result<(), SimError> {
    let Some(journey) = start["journeyId"].as_str() else { return Ok(()) };
    let mut page = Recorder::new(journey, Some(flow));
    page.track(browser, "ceremony.started", json!({ "mediation": "optional" }));
    page.track(browser, "webauthn.completed", json!({ "elapsedMs": 2_500 }));
    page.flush(browser).await
}

/// A discoverable passkey sign-in on `browser` (the phone confirming it is still its owner).
pub async fn sign_in_discoverable(browser: &Browser, key: &mut SoftKey) -> Result<(), SimError> {
    let start = browser.post_ok("/api/v1/login/start", &json!({ "client": environment(&browser.device) })).await?;
    let assertion = key.get(&start["publicKey"]).await?;
    record_sign_in(browser, &start, "passkey-local").await?;
    browser
        .post_ok("/api/v1/login/finish", &json!({ "ceremonyId": start["ceremonyId"], "credential": assertion }))
        .await?;
    Ok(())
}

impl Person {
    /// Signs a new person up: account and passkey on the phone; with `desktop_share`
    /// per mille, also a passkey on the desktop (when it can reach the phone to sign in).
    pub async fn sign_up(
        target: &Target,
        rng: &mut fastrand::Rng,
        identifier: String,
        desktop_share: u32,
    ) -> Result<Self, SimError> {
        let desktop_device = population::pick(rng, DESKTOPS);
        let phone_device = population::pick(rng, PHONES);
        let mut desktop = Browser::new(target, desktop_device, skew(rng, 50))?;
        // Some desktops run a content blocker that stops the SDK's event requests.
        desktop.sdk_blocked = rng.u32(0..1000) < SDK_BLOCKED_PER_MILLE;
        let phone = Browser::new(target, phone_device, skew(rng, 100))?;
        let mut phone_key = SoftKey::with_aaguid(&target.origin, population::provider_of(&phone_device));
        register(&phone, &mut phone_key, &identifier).await?;
        let mut person = Self { identifier, desktop, phone, phone_key, desktop_key: None };
        if desktop_device.hybrid && rng.u32(0..1000) < desktop_share {
            person.add_desktop_passkey().await?;
        }
        Ok(person)
    }

    /// Signs in on the desktop with the phone, registers the desktop's own passkey, signs out.
    async fn add_desktop_passkey(&mut self) -> Result<(), SimError> {
        let start = self
            .desktop
            .post_ok(
                "/api/v1/login/start",
                &json!({ "identifier": self.identifier, "client": environment(&self.desktop.device) }),
            )
            .await?;
        if start["ceremonyId"].is_null() {
            return Ok(());
        }
        let assertion = self.phone_key.get(&start["publicKey"]).await?;
        record_sign_in(&self.desktop, &start, "cross-device").await?;
        self.desktop
            .post_ok("/api/v1/login/finish", &json!({ "ceremonyId": start["ceremonyId"], "credential": assertion }))
            .await?;
        let mut key = SoftKey::with_aaguid(self.desktop.origin(), population::provider_of(&self.desktop.device));
        register(&self.desktop, &mut key, &self.identifier).await?;
        self.desktop.call(reqwest::Method::DELETE, "/api/v1/session", None).await?;
        self.desktop_key = Some(key);
        Ok(())
    }
}

impl Stranger {
    /// A phone signed in as a new account `identifier`.
    pub async fn sign_up(target: &Target, rng: &mut fastrand::Rng, identifier: &str) -> Result<Self, SimError> {
        let device = population::pick(rng, PHONES);
        let phone = Browser::new(target, device, 0)?;
        let mut key = SoftKey::with_aaguid(&target.origin, population::provider_of(&device));
        register(&phone, &mut key, identifier).await?;
        Ok(Self { phone, key })
    }
}
