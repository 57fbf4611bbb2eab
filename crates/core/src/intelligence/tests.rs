//! The decision scenarios of issue #3, each asserting the verdict and its key reasons.

use std::time::Duration;

use super::*;
use crate::decision::Verdict;
use crate::device::{DeviceInfo, FormFactor};
use crate::domain::CredentialId;
use crate::provider::Ecosystem;

fn device(os: &str, browser: &str, ff: FormFactor) -> DeviceInfo {
    DeviceInfo { os: os.into(), browser: browser.into(), form_factor: ff }
}

fn windows_chrome() -> DeviceInfo {
    device("Windows", "Chrome", FormFactor::Desktop)
}
fn mac_safari() -> DeviceInfo {
    device("macOS", "Safari", FormFactor::Desktop)
}
fn iphone() -> DeviceInfo {
    device("iOS", "Safari", FormFactor::Phone)
}
fn android() -> DeviceInfo {
    device("Android", "Chrome", FormFactor::Phone)
}

fn cred(n: u8, provider: &str, eco: Ecosystem, made_on: DeviceInfo, transports: &[&str], bs: bool) -> CredentialFacts {
    CredentialFacts {
        credential_id: CredentialId::from_bytes(vec![n; 16]),
        provider: provider.into(),
        ecosystem: eco,
        transports: transports.iter().map(|t| (*t).to_owned()).collect(),
        attachment: Some("platform".into()),
        backup_eligible: bs,
        backup_state: bs,
        created_on: made_on,
        created_device_id: Some(format!("device-{n}")),
        last_used_on: None,
        last_used_device_id: None,
    }
}

fn client(d: DeviceInfo) -> ClientSignals {
    ClientSignals { device: d, ..ClientSignals::unknown() }
}

fn with_hybrid(mut c: ClientSignals, hybrid: Option<bool>) -> ClientSignals {
    c.hybrid_transport = hybrid;
    c
}

fn run(creds: &[CredentialFacts], c: &ClientSignals) -> Outcome {
    decide("user@example.com", creds, c, FailureHistory::default(), &DecisionRules::default(), 1_000_000)
}

