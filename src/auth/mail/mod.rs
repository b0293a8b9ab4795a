//! Outgoing mail for the account lifecycle (email confirmation, password reset, password-changed
//! notice): its settings and errors here, the SMTP endpoint parsed from `smtp_url` in `endpoint`,
//! the texts (built-ins, overrides, rendering in plain text and HTML) in `templates`, and delivery
//! with a few bounded retries in `delivery`; the declared settings in `settings`.
//!
//! Nothing here logs a message body, a link or a code, except the development mode without SMTP,
//! which writes the message to the log instead of sending it and says so.

mod delivery;
mod endpoint;
pub mod settings;
mod templates;

pub use delivery::Mailer;
pub use templates::{MailVars, Template};

use secrecy::SecretString;
use std::path::PathBuf;

use crate::templates::TemplateError;

#[derive(Clone, Debug)]
pub struct MailSettings {
    /// `smtp://` (plain), `smtp+starttls://` or `smtp://…?tls=starttls` (STARTTLS required),
    /// `smtps://` (implicit TLS); `user:password@` for authentication. `None`: development mode,
    /// messages are logged instead of sent.
    pub smtp_url: Option<SecretString>,
    /// `From:` of every message, e.g. `Keyway <no-reply@example.com>`.
    pub from: String,
    /// Base of the links in the messages.
    pub public_url: String,
    /// Product name shown in the messages.
    pub app_name: String,
    /// Folder of template overrides: `<name>.subject`, `<name>.txt`, `<name>.html`.
    pub templates_dir: Option<PathBuf>,
    /// Delivery attempts per message, at least 1.
    pub attempts: u32,
    /// Without `smtp_url`, write each message (links and codes included) to the log. Development
    /// only: a reset link in a log lets whoever reads the log into the account. `serve` refuses to
    /// start without SMTP unless this is on (or `--demo`).
    pub to_log: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Keyway <no-reply@localhost>".into(),
            public_url: "http://127.0.0.1:8080".into(),
            app_name: "Keyway".into(),
            templates_dir: None,
            attempts: 3,
            to_log: false,
        }
    }
}

/// Why mail could not be set up or sent. Never carries a password, a link, a code or a body.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `smtp_url` cannot be used; the message names the problem, never the URL.
    #[error("smtp_url: {0}")]
    InvalidUrl(String),
    /// Another setting (`mail_from`, `public_url`, `app_name`, attempts) is unusable.
    #[error("{0}")]
    InvalidSetting(String),
    /// A template override cannot be read, does not parse or uses an unknown variable: the file,
    /// the line and what is wrong.
    #[error("mail template {0}")]
    Template(#[from] TemplateError),
    /// A checked template failed to render (a bug: the check renders each one at start-up).
    #[error("cannot render the mail: {0}")]
    Render(String),
    #[error("'{0}' is not a valid recipient address")]
    InvalidRecipient(String),
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// Every attempt failed, or the server refused the message for good (`permanent`, a 5xx reply,
    /// which is not retried). `attempts` is how many were made.
    #[error("mail to {to} not delivered after {attempts} attempt(s)")]
    Delivery {
        to: String,
        attempts: u32,
        permanent: bool,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// The values the mail tests send, a link with a character HTML escapes.
#[cfg(test)]
fn sample_vars() -> MailVars {
    MailVars {
        username: "alice".into(),
        email: "alice@example.com".into(),
        link: Some("https://acme.test/confirm?confirmation=abc&x=1".into()),
        code: Some("c0de".into()),
    }
}
