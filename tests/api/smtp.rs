//! A real SMTP server for the mail tests, and the tests that prove Keyway's mail pipeline against it.
//!
//! [`SmtpSink`] runs aiosmtpd (from the virtualenv `scripts/test.sh` creates in `e2e/.venv`) with its
//! Maildir handler on a port the system chose, and reads back what it received:
//! `SmtpSink::start().await`, point a `Mailer` (or the app's `smtp_url`) at [`SmtpSink::url`], then
//! `sink.wait_for("alice@example.com")`. That a mail was *not* sent is shown by [`SmtpSink::settle`],
//! never by waiting a while and finding the mailbox empty.

use crate::helpers::TestApp;
use keyway::auth::mail::{MailError, MailSettings, MailVars, Mailer, Template};
use mail_parser::{Addr, Address, MessageParser, PartType};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Bound on waiting for the server to listen and for a message to arrive: generous for a loaded
/// two-core machine, short enough that a hang fails the test instead of stalling the suite.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// aiosmtpd's server on a port the system picks (port 0), which it prints once it listens: nothing
/// can take the port between choosing and binding it. The fixed hostname spares a DNS lookup.
const SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

async def main(maildir):
    handler = Mailbox(maildir)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="sink.keyway.test"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main(sys.argv[1]))
"#;

/// One message as the SMTP server stored it, bodies decoded.
#[derive(Debug, Clone)]
pub struct Email {
    /// Address of the first `To:` recipient.
    pub to: String,
    /// `From:` as `Name <address>`, or the bare address when it has no name.
    pub from: String,
    pub subject: String,
    /// The text/plain part; empty when the message has none.
    pub text: String,
    /// The text/html part; empty when the message has none.
    pub html: String,
}

/// aiosmtpd on 127.0.0.1, storing every message it accepts in a Maildir. Killed when dropped.
pub struct SmtpSink {
    port: u16,
    dir: TempDir,
    /// Sentinels sent so far, to give each its own account.
    sentinels: AtomicUsize,
    _server: Child,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/.venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run the tests with scripts/test.sh, which creates that virtualenv \
             with the pinned aiosmtpd",
            python.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("aiosmtpd.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut server = Command::new(&python)
            .args(["-c", SERVER])
            .arg(dir.path().join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let mut stdout = BufReader::new(server.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = tokio::time::timeout(WAIT, stdout.read_line(&mut line)).await;
        let port = match read {
            Ok(Ok(_)) => line.trim().parse::<u16>().ok(),
            _ => None,
        };
        let Some(port) = port else {
            let _ = server.start_kill();
            let _ = server.wait().await;
            panic!(
                "aiosmtpd did not report its port within {WAIT:?} (is e2e/.venv complete? re-run \
                 scripts/test.sh); it printed {line:?} and logged:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        };
        Self {
            port,
            dir,
            sentinels: AtomicUsize::new(0),
            _server: server,
            _stdout: stdout,
        }
    }

    /// The `smtp_url` that reaches this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn all(&self) -> Vec<Email> {
        let new = self.dir.path().join("maildir").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", new.display()))
            .map(|entry| entry.expect("maildir entry").path())
            .collect();
        // Maildir names start with the delivery time.
        files.sort();
        files
            .iter()
            .map(|path| {
                let raw = std::fs::read(path).expect("stored message");
                parse(&raw).unwrap_or_else(|| panic!("cannot parse {}", path.display()))
            })
            .collect()
    }

    /// The first message to `to` (compared without case), waiting for it up to ten seconds.
    pub async fn wait_for(&self, to: &str) -> Email {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if let Some(found) = all.iter().find(|m| m.to.eq_ignore_ascii_case(to)) {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no message to {to} within {WAIT:?}; received: {:?}",
                all.iter().map(|m| &m.to).collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl SmtpSink {
    /// The first `n` messages, waiting for them up to ten seconds.
    pub async fn wait_until(&self, n: usize) -> Vec<Email> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) within {WAIT:?}, not {n}: {:?}",
                all.len(),
                all.iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every message `app` sent before this call, sentinel excepted, once none can still arrive.
    ///
    /// A sentinel proves the mail path works: a reset mail for an account of its own, asked for after
    /// whatever the test did, and waited for. Its arrival alone would prove nothing about earlier
    /// mails: Keyway has no mail queue, each background mail is its own task that starts after a
    /// random 20–50 ms, so a sentinel can overtake a mail asked for before it. So this also waits
    /// until the app's mailer has nothing in flight. A background mail is counted before the request
    /// that causes it is answered, so once the test holds that answer, the mail is counted or done;
    /// and aiosmtpd stores a message before acknowledging it. An empty answer therefore means
    /// nothing was sent, not that it has not arrived yet.
    pub async fn settle(&self, app: &TestApp) -> Vec<Email> {
        let n = self.sentinels.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("sentinel{n}");
        let address = format!("{name}@example.com");
        app.create_user(&name, |_| {}).await;
        let res = app
            .post("/api/auth/forgot-password", json!({ "email": address }))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "the sentinel's reset request");
        self.wait_for(&address).await;
        wait_idle(app).await;
        self.all()
            .into_iter()
            .filter(|m| !m.to.starts_with("sentinel"))
            .collect()
    }
}

/// Waits (bounded) until `app` has no background mail in flight: each has been delivered or given
/// up on.
pub async fn wait_idle(app: &TestApp) {
    let mailer = app.auth.mailer();
    let deadline = Instant::now() + WAIT;
    while mailer.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} mail(s) still in flight after {WAIT:?}",
            mailer.in_flight()
        );
        tokio::time::sleep(POLL).await;
    }
}

fn first<'a, 'x>(address: Option<&'a Address<'x>>) -> Option<&'a Addr<'x>> {
    address.and_then(|a| a.first())
}

fn parse(raw: &[u8]) -> Option<Email> {
    let message = MessageParser::default().parse(raw)?;
    let to = first(message.to())?.address()?.to_owned();
    let from = first(message.from())?;
    let from = match (from.name(), from.address()) {
        (Some(name), Some(address)) => format!("{name} <{address}>"),
        (None, Some(address)) => address.to_owned(),
        _ => return None,
    };
    // Only parts of the right type: mail-parser would otherwise convert one into the other.
    let text = match message.text_part(0).map(|p| &p.body) {
        Some(PartType::Text(t)) => t.to_string(),
        _ => String::new(),
    };
    let html = match message.html_part(0).map(|p| &p.body) {
        Some(PartType::Html(h)) => h.to_string(),
        _ => String::new(),
    };
    Some(Email {
        to,
        from,
        subject: message.subject().unwrap_or_default().to_owned(),
        text,
        html,
    })
}

// ---- the mail pipeline against the real server ----

const FROM: &str = "Keyway Tëst <no-reply@keyway.test>";
const LINK: &str =
    "http://127.0.0.1:8080/api/auth/email-confirmation?confirmation=Zx9_ab-12&next=%2Fhome";

fn settings(smtp_url: Option<String>) -> MailSettings {
    MailSettings {
        smtp_url: smtp_url.map(SecretString::from),
        from: FROM.into(),
        app_name: "Keyway Tëst".into(),
        ..Default::default()
    }
}

fn vars(username: &str, email: &str) -> MailVars {
    MailVars {
        username: username.into(),
        email: email.into(),
        link: Some(LINK.into()),
        code: Some("Zx9_ab-12".into()),
    }
}

/// What the HTML part shows for [`LINK`]: the same URL, HTML-escaped.
fn escaped_link() -> String {
    LINK.replace('&', "&amp;")
}

#[tokio::test]
async fn each_template_is_delivered_with_both_parts() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(settings(Some(sink.url()))).unwrap();
    assert!(mailer.is_configured());

