//! Telling waiting desktops that their QR attempt changed. Each attempt has its own
//! `watch` channel, created when a desktop starts waiting and dropped when the last one
//! stops, so a notification costs one map lookup, not a broadcast to every waiter. With
//! PostgreSQL, changes travel through `NOTIFY handoff_qr` and every instance's listener
//! feeds its own channels, so an approval reaches the desktop whichever instance the phone
//! hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    postgres: Option<sqlx::PgPool>,
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
    /// In-process only (SQLite, one instance).
    pub fn local() -> Self {
        Self { channels: Arc::default(), postgres: None }
    }

    /// Across instances through PostgreSQL `LISTEN/NOTIFY`. Starts the listener task,
    /// which reconnects on its own.
    pub async fn postgres(url: &str) -> Result<Self, sqlx::Error> {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(url).await?;
        let this = Self { channels: Arc::default(), postgres: Some(pool) };
        // Listen before returning, so no change published after start-up is missed.
        let mut listener = connect_listener(url).await?;
        let channels = this.channels.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            loop {
                if let Err(e) = forward(&mut listener, &channels).await {
                    tracing::warn!(error = %e, "QR notification listener lost its connection; reconnecting");
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match connect_listener(&url).await {
                        Ok(l) => {
                            listener = l;
                            channels.wake_all();
                            break;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot reconnect the QR notification listener"),
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
        match &self.postgres {
            None => self.channels.wake(id),
            Some(pool) => {
                let sent =
                    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(id.to_string()).execute(pool).await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "NOTIFY failed; waking local waiters only");
                    self.channels.wake(id);
                }
            }
        }
    }
}

async fn connect_listener(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Wakes the waiters each notification names. Waiters do not poll, so when the listener's
/// connection drops (sqlx reconnects it on the next call, and notifications sent meanwhile
/// are gone) every local waiter is woken to re-read its attempt.
async fn forward(listener: &mut sqlx::postgres::PgListener, channels: &Channels) -> Result<(), sqlx::Error> {
    loop {
        match listener.try_recv().await? {
            Some(n) => {
                if let Ok(id) = n.payload().parse::<Uuid>() {
                    channels.wake(id);
                }
            }
            None => {
                tracing::warn!("QR notification listener reconnected; waking every waiter to re-read");
                channels.wake_all();
            }
        }
    }
}
