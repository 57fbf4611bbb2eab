//! Rules an operator sets in configuration.

use std::time::Duration;

use crate::device::DeviceInfo;

/// Gradual rollout of the cross-device flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Share of users (by a stable hash of the identifier), 0–100.
    pub percent: u8,
    /// Only these operating systems (empty: all).
    pub os: Vec<String>,
    /// Only these browsers (empty: all).
    pub browsers: Vec<String>,
}

impl Default for Rollout {
    fn default() -> Self {
        Self { percent: 100, os: Vec::new(), browsers: Vec::new() }
    }
}

impl Rollout {
    /// True when this user on this device is inside the rollout. `bucket` is 0–99.
    pub fn includes(&self, bucket: u8, device: &DeviceInfo) -> bool {
        let listed =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v.eq_ignore_ascii_case(value));
        bucket < self.percent && listed(&self.os, &device.os) && listed(&self.browsers, &device.browser)
    }
}

/// Operator rules for decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRules {
    /// Offer the browser's cross-device (hybrid) flow at all.
    pub cross_device_enabled: bool,
    /// Offer Handoff QR approval (when that flow is available).
    pub qr_approval_enabled: bool,
    /// Only passkeys from these providers are offered (empty: all).
    pub allowed_providers: Vec<String>,
    /// Passkeys from these providers are never offered.
    pub blocked_providers: Vec<String>,
    /// Failed passkey attempts in one browser before falling back.
    pub failures_before_fallback: u32,
    /// How long the fallback lasts after the last failure.
    pub failure_cooldown: Duration,
    /// Who gets the cross-device flow.
    pub cross_device_rollout: Rollout,
}

impl Default for DecisionRules {
    fn default() -> Self {
        Self {
            cross_device_enabled: true,
            qr_approval_enabled: false,
            allowed_providers: Vec::new(),
            blocked_providers: Vec::new(),
            failures_before_fallback: 2,
            failure_cooldown: Duration::from_secs(15 * 60),
            cross_device_rollout: Rollout::default(),
        }
    }
}

impl DecisionRules {
    /// True when passkeys of this provider may be offered.
    pub fn provider_allowed(&self, provider: &str) -> bool {
        let named = |list: &[String]| list.iter().any(|p| p.eq_ignore_ascii_case(provider));
        !named(&self.blocked_providers) && (self.allowed_providers.is_empty() || named(&self.allowed_providers))
    }
}
