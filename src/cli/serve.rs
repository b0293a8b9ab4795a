//! `keyway serve`: the server, with the demo account and the start-up warnings an operator needs.

use anyhow::{Context, anyhow, bail};
use secrecy::ExposeSecret;
use std::sync::Arc;

use keyway::auth::Auth;
use keyway::auth::admin::AdminNewUser;
use keyway::domain::{Email, Password, Username};
use keyway::{App, Config};

use super::start_error;

const DEMO_USERNAME: &str = "appsmith_user";
const DEMO_PASSWORD: &str = "appsmith_password";
const DEMO_EMAIL: &str = "appsmith_user@example.com";

pub async fn run(mut config: Config, demo: bool) -> anyhow::Result<()> {
    if config.mail.smtp_url.is_none() {
        // A demo is development by definition; anywhere else, reset links in the log would let
        // whoever reads the log into any account, so that takes an explicit choice.
        config.mail.to_log |= demo;
        if !config.mail.to_log {
            bail!(NO_SMTP);
        }
    }
    let listener = tokio::net::TcpListener::bind(config.transport.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.transport.bind))?;
    let app = App::build(config.clone(), listener)
        .await
        .map_err(|e| start_error(&e))?;
    let addr = app.local_addr()?;
    if demo {
        ensure_demo_account(app.auth()).await?;
    }
    // Checked against the address actually bound (port 0 resolved).
    let mut bound = config.clone();
    bound.transport.bind = addr;
    if let Some(why) = super::doctor::public_url_mismatch(&bound) {
        tracing::warn!("{why}");
    }
    if !app.auth().mailer().is_configured() {
        tracing::warn!(
            "no SMTP server configured (smtp_url): account emails are written to this log instead \
             of being sent, links and codes included — fine for development, not for production"
        );
    }
    let limits = &config.auth.rate_limits;
    if !limits.relay_clients.is_empty() {
        let relays: Vec<String> = limits.relay_clients.iter().map(|n| n.to_string()).collect();
        // Listed so an operator sees which addresses get per-user limits, a wider door than the rest.
        tracing::info!(
            relay_clients = relays.join(", "),
            relay_rate_limit_max = limits.relay_max,
            rate_limits = limits.enabled,
            "relay clients: route limits count per user, under a cap per route and address"
        );
    }
    // Handlers go in before the start line: whoever waits for that line may signal at once.
    let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
    println!(
        "Keyway listening on http://{addr} (database {})",
        keyway::store::redact_url(config.database_url.expose_secret())
    );
    if demo {
        println!(
            "Demo account: {DEMO_USERNAME} / {DEMO_PASSWORD}. Try:\n  \
             curl -s http://{addr}/api/auth/local -H 'Content-Type: application/json' \
             -d '{{\"identifier\":\"{DEMO_USERNAME}\",\"password\":\"{DEMO_PASSWORD}\"}}'\n  \
             curl -s http://{addr}/api/users/me -H \"Authorization: Bearer $JWT\""
        );
    }
    app.run(shutdown).await?;
    println!("Keyway stopped");
    Ok(())
}

/// Why `serve` does not start without SMTP, and the two ways forward.
const NO_SMTP: &str = "no SMTP server configured: set smtp_url (KEYWAY_SMTP_URL or \
     KEYWAY_SMTP_URL_FILE) so account mail is delivered, or, for development only, mail_to_log = true \
     (KEYWAY_MAIL_TO_LOG=true) to write it, reset links included, to the log instead";

async fn ensure_demo_account(auth: &Arc<Auth>) -> anyhow::Result<()> {
    if auth
        .admin()
        .find_by_username(DEMO_USERNAME)
        .await
        .map_err(super::core_error)?
        .is_some()
    {
        return Ok(());
    }
    let new = AdminNewUser {
        username: Username::parse(DEMO_USERNAME).map_err(anyhow::Error::msg)?,
        email: Email::parse(DEMO_EMAIL).map_err(anyhow::Error::msg)?,
        password: Password::parse(DEMO_PASSWORD).map_err(anyhow::Error::msg)?,
        role: Some("authenticated".into()),
        confirmed: true,
        blocked: false,
    };
    auth.admin()
        .create_user(new)
        .await
        .map_err(|e| anyhow!("cannot create the demo account: {e}"))?;
    tracing::warn!("demo account {DEMO_USERNAME} created: do not use --demo in production");
    Ok(())
}

/// Registers the SIGINT and SIGTERM handlers now and returns a future that completes on the first
/// of them. Registering is done eagerly: a signal that arrives before the future is first polled
/// would otherwise kill the process without a graceful shutdown.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
