//! Running a simulation: sign the people up, start attempts at the chosen rate (each
//! person plays one attempt at a time, many people at once), write each attempt's ground
//! truth as it finishes, show progress; then, when asked, wait for the server to diagnose
//! every journey and score the diagnosis against the truth.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{Mutex, mpsc};

use crate::browser::{SimError, Target};
use crate::journeys::{Context, Pace, attempt};
use crate::people::{Person, Stranger};
use crate::truth::{Diagnosed, Score, Truth};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// Sign-in attempts to play.
    pub journeys: usize,
    /// People to sign up first (each plays attempts one at a time).
    pub people: usize,
    /// Attempts started per second.
    pub rate: f64,
    /// Seed for every random choice (same seed, same population and plans).
    pub seed: u64,
    /// Modelled milliseconds per real millisecond.
    pub time_scale: f64,
    /// Per mille of people who also add a passkey on their desktop.
    pub desktop_passkey_share: u32,
    /// Per mille of attempts where the person picks the site's other method.
    pub fallback_share: u32,
    /// Multiplies the published failure rates (1: realistic traffic).
    pub failure_boost: u32,
    /// Where to write the ground truth (JSON lines).
    pub truth_path: Option<PathBuf>,
    /// Draw progress bars on the terminal.
    pub progress: bool,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Report {
    /// One per finished attempt.
    pub truths: Vec<Truth>,
    /// Attempts that broke, with why.
    pub errors: Vec<String>,
    /// Wall time of the sign-in attempts.
    pub elapsed: Duration,
}

