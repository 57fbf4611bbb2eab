//! Insights: where a segment's sign-ins differ from the rest of its flow, said as a person
//! would say it, with the numbers behind it. Each candidate is a segment (e.g. the desktop
//! OS `Android`) within a flow, compared with every other journey of that flow by a
//! two-proportion z-test on the success rate; it is reported only when both sides have at
//! least [`MIN_SAMPLE`] finished journeys and the two-sided p-value is below
//! [`MAX_P_VALUE`] (after a Bonferroni correction for the number of comparisons), so small
//! samples never make a headline. The strongest (largest |z|) come first. A second kind
//! compares a segment's recent success rate with its own earlier baseline.

use std::collections::BTreeMap;

use serde::Serialize;

use super::diagnosis::{CauseClass, cause};
use crate::storage::OutcomeCount;

/// Fewest finished journeys on each side of a comparison.
pub const MIN_SAMPLE: u64 = 30;
/// Largest p-value (after correction) that makes an insight.
pub const MAX_P_VALUE: f64 = 0.01;

/// One ranked statement.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Insight {
    /// A sentence for people.
    pub statement: String,
    /// The segment, e.g. `os=Android, flow=cross-device`.
    pub segment: String,
    /// What is compared: `success-rate` or `success-rate-vs-baseline`.
    pub metric: String,
    /// The segment's value of the metric (0–1).
    pub value: f64,
    /// The rest of the flow's value, or the segment's own earlier value (0–1).
    pub baseline: f64,
    /// Finished journeys in the segment.
    pub n: u64,
    /// Two-sided p-value of the difference (Bonferroni-corrected).
    pub significance: f64,
    /// The z statistic (sign: segment above or below the baseline).
    pub z: f64,
}

/// Success and failure counts of one group.
#[derive(Debug, Clone, Default)]
struct Tally {
    journeys: u64,
    successes: u64,
    causes: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, c: &OutcomeCount) {
        self.journeys += c.journeys;
        if c.outcome == "success" {
            self.successes += c.journeys;
        } else if let Some(cause) = &c.root_cause {
            *self.causes.entry(cause.clone()).or_default() += c.journeys;
        }
    }

    fn rate(&self) -> f64 {
        if self.journeys == 0 { 0.0 } else { self.successes as f64 / self.journeys as f64 }
    }

    fn top_cause(&self) -> Option<(&str, u64)> {
        self.causes
            .iter()
            .max_by_key(|(code, n)| (**n, std::cmp::Reverse(code.as_str())))
            .map(|(c, n)| (c.as_str(), *n))
    }
}

