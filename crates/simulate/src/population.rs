//! Who the simulated people are and how they behave: the devices (desktops on Windows,
//! macOS and Linux; iPhones and Android phones; Chrome, Safari, Edge and Firefox) in
//! realistic shares, where each person's passkey lives, and, per flow and segment, how
//! often an attempt succeeds and how it fails. The failure rates come from published
//! figures (cross-device completion around 60–78 % on Windows and 66–86 % on macOS; on
//! Android about 44 % of failures are cancels, 32 % credential-not-found and 17 %
//! connection problems) and are written as data here so they are easy to read and to
//! change. One failure mode is planted on purpose so the insights have something real to
//! find: Linux desktops in the cross-device flow lose their phone's Bluetooth connection
//! far more often than anyone else.

use serde::Serialize;

/// A browser on a device, as the server will see it (its User-Agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    /// Operating system, as the server's parser names it.
    pub os: &'static str,
    /// Browser, as the server's parser names it.
    pub browser: &'static str,
    /// The User-Agent header it sends.
    pub user_agent: &'static str,
    /// Whether it can reach a phone over the cross-device (hybrid) flow.
    pub hybrid: bool,
    /// A phone (rather than a desktop).
    pub phone: bool,
}

impl Device {
    /// `{os, browser}` for the ground truth.
    pub fn segment(&self) -> SegmentTruth {
        SegmentTruth { os: self.os, browser: self.browser }
    }
}

/// A device's segment in the ground truth.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SegmentTruth {
    /// Operating system.
    pub os: &'static str,
    /// Browser.
    pub browser: &'static str,
}

const fn desktop(os: &'static str, browser: &'static str, user_agent: &'static str, hybrid: bool) -> Device {
    Device { os, browser, user_agent, hybrid, phone: false }
}

const fn phone(os: &'static str, browser: &'static str, user_agent: &'static str) -> Device {
    Device { os, browser, user_agent, hybrid: true, phone: true }
}

/// Desktops and their share of desktop traffic (per mille).
pub const DESKTOPS: &[(Device, u32)] = &[
    (
        desktop(
            "Windows",
            "Chrome",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            true,
        ),
        330,
    ),
    (
        desktop(
            "Windows",
            "Edge",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            true,
        ),
        140,
    ),
    (
        desktop(
            "Windows",
            "Firefox",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            true,
        ),
        70,
    ),
    (
        desktop(
            "macOS",
            "Safari",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            true,
        ),
        170,
    ),
    (
        desktop(
            "macOS",
            "Chrome",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            true,
        ),
        130,
    ),
    (
        desktop(
            "Linux",
            "Chrome",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            true,
        ),
        90,
    ),
    // Firefox on Linux has no cross-device (hybrid) transport: those people get QR approval.
    (desktop("Linux", "Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", false), 70),
];

/// Phones and their share (per mille).
pub const PHONES: &[(Device, u32)] = &[
    (
        phone(
            "iOS",
            "Safari",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        ),
        550,
    ),
    (
        phone(
            "Android",
            "Chrome",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        ),
        450,
    ),
];

/// AAGUIDs of the providers the simulated passkeys come from (named in Handoff's table).
pub mod aaguid {
    /// iCloud Keychain (Apple Passwords).
    pub const ICLOUD_KEYCHAIN: [u8; 16] =
        [0xfb, 0xfc, 0x30, 0x07, 0x15, 0x4e, 0x4e, 0xcc, 0x8c, 0x0b, 0x6e, 0x02, 0x05, 0x57, 0xd7, 0xbd];
    /// Google Password Manager.
    pub const GOOGLE_PASSWORD_MANAGER: [u8; 16] =
        [0xea, 0x9b, 0x8d, 0x66, 0x4d, 0x01, 0x1d, 0x21, 0x3c, 0xe4, 0xb6, 0xb4, 0x8c, 0xb5, 0x75, 0xd4];
    /// Windows Hello.
    pub const WINDOWS_HELLO: [u8; 16] =
        [0x08, 0x98, 0x70, 0x58, 0xca, 0xdc, 0x4b, 0x81, 0xb6, 0xe1, 0x30, 0xde, 0x50, 0xdc, 0xbe, 0x96];
    /// 1Password.
    pub const ONE_PASSWORD: [u8; 16] = crate::softkey::ONE_PASSWORD_AAGUID;
}