fn bar(len: usize, message: &'static str, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len as u64),
        if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// Signs the people up, `parallel` at a time.
async fn sign_up_all(o: &Options, run_id: &str) -> Result<Vec<Person>, SimError> {
    let progress = bar(o.people, "signing up", o.progress);
    let mut tasks = tokio::task::JoinSet::new();
    let mut people = Vec::with_capacity(o.people);
    for i in 0..o.people {
        if tasks.len() >= 16
            && let Some(done) = tasks.join_next().await
        {
            people.push(done.map_err(|e| SimError::Other(e.to_string()))??);
            progress.inc(1);
        }
        let target = o.target.clone();
        let identifier = format!("sim-{run_id}-{i}@example.test");
        let mut rng = fastrand::Rng::with_seed(o.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let share = o.desktop_passkey_share;
        tasks.spawn(async move { Person::sign_up(&target, &mut rng, identifier, share).await });
    }
    while let Some(done) = tasks.join_next().await {
        people.push(done.map_err(|e| SimError::Other(e.to_string()))??);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(people)
}

/// Runs the simulation.
pub async fn simulate(o: &Options) -> Result<Report, SimError> {
    if o.people == 0 || o.journeys == 0 || o.rate <= 0.0 {
        return Err(SimError::Other("people, journeys and rate must be above 0".into()));
    }
    let run_id = format!("{:08x}", fastrand::Rng::with_seed(o.seed).u32(..) ^ (handoff_core::clock::now_ms() as u32));
    let people = sign_up_all(o, &run_id).await?;
    let mut strangers = Vec::new();
    for i in 0..3 {
        let mut rng = fastrand::Rng::with_seed(o.seed.wrapping_add(i));
        let identifier = format!("sim-{run_id}-stranger{i}@example.test");
        strangers.push(Arc::new(Mutex::new(Stranger::sign_up(&o.target, &mut rng, &identifier).await?)));
    }
    let mut truth_file = match &o.truth_path {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| SimError::Other(format!("cannot write the ground truth to {}: {e}", path.display())))?,
        )),
        None => None,
    };

    let (pool_tx, mut pool_rx) = mpsc::channel::<Person>(people.len());
    for p in people {
        let _ = pool_tx.send(p).await;
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Truth, SimError>>();
    let progress = bar(o.journeys, "signing in", o.progress);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let pace = Pace { scale: o.time_scale };
    let mut report = Report::default();
    let mut launched = 0usize;
    let mut finished = 0usize;
    let mut record = |result: Result<Truth, SimError>, report: &mut Report| {
        match result {
            Ok(truth) => {
                if let Some(file) = truth_file.as_mut()
                    && let Ok(line) = serde_json::to_string(&truth)
                {
                    let _ = writeln!(file, "{line}");
                }
                report.truths.push(truth);
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        progress.inc(1);
    };
    while launched < o.journeys {
        // Keep to the rate: the n-th attempt starts n/rate seconds in.
        let due = started + interval.mul_f64(launched as f64);
        tokio::time::sleep_until(due.into()).await;
        while let Ok(result) = done_rx.try_recv() {
            finished += 1;
            record(result, &mut report);
        }
        let Some(mut person) = pool_rx.recv().await else { break };
        let stranger = strangers[launched % strangers.len()].clone();
        let seed = o.seed.wrapping_add(1_000_003 * (launched as u64 + 1));
        let fallback_share = o.fallback_share;
        let failure_boost = o.failure_boost;
        let pool = pool_tx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let mut cx = Context {
                rng: fastrand::Rng::with_seed(seed),
                pace,
                stranger: &stranger,
                fallback_share,
                failure_boost,
            };
            let result = attempt(&mut person, &mut cx).await;
            let _ = pool.send(person).await;
            let _ = done.send(result);
        });
        launched += 1;
    }
    while finished < launched {
        match done_rx.recv().await {
            Some(result) => {
                finished += 1;
                record(result, &mut report);
            }
            None => break,
        }
    }
    progress.finish_and_clear();
    report.elapsed = started.elapsed();
    if let Some(mut file) = truth_file {
        file.flush().map_err(|e| SimError::Other(format!("cannot write the ground truth: {e}")))?;
    }
    Ok(report)
}

/// Waits (up to `timeout`) for the server to diagnose every journey, then scores it.
pub async fn score(
    target: &Target,
    operator_token: &str,
    truths: &[Truth],
    timeout: Duration,
    show_progress: bool,
) -> Result<Score, SimError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SimError::Other(format!("cannot build an HTTP client: {e}")))?;
    let progress = bar(truths.len(), "diagnosed", show_progress);
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&Truth> = truths.iter().collect();
    let mut views: Vec<(&Truth, Diagnosed)> = Vec::with_capacity(truths.len());
    loop {
        let mut still = Vec::new();
        for chunk in pending.chunks(16) {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, t) in chunk.iter().enumerate() {
                let url = target
                    .base
                    .join(&format!("/api/v1/journeys/{}", t.journey_id))
                    .map_err(|e| SimError::Other(e.to_string()))?;
                let request = http.get(url).bearer_auth(operator_token);
                tasks.spawn(async move { (i, request.send().await) });
            }
            let mut answers: Vec<Option<serde_json::Value>> = vec![None; chunk.len()];
            while let Some(joined) = tasks.join_next().await {
                let (i, response) = joined.map_err(|e| SimError::Other(e.to_string()))?;
                let response =
                    response.map_err(|source| SimError::Unreachable { url: target.base.to_string(), source })?;
                let status = response.status();
                if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                    return Err(SimError::Other(format!(
                        "the server refused the operator token ({status}); pass the one it uses"
                    )));
                }
                answers[i] = response.json().await.ok();
            }
            for (t, view) in chunk.iter().zip(answers) {
                let diagnosed = view.as_ref().map(Diagnosed::from_view);
                match diagnosed {
                    Some(d) if d.verdict.is_some() || t.planted.is_none() && !view_open(view.as_ref()) => {
                        progress.inc(1);
                        views.push((t, d));
                    }
                    _ => still.push(*t),
                }
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        progress.set_message("waiting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    progress.finish_and_clear();
    let mut score = Score::default();
    for (t, d) in &views {
        score.add(t, d);
    }
    for t in pending {
        score.add(t, &Diagnosed { verdict: None, observed: Vec::new() });
    }
    Ok(score)
}

/// Whether a journey view is still open (no outcome and not finished).
fn view_open(view: Option<&serde_json::Value>) -> bool {
    view.is_none_or(|v| v["state"] != "finished")
}
