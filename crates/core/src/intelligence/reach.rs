//! Where a passkey can be used from the current client: here, maybe here (a sync
//! ecosystem or a password-manager extension that may or may not be present), on a phone
//! reachable by the cross-device flow, or only elsewhere. Each answer carries the reason
//! code that the decision will show.

use super::signals::{ClientSignals, CredentialFacts};
use crate::device::FormFactor;
use crate::provider::Ecosystem;

/// How a passkey can be reached from the current client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Usable on this device, with the reason code.
    Here(&'static str),
    /// Probably usable here (synced, or a manager's extension), with the reason code.
    Maybe(&'static str),
    /// On a phone or tablet: reachable with the cross-device flow.
    Phone(&'static str),
    /// Usable only on another device, with the reason code.
    Elsewhere(&'static str),
}

fn is_apple_os(os: &str) -> bool {
    matches!(os, "macOS" | "iOS" | "iPadOS")
}

fn is_mobile(ff: FormFactor) -> bool {
    matches!(ff, FormFactor::Phone | FormFactor::Tablet)
}

/// Classifies one passkey for the current client.
pub fn reach(c: &CredentialFacts, client: &ClientSignals) -> Reach {
    let this_browser = client.device_id.as_ref();
    if this_browser.is_some() && c.created_device_id.as_ref() == this_browser {
        return Reach::Here("created-in-this-browser");
    }
    let base = reach_by_ecosystem(c, client);
    // A passkey on a phone that this browser used before was used *through* the phone:
    // the hints below say "this browser can use it", not "it is here".
    if matches!(base, Reach::Phone(_)) {
        return base;
    }
    if client.last_credential_id.as_ref() == Some(&c.credential_id) {
        return Reach::Here("used-in-this-browser");
    }
    if this_browser.is_some() && c.last_used_device_id.as_ref() == this_browser {
        return Reach::Here("last-used-in-this-browser");
    }
    base
}

fn reach_by_ecosystem(c: &CredentialFacts, client: &ClientSignals) -> Reach {
    let here = &client.device;
    let made_on_mobile = is_mobile(c.created_on.form_factor);
    let client_is_mobile = is_mobile(here.form_factor);
    let phone = || {
        if made_on_mobile && !client_is_mobile {
            Reach::Phone("passkey-on-phone")
        } else {
            Reach::Elsewhere("not-synced-here")
        }
    };
    match c.ecosystem {
        Ecosystem::Apple if is_apple_os(&here.os) && c.backup_state => Reach::Here("synced-icloud-keychain"),
        Ecosystem::Apple if is_apple_os(&here.os) => Reach::Maybe("icloud-keychain-not-backed-up"),
        Ecosystem::Google if here.os == "Android" => Reach::Here("synced-google-password-manager"),
        Ecosystem::Google if here.browser == "Chrome" && c.backup_state => {
            Reach::Maybe("google-password-manager-in-chrome")
        }
        Ecosystem::WindowsHello => Reach::Elsewhere("bound-to-another-pc"),
        Ecosystem::ChromeProfile => Reach::Elsewhere("bound-to-another-browser-profile"),
        Ecosystem::Samsung if here.os == "Android" => Reach::Maybe("samsung-pass-on-android"),
        Ecosystem::PasswordManager => Reach::Maybe("password-manager-extension"),
        Ecosystem::Apple | Ecosystem::Google | Ecosystem::Samsung => phone(),
        Ecosystem::Unknown => {
            let same_kind = c.created_on.os == here.os
                && c.created_on.browser == here.browser
                && c.created_on.form_factor == here.form_factor
                && here.os != "unknown";
            let security_key = !c.has_transport("internal")
                && !c.has_transport("hybrid")
                && ["usb", "nfc", "ble"].iter().any(|t| c.has_transport(t));
            if security_key {
                Reach::Maybe("security-key")
            } else if made_on_mobile && !client_is_mobile {
                Reach::Phone("passkey-on-phone")
            } else if same_kind && c.backup_state {
                Reach::Maybe("synced-same-kind-of-device")
            } else if c.has_transport("hybrid") && !client_is_mobile {
                Reach::Phone("passkey-reachable-by-hybrid")
            } else {
                Reach::Elsewhere("made-on-another-device")
            }
        }
    }
}