/// The AAGUID a passkey made on this device would carry.
pub fn provider_of(device: &Device) -> [u8; 16] {
    match (device.os, device.browser) {
        ("iOS" | "macOS", "Safari") => aaguid::ICLOUD_KEYCHAIN,
        ("Android", _) | (_, "Chrome") => aaguid::GOOGLE_PASSWORD_MANAGER,
        ("Windows", _) => aaguid::WINDOWS_HELLO,
        _ => aaguid::ONE_PASSWORD,
    }
}

/// Picks from a weighted table.
pub fn pick<T: Copy>(rng: &mut fastrand::Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| *w).sum();
    let mut roll = rng.u32(0..total.max(1));
    for (item, weight) in table {
        if roll < *weight {
            return *item;
        }
        roll -= weight;
    }
    table[table.len() - 1].0
}

/// What the simulated person does in one attempt: succeed, or one planted way of failing.
/// Each failure has exactly one root cause of PRODUCT.md §4.3 (its code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Signs in.
    Success,
    /// Leaves at the explanation before any ceremony or QR code (`abandoned-early`).
    LeavesEarly,
    /// Cancels the browser's passkey prompt after a few seconds (`user-cancelled`).
    Cancels,
    /// The prompt fails at once: no passkey for this site there (`no-credential`).
    NoCredential,
    /// The phone never connects over Bluetooth; the prompt times out (`proximity-or-connection`).
    LosesConnection,
    /// The assertion does not verify on the server (`server-verification`).
    BadSignature,
    /// The page runs on an origin the server does not allow, or the browser refuses the
    /// RP ID (`configuration`).
    Misconfigured,
    /// Nobody scans the QR code before it expires (`scan-failure`).
    NeverScans,
    /// The code is scanned but the phone page never loads (`handoff-failure`).
    PageNeverOpens,
    /// The phone that scans is signed in as someone else (`wrong-account`).
    WrongAccount,
    /// The phone shows the confirmation; nobody answers (`confirmation-dropoff`).
    LeavesConfirmation,
    /// The phone approves; the desktop never hears of it (`callback-failure`).
    CallbackLost,
    /// The phone denies (`user-cancelled`).
    Denies,
    /// Picks the site's other sign-in method (not scored: its end is outside Handoff).
    ChoosesFallback,
}

impl Plan {
    /// The root cause this plan plants (`success` when it signs in; `None` when the
    /// outcome is outside what Handoff sees).
    pub fn planted(self) -> Option<&'static str> {
        Some(match self {
            Self::Success => "success",
            Self::LeavesEarly => "abandoned-early",
            Self::Cancels | Self::Denies => "user-cancelled",
            Self::NoCredential => "no-credential",
            Self::LosesConnection => "proximity-or-connection",
            Self::BadSignature => "server-verification",
            Self::Misconfigured => "configuration",
            Self::NeverScans => "scan-failure",
            Self::PageNeverOpens => "handoff-failure",
            Self::WrongAccount => "wrong-account",
            Self::LeavesConfirmation => "confirmation-dropoff",
            Self::CallbackLost => "callback-failure",
            Self::ChoosesFallback => return None,
        })
    }
}

/// Per mille of attempts that succeed in a flow for this desktop.
fn success_rate(flow: &str, desktop: &Device) -> u32 {
    match (flow, desktop.os) {
        // Published: 60–78 % on Windows, 66–86 % on macOS; Linux is where the planted
        // Bluetooth problem sits.
        ("cross-device", "Windows") => 700,
        ("cross-device", "macOS") => 780,
        ("cross-device", _) => 520,
        ("passkey-local", _) => 920,
        ("qr-approval", _) => 800,
        _ => 0,
    }
}

