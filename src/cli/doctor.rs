//! `keyway doctor`: reads the configuration as `serve` does, without serving, and prints one line per
//! check — `ok`, `warn` or `fail` — so a deployment can be checked before it takes traffic. Exit status
//! 1 when any check fails.

use keyway::Config;
use secrecy::ExposeSecret;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, text: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        self.failed |= level == Level::Fail;
        println!("{tag}  {check:<16} {}", text.as_ref());
    }
}

pub async fn run(config: &Config) -> ExitCode {
    let mut r = Report { failed: false };
    let shown = keyway::store::redact_url(config.database_url.expose_secret());

    // Opening checks reachability, the file's permissions (SQLite refuses readable files) and
    // applies pending migrations, as every admin command does.
    let store = match keyway::store::connect(&config.database_url, &config.database).await {
        Ok(store) => {
            r.line(
                Level::Ok,
                "database",
                format!("{shown}: reachable, schema current"),
            );
            Some(store)
        }
        Err(e) => {
            r.line(Level::Fail, "database", super::open_error(&e).to_string());
            None
        }
    };

    match (&config.tokens.secret, &store) {
        (Some(_), _) => r.line(
            Level::Ok,
            "signing keys",
            "HS256 mode: tokens are signed with jwt_secret (rotate by changing the secret)",
        ),
        (None, Some(store)) => {
            match keyway::auth::tokens::Keys::describe(store.as_ref(), &config.tokens).await {
                Ok(keys) => match keys.iter().find(|k| k.signing) {
                    Some(k) => r.line(
                        Level::Ok,
                        "signing keys",
                        format!(
                            "{} key {} signs ({} key(s) stored)",
                            k.alg,
                            k.kid,
                            keys.len()
                        ),
                    ),
                    None => r.line(
                        Level::Warn,
                        "signing keys",
                        "none yet: `keyway serve` generates one at its first start",
                    ),
                },
                Err(e) => r.line(
                    Level::Fail,
                    "signing keys",
                    format!("cannot read them: {e}"),
                ),
            }
        }
        (None, None) => r.line(
            Level::Fail,
            "signing keys",
            "unknown: the database is not usable",
        ),
    }

    match (&config.mail.smtp_url, config.mail.to_log) {
        (Some(url), _) => r.line(
            Level::Ok,
            "mail",
            format!("SMTP {}", keyway::store::redact_url(url.expose_secret())),
        ),
        (None, true) => r.line(
            Level::Warn,
            "mail",
            "mail_to_log: account mail, reset links included, goes to the log (development only)",
        ),
        (None, false) => r.line(
            Level::Fail,
            "mail",
            "no smtp_url and mail_to_log is off: `serve` will not start",
        ),
    }

    match public_url_mismatch(config) {
        None => r.line(
            Level::Ok,
            "public_url",
            format!(
                "{} (bind {})",
                config.mail.public_url, config.transport.bind
            ),
        ),
        Some(why) => r.line(Level::Warn, "public_url", why),
    }

    let transport = &config.transport;
    let proxies = if transport.trusted_proxies.is_empty() {
        "no trusted_proxies: clients are the connection's address (forwarding headers ignored)"
            .into()
    } else {
        let list: Vec<String> = transport
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        format!(
            "trusted_proxies {} report the client in {}",
            list.join(", "),
            match transport.forwarded_header {
                keyway::config::ForwardedHeader::XForwardedFor => "X-Forwarded-For",
                keyway::config::ForwardedHeader::Forwarded => "Forwarded",
            }
        )
    };
    r.line(Level::Ok, "proxies", proxies);

    let limits = &config.auth.rate_limits;
    if !limits.relay_clients.is_empty() {
        let list: Vec<String> = limits.relay_clients.iter().map(|n| n.to_string()).collect();
        // A relay gets a far larger allowance than anyone else: worth a look at every check-up.
        r.line(
            if limits.enabled {
                Level::Ok
            } else {
                Level::Warn
            },
            "relay clients",
            format!(
                "{} count route limits per user, at most {} per route and window{}",
                list.join(", "),
                limits.relay_max,
                if limits.enabled {
                    ""
                } else {
                    " (but rate limits are off)"
                }
            ),
        );
    }

    let cors = if transport.cors_origins.is_empty() {
        "no browser origin may call the API (cors_origins empty)".into()
    } else {
        format!(
            "browser origins allowed: {}",
            transport.cors_origins.join(", ")
        )
    };
    r.line(Level::Ok, "cors", cors);

    if r.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Why `public_url` likely does not reach this server, when no reverse proxy is configured to explain
/// the difference: links in mails (reset, confirmation) would point elsewhere. `None` when it looks
/// right, or when a proxy is configured (the public address is then the proxy's).
pub fn public_url_mismatch(config: &Config) -> Option<String> {
    if !config.transport.trusted_proxies.is_empty() {
        return None;
    }
    let public = &config.mail.public_url;
    let Ok(url) = url::Url::parse(public) else {
        return Some(format!("public_url '{public}' is not a URL"));
    };
    let port = url.port_or_known_default();
    let host_ip: Option<std::net::IpAddr> = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .map(|h| if h == "localhost" { "127.0.0.1" } else { h })
        .and_then(|h| h.parse().ok());
    let bind = config.transport.bind;
    if port != Some(bind.port()) && bind.port() != 0 {
        return Some(format!(
            "public_url {public} names port {} but Keyway listens on {bind} and no trusted_proxies \
             are set: links in mails will not reach it",
            port.map_or("none".into(), |p| p.to_string())
        ));
    }
    if let Some(ip) = host_ip
        && ip.is_loopback()
        && !bind.ip().is_loopback()
    {
        return Some(format!(
            "public_url {public} is a loopback address but Keyway listens on {bind} for other \
             machines: links in mails will point at the reader's own machine"
        ));
    }
    None
}
