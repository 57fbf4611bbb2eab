//! Telling waiting desktops that their QR attempt changed. Each attempt has its own
//! `watch` channel, created when a desktop starts waiting and dropped when the last one
//! stops, so a notification costs one map lookup, not a broadcast to every waiter. With
//! PostgreSQL, changes travel through `NOTIFY handoff_qr` and every instance's listener
//! feeds its own channels, so an approval reaches the desktop whichever instance the phone
//! hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff_core::DomainError;
use handoff_store::{Database, Listener, Notice};
use tokio::sync::watch;
use uuid::Uuid;

const CHANNEL: &str = "handoff_qr";

#[derive(Default)]
struct Channels {
    by_attempt: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
}

impl Channels {
    fn wake(&self, id: Uuid) {
        let map = self.by_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = map.get(&id) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Wakes every waiter of this instance: after notifications may have been lost, each
    /// re-reads its attempt once.
    fn wake_all(&self) {
        let map = self.by_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for tx in map.values() {
            tx.send_modify(|v| *v += 1);
        }
    }
}

/// Publishes and subscribes to QR attempt changes.
#[derive(Clone)]
pub struct QrNotifier {
    channels: Arc<Channels>,
    /// The database whose notifications reach every instance (PostgreSQL).
    shared: Option<Database>,
}

/// A desktop's subscription; dropping it releases the channel when it was the last.
pub struct Subscription {
    id: Uuid,
    rx: watch::Receiver<u64>,
    channels: Arc<Channels>,
}

impl Subscription {
    /// Waits for the next change (or returns at once if one happened since the last call).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.channels.by_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Our receiver still counts until this returns: 1 means we were the last.
        if map.get(&self.id).is_some_and(|tx| tx.receiver_count() <= 1) {
            map.remove(&self.id);
        }
    }
}

impl QrNotifier {
    /// In-process only (one instance on SQLite, and tests).
    pub fn local() -> Self {
        Self { channels: Arc::default(), shared: None }
    }

    /// Across instances when the database can carry notifications (PostgreSQL `LISTEN/
    /// NOTIFY`), else in-process. Starts the listener task, which reconnects on its own.
    pub async fn start(db: Database) -> Result<Self, DomainError> {
        // Listen before returning, so no change published after start-up is missed.
        let Some(listener) = db.listen(CHANNEL).await else { return Ok(Self::local()) };
        let mut listener = listener?;
        let this = Self { channels: Arc::default(), shared: Some(db.clone()) };
        let channels = this.channels.clone();
        tokio::spawn(async move {
            loop {
                let e = forward(&mut listener, &channels).await;
                tracing::warn!(error = %e, "QR notification listener lost its connection; reconnecting");
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match db.listen(CHANNEL).await {
                        Some(Ok(l)) => {
                            listener = l;
                            channels.wake_all();
                            break;
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "cannot reconnect the QR notification listener"),
                        None => return,
                    }
                }
            }
        });
        Ok(this)
    }

    /// Starts waiting for changes of one attempt.
    pub fn subscribe(&self, id: Uuid) -> Subscription {
        let mut map = self.channels.by_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rx = map.entry(id).or_insert_with(|| watch::channel(0).0).subscribe();
        Subscription { id, rx, channels: self.channels.clone() }
    }

    /// Tells every waiter of this attempt, on every instance, that it changed.
    pub async fn publish(&self, id: Uuid) {
        let sent = match &self.shared {
            None => None,
            Some(db) => db.notify(CHANNEL, &id.to_string()).await,
        };
        match sent {
            Some(Ok(())) => {}
            None => self.channels.wake(id),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "NOTIFY failed; waking local waiters only");
                self.channels.wake(id);
            }
        }
    }
}

/// Wakes the waiters each notification names, until the listener fails (returned). Waiters
/// do not poll, so when the listener's connection drops and comes back (notifications sent
/// meanwhile are gone) every local waiter is woken to re-read its attempt.
async fn forward(listener: &mut Listener, channels: &Channels) -> DomainError {
    loop {
        match listener.recv().await {
            Ok(Notice::Payload(payload)) => {
                if let Ok(id) = payload.parse::<Uuid>() {
                    channels.wake(id);
                }
            }
            Ok(Notice::Reconnected) => {
                tracing::warn!("QR notification listener reconnected; waking every waiter to re-read");
                channels.wake_all();
            }
            Err(e) => return e,
        }
    }
}