    let cases = [
        (
            Template::EmailConfirmation,
            "confirm@example.com",
            "Confirm your email for Keyway Tëst",
        ),
        (
            Template::ResetPassword,
            "reset@example.com",
            "Reset your Keyway Tëst password",
        ),
        (
            Template::PasswordChanged,
            "changed@example.com",
            "Your Keyway Tëst password was changed",
        ),
    ];
    for (template, to, _) in cases {
        mailer.send(to, template, &vars("alice", to)).await.unwrap();
    }

    let received = sink.wait_until(cases.len()).await;
    for (template, to, subject) in cases {
        let mail = received
            .iter()
            .find(|m| m.to == to)
            .unwrap_or_else(|| panic!("{template:?}: nothing to {to}"));
        assert_eq!(mail.to, to, "{template:?}");
        assert_eq!(mail.from, FROM, "{template:?}");
        assert_eq!(mail.subject, subject, "{template:?}");
        assert!(
            mail.text.contains("Hi alice,"),
            "{template:?}: {}",
            mail.text
        );
        assert!(
            mail.html.contains("Hi alice,"),
            "{template:?}: {}",
            mail.html
        );
        if template == Template::PasswordChanged {
            assert!(mail.text.contains("contact support"), "{}", mail.text);
            assert!(!mail.text.contains(LINK) && !mail.html.contains(&escaped_link()));
        } else {
            assert!(mail.text.contains(LINK), "{template:?}: {}", mail.text);
            assert!(
                mail.html.contains(&format!("href=\"{}\"", escaped_link())),
                "{template:?}: {}",
                mail.html
            );
        }
        if template == Template::ResetPassword {
            assert!(mail.text.contains("expires in one hour"), "{}", mail.text);
        }
    }
    assert_eq!(sink.all().len(), 3, "one message per send, no duplicates");
}

