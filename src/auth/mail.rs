//! Outgoing mail for the account lifecycle (email confirmation, password reset, password-changed
//! notice): the SMTP endpoint parsed from `smtp_url`, the built-in templates and their overrides, the
//! rendering of a message in plain text and HTML, and delivery with a few bounded retries.
//!
//! Nothing here logs a message body, a link or a code, except the development mode without SMTP,
//! which writes the message to the log instead of sending it and says so.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Wait before the second attempt; it doubles for each further one (200 ms, 400 ms, 800 ms…).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait for one SMTP command, connecting included (lettre's default is a minute).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The kinds of message Keyway sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    EmailConfirmation,
    ResetPassword,
    PasswordChanged,
}

impl Template {
    pub const ALL: [Template; 3] = [
        Template::EmailConfirmation,
        Template::ResetPassword,
        Template::PasswordChanged,
    ];

    /// The file-name stem of this template's overrides.
    pub fn name(self) -> &'static str {
        match self {
            Template::EmailConfirmation => "email-confirmation",
            Template::ResetPassword => "reset-password",
            Template::PasswordChanged => "password-changed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The values a template can use, besides `{{app_name}}`. A `None` renders as nothing.
#[derive(Clone, Debug, Default)]
pub struct MailVars {
    pub username: String,
    pub email: String,
    pub link: Option<String>,
    pub code: Option<String>,
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
    /// A template override cannot be read or does not parse.
    #[error("mail template {path}: {message}")]
    Template { path: PathBuf, message: String },
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
    templates: [Parts; 3],
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
        let templates = load_templates(settings.templates_dir.as_deref())?;
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
        let rendered = inner.render(template, vars);
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

/// Subject, plain text and HTML of one message, before or after rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parts {
    subject: String,
    text: String,
    html: String,
}

impl Inner {
    fn render(&self, template: Template, vars: &MailVars) -> Parts {
        let values = [
            ("app_name", self.app_name.as_str()),
            ("username", vars.username.as_str()),
            ("email", vars.email.as_str()),
            ("link", vars.link.as_deref().unwrap_or("")),
            ("code", vars.code.as_deref().unwrap_or("")),
        ];
        let lookup = |name: &str| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, v)| *v)
        };
        let parts = &self.templates[template.index()];
        // A header is one line: a value with a line break must not end it or start another.
        let subject = render(&parts.subject, |n| lookup(n).into())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Parts {
            subject,
            text: render(&parts.text, |n| lookup(n).into()),
            html: render(&parts.html, |n| html_escape(lookup(n))),
        }
    }
}

/// Variables a template may use.
const VARIABLES: [&str; 5] = ["app_name", "username", "email", "link", "code"];

/// Replaces each `{{ name }}` with `value(name)`. Templates were checked by [`check_template`].
fn render(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&value(rest[start + 2..start + 2 + len].trim()));
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A template is refused when it names a variable that does not exist or leaves `{{` open, so a typo
/// in an override stops start-up instead of sending mail with a hole in it.
fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            return Err("a '{{' is not closed by '}}'".into());
        };
        let name = rest[start + 2..start + 2 + len].trim();
        if !VARIABLES.contains(&name) {
            return Err(format!(
                "unknown variable '{{{{{name}}}}}'; the variables are {}",
                VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", ")
            ));
        }
        rest = &rest[start + 2 + len + 2..];
    }
    Ok(())
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The built-in templates, with every part of every override found in `dir` put in its place.
fn load_templates(dir: Option<&Path>) -> Result<[Parts; 3], MailError> {
    let mut templates = Template::ALL.map(builtin);
    let Some(dir) = dir else {
        return Ok(templates);
    };
    let template_error = |path: &Path, message: String| MailError::Template {
        path: path.to_owned(),
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| template_error(dir, format!("cannot read the templates folder: {e}")))?;
    for entry in entries {
        let path = entry
            .map_err(|e| template_error(dir, format!("cannot read the templates folder: {e}")))?
            .path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if !["subject", "txt", "html"].contains(&ext) {
            continue;
        }
        // A misspelt name would otherwise be ignored silently and the built-in text sent.
        let Some(template) = Template::ALL.into_iter().find(|t| t.name() == stem) else {
            return Err(template_error(
                &path,
                format!(
                    "unknown template '{stem}'; the names are {}",
                    Template::ALL.map(Template::name).join(", ")
                ),
            ));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| template_error(&path, format!("cannot read: {e}")))?;
        check_template(&text).map_err(|m| template_error(&path, m))?;
        let parts = &mut templates[template.index()];
        match ext {
            "subject" => {
                let subject = text.trim();
                if subject.is_empty() || subject.contains(['\r', '\n']) {
                    return Err(template_error(
                        &path,
                        "a subject is one non-empty line".into(),
                    ));
                }
                parts.subject = subject.to_owned();
            }
            "txt" => parts.text = text,
            _ => parts.html = text,
        }
    }
    Ok(templates)
}

