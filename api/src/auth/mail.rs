//! Outgoing mail (verification and password-reset links): SMTP via lettre when
//! `FUNMAGIC_SMTP_URL` is set; otherwise the message is written to the server log and kept
//! in a small in-memory outbox (what an operator of the embedded mode reads).

use std::collections::VecDeque;
use std::sync::Mutex;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, MailSettings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub struct Mailer {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    outbox: Mutex<VecDeque<SentMail>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("smtp", &self.smtp.is_some()).field("from", &self.from).finish()
    }
}

const OUTBOX_LEN: usize = 50;

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, ConfigError> {
        let from: Mailbox =
            settings.from.parse().map_err(|e| ConfigError::new("FUNMAGIC_MAIL_FROM", format!("not a mailbox: {e}")))?;
        let smtp = match &settings.smtp_url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| ConfigError::new("FUNMAGIC_SMTP_URL", format!("invalid SMTP URL: {e}")))?
                    .build(),
            ),
        };
        Ok(Self { smtp, from, outbox: Mutex::new(VecDeque::new()) })
    }

    pub fn describe(&self) -> &'static str {
        if self.smtp.is_some() { "smtp" } else { "log (no FUNMAGIC_SMTP_URL)" }
    }

    /// Sends, or logs when no SMTP server is configured. Failures are logged, not raised:
    /// the caller's answer must not reveal whether mail went out.
    pub async fn send(&self, to: &str, subject: &str, body: &str) {
        let mail = SentMail { to: to.to_string(), subject: subject.to_string(), body: body.to_string() };
        match &self.smtp {
            Some(smtp) => {
                let message = to.parse::<Mailbox>().map_err(|e| e.to_string()).and_then(|to| {
                    Message::builder()
                        .from(self.from.clone())
                        .to(to)
                        .subject(subject)
                        .body(body.to_string())
                        .map_err(|e| e.to_string())
                });
                let result = match message {
                    Ok(m) => smtp.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "sending mail failed");
                }
            }
            None => {
                tracing::info!(to, subject, "mail (no SMTP configured):\n{body}");
                let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
                if outbox.len() == OUTBOX_LEN {
                    outbox.pop_front();
                }
                outbox.push_back(mail);
            }
        }
    }

    /// Mail logged since start (only without SMTP), oldest first.
    pub fn outbox(&self) -> Vec<SentMail> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}
