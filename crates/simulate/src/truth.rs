//! The ground truth of a simulation and how the server's diagnosis is scored against it.
//! Each simulated journey is one JSON line: its flow, the planted outcome (`success` or a
//! root-cause code; `null` when the outcome happens outside Handoff, as with the site's
//! own fallback method), its segments, and every event name the simulation emitted or
//! caused. Scoring reads each journey back from `GET /api/v1/journeys/{id}` and counts,
//! per root cause, how many planted ones were found (recall) and how many found were
//! planted (precision), plus every phase reported *observed* whose event nobody emitted,
//! which must be none.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::population::Device;

/// A device's segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    /// Operating system.
    pub os: String,
    /// Browser.
    pub browser: String,
}

impl Segment {
    /// The segment of a simulated device.
    pub fn of(device: &Device) -> Self {
        Self { os: device.os.to_owned(), browser: device.browser.to_owned() }
    }
}

/// One simulated journey and what really happened in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Truth {
    /// The journey.
    pub journey_id: String,
    /// Who signed in.
    pub identifier: String,
    /// The flow the server chose.
    pub flow: String,
    /// `success`, a root-cause code, or `None` when the outcome is not Handoff's to see.
    pub planted: Option<String>,
    /// The desktop's segment.
    pub desktop: Segment,
    /// The phone's segment, when the flow used one.
    pub mobile: Option<Segment>,
    /// Every event name the simulation sent or caused the server to record.
    pub emitted: Vec<String>,
}

/// What the server said about one journey.
#[derive(Debug, Clone)]
pub struct Diagnosed {
    /// `success`, or the root-cause code; `None` while the journey is still open.
    pub verdict: Option<String>,
    /// Phases reported observed, with the event that shows them.
    pub observed: Vec<(String, String)>,
}

impl Diagnosed {
    /// Reads a `GET /api/v1/journeys/{id}` answer.
    pub fn from_view(view: &Value) -> Self {
        let verdict = match view["outcome"].as_str() {
            Some("success") => Some("success".to_owned()),
            Some(_) => view["rootCause"]["code"].as_str().map(str::to_owned),
            None => None,
        };
        let observed = view["phases"]
            .as_array()
            .map(|phases| {
                phases
                    .iter()
                    .filter(|p| p["observed"] == true)
                    .map(|p| {
                        let name = p["name"].as_str().unwrap_or_default().to_owned();
                        (name, p["evidence"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { verdict, observed }
    }
}

/// Precision and recall of one root cause (or `success`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CauseScore {
    /// Journeys planted with it.
    pub planted: usize,
    /// Journeys diagnosed with it.
    pub diagnosed: usize,
    /// Both.
    pub matched: usize,
}

impl CauseScore {
    /// matched / diagnosed.
    pub fn precision(&self) -> f64 {
        ratio(self.matched, self.diagnosed)
    }

    /// matched / planted.
    pub fn recall(&self) -> f64 {
        ratio(self.matched, self.planted)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// A phase reported observed whose event the simulation never emitted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseViolation {
    /// The journey.
    pub journey_id: String,
    /// The phase.
    pub phase: String,
    /// The event the server named as its evidence.
    pub evidence: String,
}

/// A planted journey that got another diagnosis.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Miss {
    /// The journey.
    pub journey_id: String,
    /// Its flow.
    pub flow: String,
    /// What was planted.
    pub planted: String,
    /// What the server said (`open` while undiagnosed).
    pub diagnosed: String,
}

/// The whole score.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// Journeys with a planted outcome.
    pub scored: usize,
    /// Journeys whose outcome is outside Handoff (not scored).
    pub unscored: usize,
    /// Journeys diagnosed with exactly what was planted.
    pub matched: usize,
    /// Journeys still without a diagnosis when scoring ended.
    pub undiagnosed: usize,
    /// Per root cause (and `success`).
    pub causes: BTreeMap<String, CauseScore>,
    /// Phases reported observed that nobody emitted (must be empty).
    pub phase_violations: Vec<PhaseViolation>,
    /// The journeys diagnosed otherwise (at most 50 kept).
    pub misses: Vec<Miss>,
}

impl Score {
    /// matched / scored.
    pub fn accuracy(&self) -> f64 {
        ratio(self.matched, self.scored)
    }

    /// Adds one journey's truth and diagnosis.
    pub fn add(&mut self, truth: &Truth, diagnosed: &Diagnosed) {
        let emitted: BTreeSet<&str> = truth.emitted.iter().map(String::as_str).collect();
        for (phase, evidence) in &diagnosed.observed {
            if !emitted.contains(evidence.as_str()) {
                self.phase_violations.push(PhaseViolation {
                    journey_id: truth.journey_id.clone(),
                    phase: phase.clone(),
                    evidence: evidence.clone(),
                });
            }
        }
        let Some(planted) = &truth.planted else {
            self.unscored += 1;
            return;
        };
        self.scored += 1;
        self.causes.entry(planted.clone()).or_default().planted += 1;
        match &diagnosed.verdict {
            None => self.undiagnosed += 1,
            Some(found) => self.causes.entry(found.clone()).or_default().diagnosed += 1,
        }
        if diagnosed.verdict.as_ref() == Some(planted) {
            self.matched += 1;
            self.causes.entry(planted.clone()).or_default().matched += 1;
        } else if self.misses.len() < 50 {
            self.misses.push(Miss {
                journey_id: truth.journey_id.clone(),
                flow: truth.flow.clone(),
                planted: planted.clone(),
                diagnosed: diagnosed.verdict.clone().unwrap_or_else(|| "open".into()),
            });
        }
    }

    /// A table for a terminal (or Markdown: it is both).
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Diagnosis accuracy: {}/{} journeys got the planted outcome ({:.1} %); {} not scored (outcome outside \
             Handoff); {} still open",
            self.matched,
            self.scored,
            self.accuracy() * 100.0,
            self.unscored,
            self.undiagnosed
        );
        let _ = writeln!(s, "\n| planted | journeys | diagnosed as it | matched | precision | recall |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for (cause, c) in &self.causes {
            let _ = writeln!(
                s,
                "| {cause} | {} | {} | {} | {:.1} % | {:.1} % |",
                c.planted,
                c.diagnosed,
                c.matched,
                c.precision() * 100.0,
                c.recall() * 100.0
            );
        }
        let _ = writeln!(s, "\nPhases reported observed without an emitted event: {}", self.phase_violations.len());
        for v in self.phase_violations.iter().take(10) {
            let _ = writeln!(s, "  journey {}: phase {} (evidence {})", v.journey_id, v.phase, v.evidence);
        }
        if !self.misses.is_empty() {
            let _ = writeln!(s, "\nMisdiagnosed (first {}):", self.misses.len().min(10));
            for m in self.misses.iter().take(10) {
                let _ =
                    writeln!(s, "  {} [{}]: planted {}, diagnosed {}", m.journey_id, m.flow, m.planted, m.diagnosed);
            }
        }
        s
    }
}