fn builtin(template: Template) -> Parts {
    let (subject, text, html_body) = match template {
        Template::EmailConfirmation => (
            "Confirm your email for {{app_name}}",
            "Hi {{username}},\n\
             \n\
             Welcome to {{app_name}}! Please confirm your email address by opening this link:\n\
             \n\
             {{link}}\n\
             \n\
             If you did not create an account, you can ignore this email.\n\
             \n\
             The {{app_name}} team\n",
            "<p>Hi {{username}},</p>\n\
             <p>Welcome to {{app_name}}! Please confirm your email address to finish setting up \
             your account.</p>\n\
             {{button:Confirm my email}}\n\
             <p>If you did not create an account, you can ignore this email.</p>\n",
        ),
        Template::ResetPassword => (
            "Reset your {{app_name}} password",
            "Hi {{username}},\n\
             \n\
             We received a request to reset the password of your {{app_name}} account \
             ({{email}}). To choose a new password, open this link:\n\
             \n\
             {{link}}\n\
             \n\
             The link expires in one hour. If you did not ask for a new password, you can \
             ignore this email: your password stays as it is.\n\
             \n\
             The {{app_name}} team\n",
            "<p>Hi {{username}},</p>\n\
             <p>We received a request to reset the password of your {{app_name}} account \
             ({{email}}).</p>\n\
             {{button:Choose a new password}}\n\
             <p>The link expires in one hour. If you did not ask for a new password, you can \
             ignore this email: your password stays as it is.</p>\n",
        ),
        Template::PasswordChanged => (
            "Your {{app_name}} password was changed",
            "Hi {{username}},\n\
             \n\
             The password of your {{app_name}} account ({{email}}) was just changed.\n\
             \n\
             If this was you, there is nothing else to do.\n\
             \n\
             If it was not you, reset your password right away with \"Forgot password\" and \
             contact support: someone else may have access to your account.\n\
             \n\
             The {{app_name}} team\n",
            "<p>Hi {{username}},</p>\n\
             <p>The password of your {{app_name}} account ({{email}}) was just changed.</p>\n\
             <p>If this was you, there is nothing else to do.</p>\n\
             <p><strong>If it was not you</strong>, reset your password right away with \
             \u{201c}Forgot password\u{201d} and contact support: someone else may have access \
             to your account.</p>\n",
        ),
    };
    Parts {
        subject: subject.into(),
        text: text.into(),
        html: html_layout(html_body),
    }
}

/// Wraps a built-in HTML body in a simple, mail-client-safe page (inline styles, one column). The
/// body's `{{button:Label}}` becomes a button to `{{link}}` with the link spelt out below it.
fn html_layout(body: &str) -> String {
    const BUTTON: &str = "{{button:";
    let body = match body.find(BUTTON) {
        Some(start) => {
            let end = start + body[start..].find("}}").expect("built-in button closed");
            let label = &body[start + BUTTON.len()..end];
            format!(
                "{before}<p style=\"margin:28px 0;\"><a href=\"{{{{link}}}}\" style=\"display:inline-block;\
                 padding:12px 22px;background:#2563eb;color:#ffffff;text-decoration:none;\
                 border-radius:6px;font-weight:600;\">{label}</a></p>\n\
                 <p style=\"font-size:13px;color:#52606d;\">If the button does not work, paste this \
                 link into your browser:<br><a href=\"{{{{link}}}}\" style=\"color:#2563eb;\
                 word-break:break-all;\">{{{{link}}}}</a></p>\n{after}",
                before = &body[..start],
                after = body[end + 2..].trim_start(),
            )
        }
        None => body.to_owned(),
    };
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, \
         initial-scale=1\"><title>{{{{app_name}}}}</title></head>\n\
         <body style=\"margin:0;padding:24px;background:#f4f5f7;font-family:-apple-system,\
         BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2933;\
         line-height:1.5;\">\n\
         <div style=\"max-width:520px;margin:0 auto;background:#ffffff;border-radius:8px;\
         padding:32px;\">\n\
         {body}\
         <p>The {{{{app_name}}}} team</p>\n\
         </div>\n\
         </body>\n\
         </html>\n"
    )
}

