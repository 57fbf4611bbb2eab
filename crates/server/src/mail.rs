//! The mail worker (PRODUCT §7): mail is queued in the database by the request that asks
//! for it and sent here, never in the request path. Each round leases the due mails (one
//! worker per mail, on any number of instances), hands each to the SMTP server with lettre
//! (STARTTLS or TLS from the start, over OpenSSL), and records the outcome: accepted, refused
//! for good (a 5xx answer: `email.bounced`), or tried again later with backoff
//! (`email.deferred`). A request that queues mail wakes the worker at once; otherwise it
//! looks every second.

use std::sync::Arc;
use std::time::Duration;

use handoff_core::recovery::{QueuedMail, RecoveryService};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::config::MailSettings;

/// Sends queued mail through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The transport for these settings (no connection is made yet).
    pub fn new(settings: &MailSettings) -> Result<Self, String> {
        let from: Mailbox = settings.from.parse().map_err(|e| format!("mail_from {:?}: {e}", settings.from))?;
        let tls = TlsParameters::new(settings.host.clone()).map_err(|e| format!("TLS for {}: {e}", settings.host))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port)
            .timeout(Some(Duration::from_secs(10)))
            .tls(if settings.plaintext {
                Tls::None
            } else if settings.implicit_tls {
                Tls::Wrapper(tls)
            } else {
                Tls::Required(tls)
            });
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self { transport: builder.build(), from })
    }

    /// Hands one mail to the SMTP server; `Err((message, permanent))` when it was not accepted.
    async fn send(&self, mail: &QueuedMail) -> Result<(), (String, bool)> {
        let to: Mailbox =
            mail.to.parse().map_err(|e| (format!("the address {:?} is not valid: {e}", mail.to), true))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| (format!("the mail could not be built: {e}"), true))?;
        self.transport.send(message).await.map(drop).map_err(|e| (e.to_string(), e.is_permanent()))
    }
}

/// SMTP transactions in flight at once (lettre's pool keeps a connection for each). One at
/// a time, a mail server that takes 20 ms per message caps the worker at 50 mails a second,
/// and a steady 50 requests a second queued mail for seconds (`bench/mail.sh`).
const IN_FLIGHT: usize = 8;

/// Sends what is due, every second or as soon as `wake` is notified.
pub async fn run(recovery: RecoveryService, mailer: Arc<Mailer>, wake: Arc<Notify>) {
    use futures_util::StreamExt as _;
    loop {
        match recovery.due_mail(32).await {
            Ok(due) if !due.is_empty() => {
                futures_util::stream::iter(due)
                    .for_each_concurrent(IN_FLIGHT, |mail| {
                        let (recovery, mailer) = (&recovery, &mailer);
                        async move {
                            let outcome = match mailer.send(&mail).await {
                                Ok(()) => recovery.mail_sent(&mail).await,
                                Err((error, permanent)) => recovery.mail_failed(&mail, &error, permanent).await,
                            };
                            if let Err(e) = outcome {
                                tracing::warn!(error = %e, mail = %mail.id, "could not record how a mail went");
                            }
                        }
                    })
                    .await;
                // More may be due at once: look again without waiting.
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the mail queue"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
    }
}
