//! `smtp_url`: which SMTP server, how the connection is secured, who logs in, and the transport
//! built from it. Nothing here shows the password: errors name the problem, never the URL.

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

use super::MailError;

/// Longest wait for one SMTP command, connecting included (lettre's default is a minute).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

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
pub(super) struct Endpoint {
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
    pub(super) fn parse(text: &str) -> Result<Self, MailError> {
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

    pub(super) fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
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
}