/// The complementary error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let r = poly * (-x * x).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Two-proportion z-test: (z, two-sided p).
pub fn two_proportion(s1: u64, n1: u64, s2: u64, n2: u64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let (p1, p2) = (s1 as f64 / n1 as f64, s2 as f64 / n2 as f64);
    let pooled = (s1 + s2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let z = (p1 - p2) / se;
    (z, erfc(z.abs() / std::f64::consts::SQRT_2))
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn consistent_with(code: &str) -> &'static str {
    match code {
        "proximity-or-connection" => "consistent with Bluetooth or proximity trouble",
        "user-cancelled" | "confirmation-dropoff" | "abandoned-early" => "consistent with people giving up",
        "no-credential" => "consistent with no passkey on the device offered",
        "scan-failure" => "consistent with the code not being scanned",
        "handoff-failure" => "consistent with the phone page not opening",
        "callback-failure" => "consistent with the desktop not hearing the approval",
        "wrong-account" => "consistent with the phone signed in to another account",
        "server-verification" | "configuration" => "consistent with a setup problem",
        _ => "",
    }
}

/// Segments whose success rate differs from the rest of their flow.
/// `segment_name` names the dimension (e.g. `os`).
pub fn segment_insights(segment_name: &str, counts: &[OutcomeCount]) -> Vec<Insight> {
    let mut by_flow: BTreeMap<&str, BTreeMap<Option<&str>, Tally>> = BTreeMap::new();
    for c in counts {
        by_flow.entry(c.flow.as_str()).or_default().entry(c.segment.as_deref()).or_default().add(c);
    }
    // Journeys whose segment is unknown (no client event told it: a blocked SDK, a phone
    // that never opened the page) are neither a segment nor part of "everyone else": they
    // differ for that very reason, and would make every known value look different.
    let comparisons: usize = by_flow.values().map(|s| s.keys().filter(|k| k.is_some()).count()).sum::<usize>().max(1);
    let mut out = Vec::new();
    for (flow, segments) in &by_flow {
        let mut total = Tally::default();
        for (_, t) in segments.iter().filter(|(value, _)| value.is_some()) {
            total.journeys += t.journeys;
            total.successes += t.successes;
        }
        for (value, t) in segments {
            let Some(value) = value else { continue };
            let rest = Tally {
                journeys: total.journeys - t.journeys,
                successes: total.successes - t.successes,
                causes: BTreeMap::new(),
            };
            if t.journeys < MIN_SAMPLE || rest.journeys < MIN_SAMPLE {
                continue;
            }
            let (z, p) = two_proportion(t.successes, t.journeys, rest.successes, rest.journeys);
            let p = (p * comparisons as f64).min(1.0);
            if p >= MAX_P_VALUE {
                continue;
            }
            let (rate, base) = (t.rate(), rest.rate());
            let mut statement = format!(
                "{value} users ({segment_name}) in {flow} sign-ins succeed in {} of attempts (n={}), against {} for everyone else (n={})",
                pct(rate),
                t.journeys,
                pct(base),
                rest.journeys
            );
            if rate < base
                && let Some((code, n)) = t.top_cause()
            {
                let share = n as f64 / t.journeys as f64;
                let class = match cause(code).map(|c| c.class) {
                    Some(CauseClass::UserAbandonment) => "abandon",
                    _ => "fail",
                };
                statement.push_str(&format!("; {} {class} with {code}", pct(share)));
                let why = consistent_with(code);
                if !why.is_empty() {
                    statement.push_str(&format!(", {why}"));
                }
            }
            statement.push('.');
            out.push(Insight {
                statement,
                segment: format!("{segment_name}={value}, flow={flow}"),
                metric: "success-rate".into(),
                value: (rate * 10_000.0).round() / 10_000.0,
                baseline: (base * 10_000.0).round() / 10_000.0,
                n: t.journeys,
                significance: p,
                z: (z * 100.0).round() / 100.0,
            });
        }
    }
    out
}

/// Segments whose recent success rate dropped against their own earlier baseline.
pub fn baseline_drops(segment_name: &str, recent: &[OutcomeCount], earlier: &[OutcomeCount]) -> Vec<Insight> {
    let tally = |counts: &[OutcomeCount]| {
        let mut m: BTreeMap<(String, Option<String>), Tally> = BTreeMap::new();
        for c in counts {
            m.entry((c.flow.clone(), c.segment.clone())).or_default().add(c);
        }
        m
    };
    let (now, before) = (tally(recent), tally(earlier));
    let comparisons = now.len().max(1);
    let mut out = Vec::new();
    for ((flow, value), t) in &now {
        let (Some(value), Some(b)) = (value, before.get(&(flow.clone(), value.clone()))) else { continue };
        if t.journeys < MIN_SAMPLE || b.journeys < MIN_SAMPLE {
            continue;
        }
        let (z, p) = two_proportion(t.successes, t.journeys, b.successes, b.journeys);
        let p = (p * comparisons as f64).min(1.0);
        if z >= 0.0 || p >= MAX_P_VALUE {
            continue;
        }
        out.push(Insight {
            statement: format!(
                "{value} users ({segment_name}) in {flow} sign-ins dropped to {} success (n={}) from {} before (n={}).",
                pct(t.rate()),
                t.journeys,
                pct(b.rate()),
                b.journeys
            ),
            segment: format!("{segment_name}={value}, flow={flow}"),
            metric: "success-rate-vs-baseline".into(),
            value: (t.rate() * 10_000.0).round() / 10_000.0,
            baseline: (b.rate() * 10_000.0).round() / 10_000.0,
            n: t.journeys,
            significance: p,
            z: (z * 100.0).round() / 100.0,
        });
    }
    out
}

/// Strongest first.
pub fn rank(mut insights: Vec<Insight>) -> Vec<Insight> {
    insights.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()).then_with(|| a.segment.cmp(&b.segment)));
    insights
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(flow: &str, segment: &str, outcome: &str, cause: Option<&str>, n: u64) -> OutcomeCount {
        OutcomeCount {
            flow: flow.into(),
            segment: Some(segment.into()),
            outcome: outcome.into(),
            root_cause: cause.map(Into::into),
            journeys: n,
        }
    }

    #[test]
    fn the_z_test_matches_a_hand_computation() {
        // 40/100 vs 60/100: pooled 0.5, se = sqrt(0.25 * 0.02) = 0.0707107, z = -2.828427.
        let (z, p) = two_proportion(40, 100, 60, 100);
        assert!((z + 2.828_427).abs() < 1e-5, "{z}");
        // Two-sided p for |z| = 2.828427 is 0.004678.
        assert!((p - 0.004_678).abs() < 1e-5, "{p}");
        assert_eq!(two_proportion(0, 0, 3, 10), (0.0, 1.0));
    }

    #[test]
    fn a_segment_that_fails_more_is_a_headline_and_small_samples_are_not() {
        let counts = vec![
            count("cross-device", "Android", "success", None, 40),
            count("cross-device", "Android", "failed", Some("proximity-or-connection"), 45),
            count("cross-device", "Android", "abandoned", Some("user-cancelled"), 15),
            count("cross-device", "iOS", "success", None, 186),
            count("cross-device", "iOS", "failed", Some("no-credential"), 14),
            // Only 10 journeys: never a headline, however different.
            count("cross-device", "HarmonyOS", "failed", Some("no-credential"), 10),
        ];
        let found = rank(segment_insights("os", &counts));
        let android = found.iter().find(|i| i.segment == "os=Android, flow=cross-device").expect("Android stands out");
        assert_eq!((android.value, android.n), (0.4, 100));
        assert!(android.statement.contains("succeed in 40% of attempts (n=100)"), "{}", android.statement);
        assert!(android.statement.contains("45% fail with proximity-or-connection"), "{}", android.statement);
        assert!(android.statement.contains("Bluetooth"), "{}", android.statement);
        assert!(android.significance < MAX_P_VALUE && android.z < 0.0);
        assert!(!found.iter().any(|i| i.segment.contains("HarmonyOS")), "n=10 makes no headline");
        // iOS is the mirror image (better than the rest); the ranking is by |z|.
        assert!(found.iter().any(|i| i.segment == "os=iOS, flow=cross-device" && i.z > 0.0));
        assert!(found.windows(2).all(|w| w[0].z.abs() >= w[1].z.abs()), "strongest first");
    }

    #[test]
    fn journeys_of_unknown_segment_are_not_the_rest() {
        // Desktop journeys succeed 68 %; those no client event described (unknown form
        // factor) all succeed. Compared with them, "desktop" would look bad for no reason.
        let mut counts = vec![
            count("cross-device", "desktop", "success", None, 680),
            count("cross-device", "desktop", "failed", Some("proximity-or-connection"), 320),
        ];
        counts.push(OutcomeCount { segment: None, ..count("cross-device", "-", "success", None, 250) });
        let found = segment_insights("formFactor", &counts);
        assert!(found.is_empty(), "unknown is not everyone else: {found:?}");
        // With a known second value, the comparison leaves the unknown journeys out.
        counts.push(count("cross-device", "tablet", "success", None, 90));
        counts.push(count("cross-device", "tablet", "failed", Some("no-credential"), 10));
        let found = segment_insights("formFactor", &counts);
        let desktop = found.iter().find(|i| i.segment.starts_with("formFactor=desktop")).expect("desktop vs tablet");
        assert!(desktop.statement.contains("against 90% for everyone else (n=100)"), "{}", desktop.statement);
    }

    #[test]
    fn a_drop_against_the_segments_own_baseline_is_reported() {
        let recent = vec![
            count("qr-approval", "Safari", "success", None, 30),
            count("qr-approval", "Safari", "failed", Some("scan-failure"), 30),
        ];
        let earlier = vec![
            count("qr-approval", "Safari", "success", None, 180),
            count("qr-approval", "Safari", "failed", Some("scan-failure"), 20),
        ];
        let drops = baseline_drops("browser", &recent, &earlier);
        assert_eq!(drops.len(), 1);
        assert_eq!((drops[0].value, drops[0].baseline), (0.5, 0.9));
        assert!(drops[0].statement.contains("dropped to 50% success (n=60) from 90% before (n=200)"));
        assert!(baseline_drops("browser", &earlier, &recent).is_empty(), "a rise is not a drop");
    }
}