#[tokio::test]
async fn usernames_are_escaped_in_the_html_part_only() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(settings(Some(sink.url()))).unwrap();
    let to = "bold@example.com";
    mailer
        .send(to, Template::EmailConfirmation, &vars("<b>x</b>", to))
        .await
        .unwrap();

    let mail = sink.wait_for(to).await;
    assert!(mail.text.contains("Hi <b>x</b>,"), "{}", mail.text);
    assert!(
        mail.html.contains("Hi &lt;b&gt;x&lt;/b&gt;,"),
        "{}",
        mail.html
    );
    assert!(!mail.html.contains("<b>x</b>"), "{}", mail.html);
}

#[tokio::test]
async fn template_overrides_are_delivered_with_the_code() {
    let sink = SmtpSink::start().await;
    let templates = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(templates.path().join(name), text).unwrap();
    write(
        "reset-password.subject",
        "{{app_name}} code for {{username}}\n",
    );
    write("reset-password.txt", "Your code is {{code}}.\n{{link}}\n");
    write(
        "reset-password.html",
        "<p>Your code is <strong>{{code}}</strong>.</p><p><a href=\"{{link}}\">Reset</a></p>",
    );
    let mailer = Mailer::new(MailSettings {
        templates_dir: Some(templates.path().to_owned()),
        ..settings(Some(sink.url()))
    })
    .unwrap();
    let to = "code@example.com";
    mailer
        .send(to, Template::ResetPassword, &vars("carol", to))
        .await
        .unwrap();

    let mail = sink.wait_for(to).await;
    assert_eq!(mail.subject, "Keyway Tëst code for carol");
    assert_eq!(
        mail.text.trim_end(),
        format!("Your code is Zx9_ab-12.\n{LINK}")
    );
    assert!(
        mail.html.contains("<strong>Zx9_ab-12</strong>"),
        "{}",
        mail.html
    );
    assert!(
        mail.html.contains(&format!("href=\"{}\"", escaped_link())),
        "{}",
        mail.html
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_after_the_configured_attempts() {
    // Nothing listens there, so every connection is refused at once.
    let (_held, port) = crate::helpers::refused_port();
    let url = format!("smtp://127.0.0.1:{port}");
    for attempts in [1, 3] {
        let mailer = Mailer::new(MailSettings {
            attempts,
            ..settings(Some(url.clone()))
        })
        .unwrap();
        let err = mailer
            .send(
                "nobody@example.com",
                Template::PasswordChanged,
                &vars("dave", "nobody@example.com"),
            )
            .await
            .unwrap_err();
        match &err {
            MailError::Delivery {
                to,
                attempts: made,
                permanent,
                ..
            } => {
                assert_eq!(to, "nobody@example.com");
                assert_eq!(*made, attempts, "{err}");
                assert!(!permanent, "a refused connection may pass: retried");
            }
            other => panic!("expected a delivery error, got {other:?}"),
        }
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("Zx9_ab-12"),
            "no link or code in errors: {shown}"
        );
    }
}

/// `smtp+starttls://` means STARTTLS required: against a server that does not offer it (aiosmtpd
/// without TLS), the message is not sent in the clear, the error says why, and it is not retried.
#[tokio::test]
async fn starttls_required_refuses_a_server_without_it() {
    let sink = SmtpSink::start().await;
    let port = sink.url().rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("smtp+starttls://127.0.0.1:{port}"),
        format!("smtp://127.0.0.1:{port}?tls=starttls"),
    ] {
        let mailer = Mailer::new(settings(Some(url.clone()))).unwrap();
        let err = mailer
            .send(
                "secret@example.com",
                Template::ResetPassword,
                &vars("erin", "secret@example.com"),
            )
            .await
            .unwrap_err();
        match &err {
            MailError::Delivery {
                attempts,
                permanent,
                source,
                ..
            } => {
                assert_eq!(*attempts, 1, "{url}: {err}");
                assert!(*permanent, "{url}: a missing STARTTLS does not pass: {err}");
                let why = source.to_string();
                assert!(why.contains("STARTTLS"), "{url}: {why}");
            }
            other => panic!("{url}: expected a delivery error, got {other:?}"),
        }
    }
    // The refused sends have returned; a plain send after them arrives, and is all that did.
    let plain = Mailer::new(settings(Some(sink.url()))).unwrap();
    plain
        .send(
            "sentinel@example.com",
            Template::PasswordChanged,
            &vars("sam", "sentinel@example.com"),
        )
        .await
        .unwrap();
    sink.wait_for("sentinel@example.com").await;
    let received: Vec<_> = sink.all().into_iter().map(|m| m.to).collect();
    assert_eq!(received, ["sentinel@example.com"]);
}

#[tokio::test]
async fn without_smtp_sending_succeeds_and_sends_nothing() {
    let mailer = Mailer::new(settings(None)).unwrap();
    assert!(!mailer.is_configured());
    for template in [
        Template::EmailConfirmation,
        Template::ResetPassword,
        Template::PasswordChanged,
    ] {
        mailer
            .send("dev@example.com", template, &vars("dev", "dev@example.com"))
            .await
            .unwrap();
    }
}