/// Whether the connection to the SMTP server is encrypted, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    /// No TLS: for a relay on the same machine or network, and for tests.
    Plain,
    /// Plain connection upgraded with STARTTLS; delivery fails if the server does not offer it.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// A parsed `smtp_url`.
struct Endpoint {
    security: Security,
    host: String,
    port: u16,
    credentials: Option<(String, SecretString)>,
    /// EHLO name, from the URL path (`smtp://host/ehlo-name`); default: this machine's name.
    hello_name: Option<String>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.security {
            Security::Plain => "smtp",
            Security::StartTls => "smtp+starttls",
            Security::Implicit => "smtps",
        };
        let user = match &self.credentials {
            Some((user, _)) => format!("{user}:[REDACTED]@"),
            None => String::new(),
        };
        write!(f, "{scheme}://{user}{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    fn parse(text: &str) -> Result<Self, MailError> {
        let invalid = |m: &str| MailError::InvalidUrl(m.to_owned());
        // url's own messages name the problem, not the input, so they are safe to show.
        let url = url::Url::parse(text.trim()).map_err(|e| MailError::InvalidUrl(e.to_string()))?;
        let mut tls = None;
        for (key, value) in url.query_pairs() {
            match &*key {
                "tls" if tls.is_none() => tls = Some(value.into_owned()),
                "tls" => return Err(invalid("the tls parameter is given twice")),
                _ => {
                    return Err(MailError::InvalidUrl(format!(
                        "unknown parameter '{key}' (the only one is tls=starttls)"
                    )));
                }
            }
        }
        let security = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => Security::Plain,
            ("smtp" | "smtp+starttls", Some("starttls" | "required")) | ("smtp+starttls", None) => {
                Security::StartTls
            }
            ("smtps", None) => Security::Implicit,
            ("smtp" | "smtp+starttls" | "smtps", Some(other)) => {
                return Err(MailError::InvalidUrl(format!(
                    "tls={other} is not supported here: use smtp+starttls:// (or tls=starttls) \
                     for STARTTLS, smtps:// for implicit TLS"
                )));
            }
            (scheme, _) => {
                return Err(MailError::InvalidUrl(format!(
                    "unknown scheme '{scheme}': use smtp:// (plain), smtp+starttls:// (STARTTLS) \
                     or smtps:// (implicit TLS)"
                )));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("the URL has no host")),
        };
        let port = url.port().unwrap_or(match security {
            Security::Plain => 25,
            Security::StartTls => 587,
            Security::Implicit => 465,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid("the user or password is not valid UTF-8 once decoded"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(invalid("a password is given without a user")),
            (_, None) => {
                return Err(invalid(
                    "a user is given without a password (write user:password@host)",
                ));
            }
            (user, Some(password)) => Some((decode(user)?, SecretString::from(decode(password)?))),
        };
        if credentials.is_some() && security == Security::Plain && !is_loopback(&host) {
            return Err(invalid(
                "a password would cross the network unencrypted: use smtp+starttls:// or \
                 smtps:// (plain smtp:// with a password only to this machine)",
            ));
        }
        let hello_name = match url.path().trim_matches('/') {
            "" => None,
            name if name.contains('/') => {
                return Err(invalid("the path may only hold the EHLO name"));
            }
            name => Some(name.to_owned()),
        };
        Ok(Self {
            security,
            host,
            port,
            credentials,
            hello_name,
        })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let tls_parameters = || {
            TlsParameters::new(self.host.clone())
                .map_err(|e| MailError::InvalidUrl(format!("cannot set up TLS: {e}")))
        };
        let tls = match self.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::Implicit => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        if let Some(name) = &self.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        Ok(builder.build())
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

    fn vars() -> MailVars {
        MailVars {
            username: "alice".into(),
            email: "alice@example.com".into(),
            link: Some("https://acme.test/confirm?confirmation=abc&x=1".into()),
            code: Some("c0de".into()),
        }
    }

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn url_error(url: &str) -> String {
        match Endpoint::parse(url) {
            Ok(e) => panic!("{url} was accepted as {e}"),
            Err(e) => e.to_string(),
        }
    }

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

    #[test]
    fn public_url_loses_its_trailing_slash_and_must_be_http() {
        assert_eq!(mailer(|_| {}).public_url(), "https://acme.test");
        for bad in ["acme.test", "ftp://acme.test", "", "https://acme .test"] {
            let err = Mailer::new(MailSettings {
                public_url: bad.into(),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains("public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn from_must_be_a_mailbox() {
        for bad in ["", "not an address", "Keyway <no-reply>", "a@b@c"] {
            let err = Mailer::new(MailSettings {
                from: bad.into(),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains("mail_from"), "{bad}: {err}");
        }
        mailer(|s| s.from = "no-reply@acme.test".into());
    }

    #[test]
    fn zero_attempts_and_empty_app_name_are_refused() {
        assert!(
            Mailer::new(MailSettings {
                attempts: 0,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            Mailer::new(MailSettings {
                app_name: " ".into(),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn builtin_templates_render_every_part() {
        let m = mailer(|_| {});
        for t in Template::ALL {
            let r = m.inner.render(t, &vars());
            for part in [&r.subject, &r.text, &r.html] {
                assert!(!part.contains("{{"), "{t:?} left a variable: {part}");
            }
            assert!(r.subject.contains("Acme"), "{t:?}: {}", r.subject);
            assert!(r.text.contains("Hi alice,"), "{t:?}");
            assert!(r.html.contains("Hi alice,"), "{t:?}");
            assert!(r.html.starts_with("<!DOCTYPE html>"), "{t:?}");
            // The code is for custom templates: no built-in shows it.
            assert!(!r.text.contains("c0de") && !r.html.contains("c0de"));
        }
    }

    /// Every built-in mail, byte for byte, pinned in `src/auth/mail/snapshots/` (the values try to
    /// break out of the markup: the HTML part must escape them, the text part must not).
    #[test]
    fn builtin_mails_render_as_pinned() {
        let m = mailer(|s| s.app_name = "Acme <b>&\"'</b>".into());
        let v = MailVars {
            username: "<script>alert('x')</script> & \"q\"".into(),
            ..vars()
        };
        for t in Template::ALL {
            let r = m.inner.render(t, &v);
            insta::with_settings!({
                snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/src/auth/mail/snapshots"),
                prepend_module_to_snapshot => false,
            }, {
                insta::assert_snapshot!(
                    t.name(),
                    format!("subject: {}\n--- text\n{}--- html\n{}[end]", r.subject, r.text, r.html)
                );
            });
        }
    }

    #[test]
    fn confirmation_and_reset_carry_the_link() {
        let m = mailer(|_| {});
        let link = "https://acme.test/confirm?confirmation=abc&x=1";
        for t in [Template::EmailConfirmation, Template::ResetPassword] {
            let r = m.inner.render(t, &vars());
            assert!(r.text.contains(link), "{t:?} text");
            assert!(
                r.html
                    .contains("href=\"https://acme.test/confirm?confirmation=abc&amp;x=1\""),
                "{t:?} html: {}",
                r.html
            );
        }
        let reset = m.inner.render(Template::ResetPassword, &vars());
        assert!(reset.text.contains("expires in one hour"));
        assert!(reset.text.contains("ignore this email"));
        assert!(reset.html.contains("expires in one hour"));
        assert_eq!(reset.subject, "Reset your Acme password");
    }

    #[test]
    fn password_changed_says_what_to_do_if_it_was_not_you() {
        let r = mailer(|_| {})
            .inner
            .render(Template::PasswordChanged, &vars());
        assert_eq!(r.subject, "Your Acme password was changed");
        assert!(r.text.contains("was just changed"));
        assert!(r.text.contains("contact support"));
        assert!(r.text.contains("reset your password"));
        assert!(r.html.contains("contact support"));
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let v = MailVars {
            username: "<b>x</b> & \"q\" 'a'".into(),
            ..vars()
        };
        let r = mailer(|_| {}).inner.render(Template::EmailConfirmation, &v);
        assert!(r.text.contains("Hi <b>x</b> & \"q\" 'a',"), "{}", r.text);
        assert!(
            r.html
                .contains("Hi &lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot; &#39;a&#39;,"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<b>x</b>"));
    }

    #[test]
    fn missing_variables_render_as_nothing() {
        let r = mailer(|_| {}).inner.render(
            Template::EmailConfirmation,
            &MailVars {
                username: "bob".into(),
                ..Default::default()
            },
        );
        assert!(r.text.contains("this link:\n\n\n"), "{}", r.text);
        assert!(r.html.contains("href=\"\""));
    }

    #[test]
    fn line_breaks_cannot_escape_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password-changed.subject"),
            "Hello {{username}}\n",
        )
        .unwrap();
        let m = mailer(|s| s.templates_dir = Some(dir.path().to_owned()));
        let v = MailVars {
            username: "eve\r\nBcc: victim@example.com".into(),
            ..vars()
        };
        let r = m.inner.render(Template::PasswordChanged, &v);
        assert!(!r.subject.contains(['\r', '\n']), "{:?}", r.subject);
        assert_eq!(r.subject, "Hello eve  Bcc: victim@example.com");
    }

    #[test]
    fn render_replaces_variables_with_spaces_and_keeps_other_text() {
        let out = render("a {{ x }} b {{y}} {c} }} {{", |n| format!("<{n}>"));
        assert_eq!(out, "a <x> b <y> {c} }} {{");
    }

    #[test]
    fn check_template_refuses_unknown_variables_and_open_braces() {
        assert!(
            check_template("Hi {{ username }}, {{link}} {{code}} {{email}} {{app_name}}").is_ok()
        );
        let err = check_template("Hi {{user_name}}").unwrap_err();
        assert!(
            err.contains("user_name") && err.contains("{{username}}"),
            "{err}"
        );
        assert!(check_template("Hi {{username").is_err());
        for t in Template::ALL {
            let p = builtin(t);
            for part in [p.subject, p.text, p.html] {
                check_template(&part).unwrap_or_else(|e| panic!("{t:?}: {e}"));
            }
        }
    }

    #[test]
    fn overrides_replace_only_the_parts_present() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "reset-password.subject",
            "  {{app_name}}: new password for {{username}}  \n",
        );
        write("reset-password.txt", "Code {{code}} or {{link}}\n");
        write("email-confirmation.html", "<p>{{username}} {{link}}</p>");
        write("README.md", "not a template, ignored");
        let m = mailer(|s| s.templates_dir = Some(dir.path().to_owned()));
        let v = MailVars {
            username: "<i>".into(),
            ..vars()
        };

        let reset = m.inner.render(Template::ResetPassword, &v);
        assert_eq!(reset.subject, "Acme: new password for <i>");
        assert_eq!(
            reset.text,
            "Code c0de or https://acme.test/confirm?confirmation=abc&x=1\n"
        );
        assert!(
            reset.html.contains("expires in one hour"),
            "built-in html kept"
        );

        let confirm = m.inner.render(Template::EmailConfirmation, &v);
        assert_eq!(confirm.subject, "Confirm your email for Acme");
        assert_eq!(
            confirm.html,
            "<p>&lt;i&gt; https://acme.test/confirm?confirmation=abc&amp;x=1</p>"
        );
        assert!(confirm.text.contains("Welcome to Acme!"));

        let default = mailer(|_| {});
        assert_eq!(
            m.inner.render(Template::PasswordChanged, &v),
            default.inner.render(Template::PasswordChanged, &v)
        );
    }

    #[test]
    fn broken_overrides_stop_start_up() {
        let cases = [
            ("reset-password.txt", "Hi {{nmae}}", "nmae"),
            (
                "reset_password.txt",
                "Hi",
                "unknown template 'reset_password'",
            ),
            ("password-changed.subject", "\n", "one non-empty line"),
            (
                "password-changed.subject",
                "two\nlines",
                "one non-empty line",
            ),
            ("email-confirmation.html", "{{link", "not closed"),
        ];
        for (file, text, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), text).unwrap();
            let err = Mailer::new(MailSettings {
                templates_dir: Some(dir.path().to_owned()),
                ..Default::default()
            })
            .unwrap_err();
            let shown = err.to_string();
            assert!(matches!(err, MailError::Template { .. }), "{shown}");
            assert!(shown.contains(expected) && shown.contains(file), "{shown}");
        }
        let err = Mailer::new(MailSettings {
            templates_dir: Some("/nonexistent/keyway-templates".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/keyway-templates"),
            "{err}"
        );
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
    fn smtp_url_schemes() {
        let e = endpoint("smtp://127.0.0.1:2525");
        assert_eq!(
            (e.security, e.host.as_str(), e.port),
            (Security::Plain, "127.0.0.1", 2525)
        );
        assert!(e.credentials.is_none() && e.hello_name.is_none());
        assert_eq!(endpoint("smtp://relay.internal").port, 25);

        let e = endpoint("smtp+starttls://mail.example.com");
        assert_eq!((e.security, e.port), (Security::StartTls, 587));
        let e = endpoint("smtp://mail.example.com:2587?tls=starttls");
        assert_eq!((e.security, e.port), (Security::StartTls, 2587));
        assert_eq!(
            endpoint("smtp://mail.example.com?tls=required").security,
            Security::StartTls
        );

        let e = endpoint("smtps://mail.example.com");
        assert_eq!((e.security, e.port), (Security::Implicit, 465));
        assert_eq!(endpoint("smtp://[::1]:25").host, "::1");
        assert_eq!(
            endpoint("smtp://localhost/keyway.example.com")
                .hello_name
                .as_deref(),
            Some("keyway.example.com")
        );
    }

    #[test]
    fn smtp_url_credentials_are_decoded_and_never_shown() {
        let e = endpoint("smtps://apikey:p%40ss%3Aw0rd%2F@smtp.example.com:465");
        let (user, password) = e.credentials.as_ref().unwrap();
        assert_eq!(user, "apikey");
        assert_eq!(password.expose_secret(), "p@ss:w0rd/");
        assert_eq!(
            e.to_string(),
            "smtps://apikey:[REDACTED]@smtp.example.com:465"
        );

        let m = mailer(|s| {
            s.smtp_url = Some("smtp+starttls://me%40acme.test:hunter2@smtp.acme.test".into())
        });
        assert!(m.is_configured());
        let shown = format!("{m:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("me@acme.test"), "{shown}");
    }

    #[test]
    fn bad_smtp_urls_are_refused_without_echoing_them() {
        for (url, expected) in [
            ("http://mail.example.com", "unknown scheme 'http'"),
            ("smtp+ssl://mail.example.com", "unknown scheme 'smtp+ssl'"),
            ("mail.example.com:25", "unknown scheme"),
            (
                "smtp://mail.example.com?tls=opportunistic",
                "tls=opportunistic",
            ),
            ("smtps://mail.example.com?tls=starttls", "tls=starttls"),
            (
                "smtp://mail.example.com?tsl=starttls",
                "unknown parameter 'tsl'",
            ),
            ("smtp://user@mail.example.com", "without a password"),
            ("smtp://:secret@127.0.0.1", "without a user"),
            ("smtp://u:secret@mail.example.com", "unencrypted"),
            ("smtp://", "no host"),
            ("not a url", "relative URL"),
            ("smtp://h/a/b", "EHLO"),
        ] {
            let err = url_error(url);
            assert!(err.contains(expected), "{url}: {err}");
            assert!(!err.contains("secret"), "{url}: {err}");
            assert!(err.starts_with("smtp_url: "), "{url}: {err}");
        }
        // Plain SMTP with a password is fine to this machine (a local relay).
        assert!(
            endpoint("smtp://u:secret@localhost:1025")
                .credentials
                .is_some()
        );
        assert!(
            endpoint("smtp://u:secret@127.0.0.1:1025")
                .credentials
                .is_some()
        );
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
}
