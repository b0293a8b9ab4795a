//! Delivery: the [`Mailer`] every account mail goes through, built from [`MailSettings`] (checked
//! once, templates loaded), sending with a few bounded retries, and counting the background mails
//! still on their way so a test (or a shutdown) can wait for them.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::endpoint::Endpoint;
use super::templates::{MailTemplates, MailVars, Template};
use super::{MailError, MailSettings};

/// Wait before the second attempt; it doubles for each further one (200 ms, 400 ms, 800 ms…).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Sends the account mails. Cheap to clone: everything is behind one `Arc`, so a clone can move into a
/// spawned task and the request does not wait for the SMTP server.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    /// Where mail goes, for `Debug` (no credentials).
    endpoint: Option<String>,
    from: Mailbox,
    public_url: String,
    app_name: String,
    templates: MailTemplates,
    attempts: u32,
    to_log: bool,
    /// Background mails handed out by [`Mailer::track`] and not yet finished.
    in_flight: AtomicUsize,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("smtp", &self.inner.endpoint)
            .field("from", &self.inner.from.to_string())
            .field("public_url", &self.inner.public_url)
            .field("attempts", &self.inner.attempts)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks every setting and loads the template overrides. Opens no connection.
    pub fn new(settings: MailSettings) -> Result<Self, MailError> {
        let invalid = MailError::InvalidSetting;
        let from: Mailbox = settings.from.parse().map_err(|_| {
            invalid(format!(
                "mail_from '{}' is not an address like 'Keyway <no-reply@example.com>'",
                settings.from
            ))
        })?;
        let public_url = settings.public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
            || public_url.contains(char::is_whitespace)
        {
            return Err(invalid(format!(
                "public_url '{}' must be an http:// or https:// URL",
                settings.public_url
            )));
        }
        if settings.app_name.trim().is_empty() || settings.app_name.contains(char::is_control) {
            return Err(invalid(
                "app_name must be a non-empty name on one line".into(),
            ));
        }
        if settings.attempts == 0 {
            return Err(invalid("mail delivery needs at least 1 attempt".into()));
        }
        let (transport, endpoint) = match &settings.smtp_url {
            Some(url) => {
                let endpoint = Endpoint::parse(url.expose_secret())?;
                (Some(endpoint.transport()?), Some(endpoint.to_string()))
            }
            None => (None, None),
        };
        let templates = MailTemplates::load(settings.templates_dir.as_deref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                endpoint,
                from,
                public_url,
                app_name: settings.app_name,
                templates,
                attempts: settings.attempts,
                to_log: settings.to_log,
                in_flight: AtomicUsize::new(0),
            }),
        })
    }

    /// Whether an SMTP server is configured; without one, messages only go to the log.
    pub fn is_configured(&self) -> bool {
        self.inner.transport.is_some()
    }

    /// The base of the links in the messages, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// The product name the messages show.
    pub fn app_name(&self) -> &str {
        &self.inner.app_name
    }

    /// Background mails not yet delivered or given up on. Each is counted from before the request
    /// that causes it is answered, so once a caller has its answer, the mail is either counted here
    /// or finished: what lets a test know that nothing it caused is still on its way.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Counts one background mail in [`Mailer::in_flight`] until the returned guard is dropped.
    /// Take it before spawning the task that sends, and move it into that task.
    pub(crate) fn track(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.inner.clone())
    }

    /// Renders `template` for `to` and delivers it, retrying failures that may pass (connection
    /// refused, timeouts, 4xx replies) up to the configured number of attempts.
    #[tracing::instrument(skip_all, fields(template = template.name()))]
    pub async fn send(
        &self,
        to: &str,
        template: Template,
        vars: &MailVars,
    ) -> Result<(), MailError> {
        let inner = &*self.inner;
        let rendered = inner
            .templates
            .render(template, &inner.app_name, vars)
            // The kind and place only: minijinja's details may quote a value, a link say.
            .map_err(|e| {
                MailError::Render(format!("{} at {:?}:{:?}", e.kind(), e.name(), e.line()))
            })?;
        let Some(transport) = &inner.transport else {
            if !inner.to_log {
                // Only a library user can get here (`serve` refuses to start like this): say that
                // mail was dropped, never what it said.
                tracing::warn!(
                    subject = %rendered.subject,
                    "no SMTP configured and mail_to_log is off: this message was NOT sent"
                );
                return Ok(());
            }
            tracing::warn!(
                to,
                subject = %rendered.subject,
                "no SMTP configured: this message was NOT sent and is logged instead, link or code \
                 included; fine for development only, set smtp_url (KEYWAY_SMTP_URL) to deliver \
                 mail\n{}",
                rendered.text
            );
            return Ok(());
        };
        let recipient: Mailbox = to
            .parse()
            .map_err(|_| MailError::InvalidRecipient(to.to_owned()))?;
        let message = Message::builder()
            .from(inner.from.clone())
            .to(recipient)
            .subject(rendered.subject)
            .message_id(Some(message_id(&inner.from)))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))?;

        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let error = match transport.send(message.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            // A 5xx reply (unknown mailbox, refused sender) will not change on a retry.
            let permanent = error.is_permanent() || error.is_client();
            tracing::warn!(
                to,
                attempt,
                attempts = inner.attempts,
                error = %error,
                "mail delivery failed"
            );
            if permanent || attempt >= inner.attempts {
                return Err(MailError::Delivery {
                    to: to.to_owned(),
                    attempts: attempt,
                    permanent,
                    source: error,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

/// One background mail counted in [`Mailer::in_flight`]; dropping it (the task ended, or panicked)
/// stops counting it.
pub(crate) struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fresh `<random@sender-domain>`: the sender's domain rather than this machine's name, which
/// mail filters expect and which does not reveal the host.
fn message_id(from: &Mailbox) -> String {
    let mut random = [0u8; 16];
    rand::fill(&mut random);
    format!("<{}@{}>", hex::encode(random), from.email.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer(change: impl FnOnce(&mut MailSettings)) -> Mailer {
        let mut s = MailSettings {
            app_name: "Acme".into(),
            public_url: "https://acme.test/".into(),
            ..Default::default()
        };
        change(&mut s);
        Mailer::new(s).unwrap()
    }

    use super::super::sample_vars as vars;

    #[test]
    fn defaults() {
        let s = MailSettings::default();
        assert!(s.smtp_url.is_none());
        assert_eq!(s.from, "Keyway <no-reply@localhost>");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.app_name, "Keyway");
        assert!(s.templates_dir.is_none());
        assert_eq!(s.attempts, 3);
        let m = Mailer::new(s).unwrap();
        assert!(!m.is_configured());
        assert_eq!(m.public_url(), "http://127.0.0.1:8080");
    }

    /// Why the default settings, changed by `change`, are refused.
    fn refused(change: impl FnOnce(&mut MailSettings)) -> String {
        let mut s = MailSettings::default();
        change(&mut s);
        Mailer::new(s).unwrap_err().to_string()
    }

    #[test]
    fn public_url_loses_its_trailing_slash_and_must_be_http() {
        assert_eq!(mailer(|_| {}).public_url(), "https://acme.test");
        for bad in ["acme.test", "ftp://acme.test", "", "https://acme .test"] {
            let err = refused(|s| s.public_url = bad.into());
            assert!(err.contains("public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn from_must_be_a_mailbox() {
        for bad in ["", "not an address", "Keyway <no-reply>", "a@b@c"] {
            let err = refused(|s| s.from = bad.into());
            assert!(err.contains("mail_from"), "{bad}: {err}");
        }
        mailer(|s| s.from = "no-reply@acme.test".into());
    }

    #[test]
    fn zero_attempts_and_empty_app_name_are_refused() {
        refused(|s| s.attempts = 0);
        refused(|s| s.app_name = " ".into());
    }

    #[test]
    fn message_ids_name_the_sender_domain_and_never_repeat() {
        let from: Mailbox = "Acme <hello@acme.test>".parse().unwrap();
        let (a, b) = (message_id(&from), message_id(&from));
        assert!(a.starts_with('<') && a.ends_with("@acme.test>"), "{a}");
        assert_eq!(a.len(), "<@acme.test>".len() + 32, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn mailer_new_reports_bad_smtp_urls() {
        let err = Mailer::new(MailSettings {
            smtp_url: Some("imap://u:hunter2@mail.example.com".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, MailError::InvalidUrl(_)), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn without_smtp_messages_are_logged_and_ok() {
        let m = mailer(|_| {});
        for t in Template::ALL {
            m.send("alice@example.com", t, &vars()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_bad_recipient_is_refused_before_any_attempt() {
        let m = mailer(|s| s.smtp_url = Some("smtp://127.0.0.1:9".into()));
        let err = m
            .send("not-an-address", Template::PasswordChanged, &vars())
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::InvalidRecipient(_)), "{err}");
    }

    #[test]
    fn the_smtp_password_is_never_shown() {
        let m = mailer(|s| {
            s.smtp_url = Some("smtp+starttls://me%40acme.test:hunter2@smtp.acme.test".into())
        });
        assert!(m.is_configured());
        let shown = format!("{m:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("me@acme.test"), "{shown}");
    }
}
