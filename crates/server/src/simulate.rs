//! `handoff simulate`: the command-line face of the traffic simulator (`handoff-simulate`).
//! It finds the server the way `report` finds the database, from the same configuration
//! as `serve` (so next to a running server it needs no flags), runs the simulation with a
//! progress bar, writes the ground truth, and with `--score` waits for the diagnoses and
//! prints precision and recall per root cause.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use handoff_simulate::{Options, Target};
use url::Url;

use crate::config::RawConfig;

/// Options of `handoff simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// TOML configuration file, as for `serve` (for the default --url, --origin and token).
    #[arg(long, value_name = "FILE", env = "HANDOFF_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server to drive. [default: http://<listen address of the configuration>]
    #[arg(long, value_name = "URL")]
    pub url: Option<Url>,
    /// The origin the simulated pages run on (what passkeys are signed for); must be one of
    /// the server's allowed origins. [default: the configuration's first origin when
    /// --url is not given, else --url]
    #[arg(long, value_name = "URL")]
    pub origin: Option<Url>,
    /// Sign-in attempts to play.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub journeys: usize,
    /// People to sign up first. [default: a fifth of --journeys, at least 5]
    #[arg(long, value_name = "N")]
    pub people: Option<usize>,
    /// Attempts started per second.
    #[arg(long, default_value_t = 20.0, value_name = "PER_SECOND")]
    pub rate: f64,
    /// Seed for every random choice: the same seed signs up the same population and draws
    /// the same plans (which person plays which attempt still depends on timing).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// How much faster than real time people act: a 45 s wait takes 45 s / this. Pages
    /// report the modelled durations (`elapsedMs`), but the server's clock sees the
    /// compressed ones, so times to session look that much shorter; 1 plays in real time.
    #[arg(long, default_value_t = 50.0, value_name = "FACTOR")]
    pub time_scale: f64,
    /// Multiply the published failure rates by this (1 plays realistic traffic; more gives
    /// many failures of every kind from few attempts, for checking the diagnosis).
    #[arg(long, default_value_t = 1, value_name = "FACTOR")]
    pub failure_boost: u32,
    /// Where to write the ground truth, one JSON line per attempt.
    #[arg(long, default_value = "simulate-truth.jsonl", value_name = "FILE")]
    pub truth: PathBuf,
    /// Fill a fresh instance for a demo: 300 attempts by 60 people at 25 per second.
    #[arg(long)]
    pub demo: bool,
    /// Afterwards, wait for the server to diagnose every journey (journeys without a
    /// session are diagnosed after journey_idle_seconds) and print precision and recall
    /// per root cause.
    #[arg(long)]
    pub score: bool,
    /// Write the score as JSON to this file (with --score).
    #[arg(long, value_name = "FILE")]
    pub score_json: Option<PathBuf>,
    /// How long --score waits for diagnoses, in seconds.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub score_timeout: u64,
    /// Operator token for --score. [env: HANDOFF_OPERATOR_TOKEN] [default: the
    /// configuration's, or <data dir>/operator-token]
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("handoff simulate: {message}");
    ExitCode::from(2)
}

/// Runs `handoff simulate`.
pub async fn run(args: SimulateArgs) -> ExitCode {
    let settings =
        match RawConfig::load(args.config.as_deref(), &RawConfig::default()).and_then(RawConfig::into_settings) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
    let base = match &args.url {
        Some(url) => url.clone(),
        None => match Url::parse(&format!("http://{}", settings.listen)) {
            Ok(url) => url,
            Err(e) => return fail(format!("cannot make a URL of the listen address {}: {e}", settings.listen)),
        },
    };
    let origin = match (&args.origin, &args.url, settings.origins.first()) {
        (Some(origin), _, _) => origin.clone(),
        (None, Some(url), _) => url.clone(),
        (None, None, Some(origin)) => origin.clone(),
        (None, None, None) => base.clone(),
    };
    let (journeys, people, rate) = if args.demo {
        (300, 60, 25.0)
    } else {
        (args.journeys, args.people.unwrap_or((args.journeys / 5).max(5)), args.rate)
    };
    if !(rate > 0.0 && rate.is_finite()) {
        return fail("--rate must be a positive number");
    }
    if !(args.time_scale >= 1.0 && args.time_scale.is_finite()) {
        return fail("--time-scale must be at least 1");
    }
    let token = args.operator_token.clone().or_else(|| settings.known_operator_token());
    if args.score && token.is_none() {
        return fail("--score needs the operator token: pass --operator-token or set HANDOFF_OPERATOR_TOKEN");
    }
    let options = Options {
        target: Target { base: base.clone(), origin },
        journeys,
        people,
        rate,
        seed: args.seed,
        time_scale: args.time_scale,
        desktop_passkey_share: 350,
        fallback_share: 30,
        failure_boost: args.failure_boost.max(1),
        truth_path: Some(args.truth.clone()),
        progress: !args.quiet,
    };
    eprintln!(
        "handoff simulate: {people} people sign up, then {journeys} sign-in attempts at {rate}/s against {base} \
         (seed {})",
        args.seed
    );
    let report = match handoff_simulate::simulate(&options).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let secs = report.elapsed.as_secs_f64().max(0.001);
    eprintln!(
        "handoff simulate: {} attempts in {secs:.1} s ({:.1}/s); ground truth in {}",
        report.truths.len(),
        report.truths.len() as f64 / secs,
        args.truth.display()
    );
    for e in report.errors.iter().take(10) {
        eprintln!("  attempt failed: {e}");
    }
    let mut status = if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if !report.errors.is_empty() {
        eprintln!("handoff simulate: {} attempts broke (listed above, first 10)", report.errors.len());
    }
    if args.score
        && let Some(token) = token
    {
        eprintln!(
            "handoff simulate: waiting for the diagnoses (journeys without a session finish after journey_idle_seconds)"
        );
        let timeout = Duration::from_secs(args.score_timeout);
        match handoff_simulate::score(&options.target, &token, &report.truths, timeout, !args.quiet).await {
            Ok(score) => {
                print!("{}", score.render());
                if let Some(path) = &args.score_json {
                    let json = serde_json::to_string_pretty(&score).unwrap_or_default();
                    if let Err(e) = std::fs::write(path, json) {
                        return fail(format!("cannot write {}: {e}", path.display()));
                    }
                }
            }
            Err(e) => {
                eprintln!("handoff simulate: scoring failed: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