fn codes(o: &Outcome) -> Vec<&str> {
    o.decision.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn icloud_from_iphone() -> CredentialFacts {
    cred(1, "iCloud Keychain", Ecosystem::Apple, iphone(), &["hybrid", "internal"], true)
}

#[test]
fn windows_chrome_with_an_iphone_passkey_goes_cross_device() {
    let o = run(&[icloud_from_iphone()], &with_hybrid(client(windows_chrome()), Some(true)));
    assert_eq!(o.decision.verdict, Verdict::CrossDevice);
    assert!(codes(&o).contains(&"passkey-on-phone") && codes(&o).contains(&"hybrid-available"), "{:?}", codes(&o));
    assert_eq!(o.hints, vec!["hybrid"]);
    assert_eq!(o.allow.len(), 1);
    assert!(o.allow[0].transports.contains(&"hybrid".to_owned()));
}

#[test]
fn unknown_hybrid_capability_still_tries_cross_device_with_less_confidence() {
    let o = run(&[icloud_from_iphone()], &client(windows_chrome()));
    assert_eq!(o.decision.verdict, Verdict::CrossDevice);
    assert!(codes(&o).contains(&"hybrid-unknown"));
    assert!(o.decision.confidence < 0.75);
}

#[test]
fn mac_safari_with_icloud_keychain_is_local() {
    let o = run(&[icloud_from_iphone()], &client(mac_safari()));
    assert_eq!(o.decision.verdict, Verdict::Local);
    assert!(codes(&o).contains(&"synced-icloud-keychain"), "{:?}", codes(&o));
    assert_eq!(o.hints, vec!["client-device"]);
}

#[test]
fn chrome_desktop_with_an_android_google_passkey_tries_once_with_a_sync_reason() {
    let gpm = cred(2, "Google Password Manager", Ecosystem::Google, android(), &["hybrid", "internal"], true);
    let o = run(&[gpm], &with_hybrid(client(windows_chrome()), Some(true)));
    assert!(matches!(o.decision.verdict, Verdict::TryOnce | Verdict::Local), "{:?}", o.decision.verdict);
    assert!(codes(&o).contains(&"google-password-manager-in-chrome"), "{:?}", codes(&o));
    assert_eq!(o.decision.retry.then, Verdict::CrossDevice, "a failed try moves on to the phone");
}

#[test]
fn windows_hello_passkey_on_a_mac_is_not_local() {
    let hello = cred(3, "Windows Hello", Ecosystem::WindowsHello, windows_chrome(), &["internal"], false);
    let o = run(&[hello], &client(mac_safari()));
    assert_ne!(o.decision.verdict, Verdict::Local);
    assert_eq!(o.decision.verdict, Verdict::Fallback);
    assert!(codes(&o).contains(&"bound-to-another-pc"), "{:?}", codes(&o));
}

#[test]
fn the_same_windows_hello_passkey_is_local_in_the_browser_that_made_it() {
    let hello = cred(3, "Windows Hello", Ecosystem::WindowsHello, windows_chrome(), &["internal"], false);
    let mut c = client(windows_chrome());
    c.device_id = Some("device-3".into());
    let o = run(&[hello], &c);
    assert_eq!(o.decision.verdict, Verdict::Local);
    assert!(codes(&o).contains(&"created-in-this-browser"));
}

#[test]
fn a_desktop_without_hybrid_never_gets_cross_device() {
    let o = run(&[icloud_from_iphone()], &with_hybrid(client(windows_chrome()), Some(false)));
    assert_ne!(o.decision.verdict, Verdict::CrossDevice);
    assert!(codes(&o).contains(&"no-hybrid-transport"), "{:?}", codes(&o));
    assert!(o.allow.is_empty());
}

#[test]
fn two_recent_failures_fall_back_until_the_cooldown_ends() {
    let rules = DecisionRules::default();
    let failures = FailureHistory { recent_failures: 2, last_failure_at: Some(1_000_000) };
    let c = client(mac_safari());
    let during = decide("u", &[icloud_from_iphone()], &c, failures, &rules, 1_000_000 + 60_000);
    assert_eq!(during.decision.verdict, Verdict::Fallback);
    assert!(codes(&during).contains(&"recent-failures"));
    let cooldown = i64::try_from(rules.failure_cooldown.as_millis()).unwrap();
    let after = decide("u", &[icloud_from_iphone()], &c, failures, &rules, 1_000_000 + cooldown + 1);
    assert_eq!(after.decision.verdict, Verdict::Local);
    let one = FailureHistory { recent_failures: 1, last_failure_at: Some(1_000_000) };
    assert_eq!(decide("u", &[icloud_from_iphone()], &c, one, &rules, 1_000_001).decision.verdict, Verdict::Local);
}

#[test]
fn a_blocked_provider_is_not_offered() {
    let rules = DecisionRules { blocked_providers: vec!["icloud keychain".into()], ..DecisionRules::default() };
    let other = cred(4, "1Password", Ecosystem::PasswordManager, windows_chrome(), &["internal"], true);
    let o = decide("u", &[icloud_from_iphone(), other], &client(mac_safari()), FailureHistory::default(), &rules, 0);
    assert!(codes(&o).contains(&"provider-blocked"));
    assert!(
        o.allow.iter().all(|a| a.id != icloud_from_iphone().credential_id),
        "blocked passkey not in allowCredentials"
    );
    assert_eq!(o.decision.verdict, Verdict::TryOnce, "the 1Password passkey is tried instead");
    let only_blocked =
        decide("u", &[icloud_from_iphone()], &client(mac_safari()), FailureHistory::default(), &rules, 0);
    assert_eq!(only_blocked.decision.verdict, Verdict::Fallback);
    let allow_list = DecisionRules { allowed_providers: vec!["1Password".into()], ..DecisionRules::default() };
    assert!(!allow_list.provider_allowed("iCloud Keychain") && allow_list.provider_allowed("1password"));
}

#[test]
fn no_passkeys_falls_back() {
    let o = run(&[], &client(windows_chrome()));
    assert_eq!(o.decision.verdict, Verdict::Fallback);
    assert_eq!(codes(&o), vec!["no-passkeys"]);
    assert!(!o.runs_ceremony());
}

#[test]
fn the_last_used_hint_means_local_unless_the_passkey_lives_on_a_phone() {
    let mut c = client(mac_safari());
    c.last_credential_id = Some(icloud_from_iphone().credential_id);
    let o = run(&[icloud_from_iphone()], &c);
    assert_eq!(o.decision.verdict, Verdict::Local);
    assert_eq!(codes(&o)[0], "used-in-this-browser");
    let mut on_linux = client(device("Linux", "Firefox", FormFactor::Desktop));
    let synced =
        cred(5, "unknown", Ecosystem::Unknown, device("Linux", "Firefox", FormFactor::Desktop), &["internal"], false);
    on_linux.last_credential_id = Some(synced.credential_id.clone());
    assert_eq!(run(&[synced], &on_linux).decision.verdict, Verdict::Local);
    // Used from this Windows browser through the phone: still the phone next time.
    let mut w = with_hybrid(client(windows_chrome()), Some(true));
    w.last_credential_id = Some(icloud_from_iphone().credential_id);
    w.device_id = Some("browser-w".into());
    let mut used = icloud_from_iphone();
    used.last_used_device_id = Some("browser-w".into());
    assert_eq!(run(&[used], &w).decision.verdict, Verdict::CrossDevice);
}

#[test]
fn operator_can_turn_cross_device_off_or_roll_it_out_gradually() {
    let off = DecisionRules { cross_device_enabled: false, ..DecisionRules::default() };
    let c = with_hybrid(client(windows_chrome()), Some(true));
    let o = decide("u", &[icloud_from_iphone()], &c, FailureHistory::default(), &off, 0);
    assert_eq!(o.decision.verdict, Verdict::Fallback);
    assert!(codes(&o).contains(&"cross-device-disabled"));
    let none = DecisionRules {
        cross_device_rollout: Rollout { percent: 0, ..Rollout::default() },
        ..DecisionRules::default()
    };
    let o = decide("u", &[icloud_from_iphone()], &c, FailureHistory::default(), &none, 0);
    assert!(codes(&o).contains(&"cross-device-not-rolled-out"));
    let mac_only = DecisionRules {
        cross_device_rollout: Rollout { os: vec!["macOS".into()], ..Rollout::default() },
        ..DecisionRules::default()
    };
    let o = decide("u", &[icloud_from_iphone()], &c, FailureHistory::default(), &mac_only, 0);
    assert_eq!(o.decision.verdict, Verdict::Fallback, "Windows is outside a macOS-only rollout");
    // Half the users: the bucket is stable per identifier.
    let half = Rollout { percent: 50, ..Rollout::default() };
    let inside =
        (0..200).filter(|i| half.includes(engine::rollout_bucket(&format!("user{i}")), &windows_chrome())).count();
    assert!((70..130).contains(&inside), "about half of 200 users: {inside}");
    assert_eq!(engine::rollout_bucket("alice"), engine::rollout_bucket("alice"));
}

#[test]
fn qr_approval_is_the_fallback_when_enabled() {
    let rules = DecisionRules { qr_approval_enabled: true, ..DecisionRules::default() };
    let c = with_hybrid(client(windows_chrome()), Some(false));
    let o = decide("u", &[icloud_from_iphone()], &c, FailureHistory::default(), &rules, 0);
    assert_eq!(o.decision.verdict, Verdict::QrApproval);
    assert_eq!(o.decision.alternatives.iter().map(|a| a.verdict).collect::<Vec<_>>(), vec![Verdict::Fallback]);
}

#[test]
fn failure_cooldown_is_configurable() {
    let rules = DecisionRules {
        failures_before_fallback: 3,
        failure_cooldown: Duration::from_secs(60),
        ..DecisionRules::default()
    };
    let two = FailureHistory { recent_failures: 2, last_failure_at: Some(0) };
    assert_eq!(
        decide("u", &[icloud_from_iphone()], &client(mac_safari()), two, &rules, 1).decision.verdict,
        Verdict::Local
    );
}

#[test]
fn after_a_failed_try_the_page_can_ask_for_the_phone() {
    let gpm = cred(2, "Google Password Manager", Ecosystem::Google, android(), &["internal"], true);
    let mut c = with_hybrid(client(windows_chrome()), Some(true));
    c.requested = Some(Verdict::CrossDevice);
    let o = run(std::slice::from_ref(&gpm), &c);
    assert_eq!(o.decision.verdict, Verdict::CrossDevice);
    assert!(codes(&o).contains(&"requested-by-client"));
    assert_eq!(o.allow[0].transports, vec!["internal".to_owned(), "hybrid".to_owned()]);
    // A request cannot bypass the failure cooldown or a missing hybrid transport.
    c.hybrid_transport = Some(false);
    assert_ne!(run(&[gpm], &c).decision.verdict, Verdict::CrossDevice);
}
