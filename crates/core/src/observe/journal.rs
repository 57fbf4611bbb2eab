//! The journal: the one writer of events and journeys in a process. Requests hand their
//! events to it and wait; it takes every request that queued up meanwhile and stores them
//! together in one transaction (events, then their journeys' updated facts), so under load
//! many requests share one commit, and a 202 is sent only after that commit (an accepted
//! event survives a crash right after). One writer per process also means SQLite's single
//! write lock is never fought over by event ingestion itself. The server's own events
//! (four per sign-in) wait for nobody, so a group made only of them lingers a few
//! milliseconds for more before it is written: at a thousand sign-ins a second that turns
//! several small commits per millisecond into one larger one. (Storing server events was a
//! third of a sign-in's CPU on SQLite before this; bench/RESULTS.md, 2026-12-03.)

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use crate::domain::JourneyId;
use crate::error::{DomainError, Result};
use crate::storage::{Journeys, StoredEvent};

/// Tuning of the journal.
#[derive(Debug, Clone, Copy)]
pub struct JournalSettings {
    /// Most events stored in one transaction.
    pub max_group_events: usize,
    /// Requests that may wait for the writer before senders wait too.
    pub queue: usize,
    /// Writer tasks. One for SQLite (it has one write lock anyway); several for PostgreSQL,
    /// where groups fold different journeys in parallel (each group locks its journeys in
    /// id order, so two groups never deadlock).
    pub writers: usize,
    /// How long a group of only server events waits for more before it is written (a
    /// request that waits for its commit ends the wait at once).
    pub server_linger: Duration,
}

impl Default for JournalSettings {
    fn default() -> Self {
        Self { max_group_events: 4_000, queue: 4_096, writers: 1, server_linger: Duration::from_millis(10) }
    }
}

struct Job {
    events: Vec<StoredEvent>,
    /// Where to answer once stored; `None` for the server's own events (the writer logs
    /// their failures itself).
    done: Option<oneshot::Sender<Result<usize>>>,
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    jobs: mpsc::Sender<Job>,
    drops: Arc<Drops>,
}

/// Server events dropped because the queue was full, and when that was last logged.
#[derive(Default)]
struct Drops {
    total: AtomicU64,
    reported: AtomicU64,
    last_log_ms: AtomicI64,
}

/// How often a full queue is logged at most.
const DROP_LOG_INTERVAL_MS: i64 = 10_000;

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    /// Starts the writer on the current tokio runtime. It stops when every handle is gone,
    /// after storing what was queued.
    pub fn start(store: Arc<dyn Journeys>, settings: JournalSettings) -> Self {
        let (jobs, rx) = mpsc::channel(settings.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..settings.writers.max(1) {
            tokio::spawn(write_loop(store.clone(), rx.clone(), settings));
        }
        Self { jobs, drops: Arc::default() }
    }

    /// Server events dropped so far because the queue was full.
    pub fn dropped_server_events(&self) -> u64 {
        self.drops.total.load(Ordering::Relaxed)
    }

    /// Stores events durably and folds them into their journeys; returns how many were
    /// new (repeats of an event id are ignored).
    pub async fn record(&self, events: Vec<StoredEvent>) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { events, done: Some(done) })
            .await
            .map_err(|_| DomainError::Storage("the event journal has stopped".into()))?;
        answer.await.map_err(|_| DomainError::Storage("the event journal stopped before storing".into()))?
    }

    /// Hands the server's own events to the writer without waiting for their commit: the
    /// request they describe goes on at once, and under load the events of many requests
    /// share one transaction. They are committed within milliseconds; a crash in that window
    /// can lose them (unlike a client's acknowledged events). A failure is logged.
    ///
    /// The queue is bounded and nothing waits for room: when it is full (the database
    /// cannot keep up, or a flood of sign-in starts), these events are dropped, counted
    /// ([`Journal::dropped_server_events`], `handoff_journal_dropped_events_total`) and
    /// logged at most every 10 s. The sign-in itself is never slowed or lost for them.
    pub fn submit_server(&self, events: Vec<StoredEvent>) {
        match self.jobs.try_send(Job { events, done: None }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => self.dropped(job.events.len()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the event journal has stopped; server events dropped");
            }
        }
    }
}

impl Journal {
    fn dropped(&self, n: usize) {
        let total = self.drops.total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let now = crate::clock::now_ms();
        let last = self.drops.last_log_ms.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= DROP_LOG_INTERVAL_MS;
        if due && self.drops.last_log_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let since = total - self.drops.reported.swap(total, Ordering::Relaxed);
            tracing::warn!(
                dropped = since,
                total,
                "the event journal's queue is full: server events were dropped (the database is not keeping up)"
            );
        }
    }
}

async fn write_loop(store: Arc<dyn Journeys>, rx: Arc<Mutex<mpsc::Receiver<Job>>>, settings: JournalSettings) {
    loop {
        // Take a group while holding the queue; store it after letting go.
        let (group, size) = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let linger_until = Instant::now() + settings.server_linger;
            let mut size = first.events.len();
            let mut someone_waits = first.done.is_some();
            let mut group = vec![first];
            while size < settings.max_group_events {
                let next = match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) if !someone_waits => {
                        // Only server events so far: wait a little for more (a closed
                        // queue or the deadline ends the wait; what is here is stored).
                        tokio::time::timeout_at(linger_until, rx.recv()).await.ok().flatten()
                    }
                    Err(_) => None,
                };
                let Some(job) = next else { break };
                someone_waits |= job.done.is_some();
                size += job.events.len();
                group.push(job);
            }
            (group, size)
        };
        // Move the events into one slice, remembering which part is whose.
        let mut all = Vec::with_capacity(size);
        let mut parts = Vec::with_capacity(group.len());
        for job in group {
            let start = all.len();
            all.extend(job.events);
            parts.push((start..all.len(), job.done));
        }
        let result = store.record(&all).await;
        match &result {
            Ok(ids) => {
                let fresh: HashSet<(JourneyId, &str)> = ids.iter().map(|(j, e)| (*j, e.as_str())).collect();
                for (range, done) in parts {
                    let Some(done) = done else { continue };
                    let new =
                        all[range].iter().filter(|e| fresh.contains(&(e.journey_id, e.event_id.as_str()))).count();
                    let _ = done.send(Ok(new));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = all.len(), "storing a group of events failed");
                for done in parts.into_iter().filter_map(|(_, done)| done) {
                    let _ = done.send(Err(DomainError::Storage(e.to_string())));
                }
            }
        }
    }
}