/// How an attempt in this flow fails, by weight, for this desktop and phone.
fn failure_mix(flow: &str, desktop: &Device, phone: &Device) -> Vec<(Plan, u32)> {
    match flow {
        "cross-device" => {
            // Android: ~44 % cancels, 32 % credential not found, 17 % connection, 7 % other.
            let (cancel, missing, connection, other) =
                if phone.os == "Android" { (44, 32, 17, 7) } else { (50, 20, 20, 10) };
            // The planted failure mode: Linux desktops lose the phone's connection.
            let connection = if desktop.os == "Linux" { connection * 4 } else { connection };
            vec![
                (Plan::LeavesEarly, 6),
                (Plan::Cancels, cancel),
                (Plan::NoCredential, missing),
                (Plan::LosesConnection, connection),
                (Plan::BadSignature, other / 2),
                (Plan::Misconfigured, other - other / 2),
            ]
        }
        "passkey-local" => vec![
            (Plan::LeavesEarly, 5),
            (Plan::Cancels, 55),
            (Plan::NoCredential, 25),
            (Plan::BadSignature, 8),
            (Plan::Misconfigured, 7),
        ],
        _ => vec![
            (Plan::LeavesEarly, 5),
            (Plan::NeverScans, 25),
            (Plan::PageNeverOpens, 8),
            (Plan::WrongAccount, 10),
            (Plan::LeavesConfirmation, 22),
            (Plan::CallbackLost, 10),
            (Plan::Denies, 20),
        ],
    }
}

/// What this person does in an attempt of `flow` (the flow the server chose). The failure
/// rate is the published one times `failure_boost` (1 for realistic traffic; more when a
/// test needs many failures from few attempts).
pub fn plan(rng: &mut fastrand::Rng, flow: &str, desktop: &Device, phone: &Device, failure_boost: u32) -> Plan {
    if flow == "fallback" {
        return Plan::ChoosesFallback;
    }
    let failures = (1000 - success_rate(flow, desktop)).saturating_mul(failure_boost.max(1)).min(1000);
    if rng.u32(0..1000) >= failures {
        return Plan::Success;
    }
    pick(rng, &failure_mix(flow, desktop, phone))
}

/// How long a step takes a person, in milliseconds (what the SDK would report). The bands
/// overlap the way real ones do, so timing alone cannot always tell causes apart: some
/// people dismiss the prompt within a second (which looks like no passkey there), and some
/// give up while the phone is still trying to connect (which looks like a cancel).
pub mod timing {
    /// Reading the explanation and starting the ceremony.
    pub fn ceremony_start(rng: &mut fastrand::Rng) -> i64 {
        rng.i64(400..2_500)
    }

    /// A completed ceremony: a local one is quick, the cross-device one needs the phone.
    pub fn completed(rng: &mut fastrand::Rng, cross_device: bool) -> i64 {
        if cross_device { rng.i64(8_000..28_000) } else { rng.i64(1_200..6_000) }
    }

    /// A prompt cancelled by the person: a few seconds in; 6 % dismiss it at once.
    pub fn cancelled(rng: &mut fastrand::Rng) -> i64 {
        if rng.u32(0..100) < 6 { rng.i64(400..1_000) } else { rng.i64(2_000..20_000) }
    }

    /// A prompt that fails at once (no passkey there).
    pub fn immediate(rng: &mut fastrand::Rng) -> i64 {
        rng.i64(80..800)
    }

    /// A cross-device prompt that times out waiting for the phone; 12 % of people give up
    /// before it does.
    pub fn timed_out(rng: &mut fastrand::Rng) -> i64 {
        if rng.u32(0..100) < 12 { rng.i64(15_000..30_000) } else { rng.i64(45_000..120_000) }
    }
}
