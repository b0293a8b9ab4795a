//! Single sign-on: "Continue with Google" and friends, in the shape of Strapi ≥ 5.53's connect flow.
//!
//! 1. [`SingleSignOn::begin`] (`GET /api/connect/:provider`) sends the browser to the provider with
//!    an authorization-code request: PKCE (S256), a `state` and, for OpenID Connect, a `nonce`. What
//!    the callback needs is stored by the hash of `state`, bound to the browser by the hash of a
//!    cookie.
//! 2. [`SingleSignOn::callback`] (`GET /api/connect/:provider/callback`) takes that record out
//!    (once), checks the browser, trades the code for tokens, verifies who the provider vouches for
//!    (an OpenID Connect `id_token`: signature against the provider's keys, `iss`, `aud`, `exp`,
//!    `nonce`; GitHub: its user API) and sends the browser to the front end with a one-time code. No
//!    provider token ever travels in a URL.
//! 3. [`SingleSignOn::finish`] (`GET /api/auth/:provider/callback?code=`) trades that code, from the
//!    same browser, for a session: the account linked to the identity, else one linked or created by
//!    the rules below, then `{jwt, user}` like a login.
//!
//! Accounts: an identity (provider, subject) belongs to one account. A first sign-in uses only an
//! email the provider says it verified (else it is refused), and creates an account whose `provider`
//! is the provider's name, if registration is open. An existing account with the same email is linked
//! only when the operator allows it and that account's address was proven to Keyway too (confirmed,
//! with `email_confirmation` on; without it, "confirmed" proves nothing); otherwise the sign-in is
//! refused. So nobody takes over an account by registering its address at some provider, nor keeps
//! a way into the victim's account by registering the victim's address here first (a password the
//! squatter knows, or an identity the squatter owns).
//!
//! The protocol work is the `openidconnect` and `oauth2` crates'; their HTTP goes through
//! [`crate::outbound::HttpClient`], which never follows redirects.
//!
//! Here: the settings, the configured providers and the callback rules. `flow.rs` has the three legs,
//! as the methods of the [`SingleSignOn`] service ([`crate::auth::Auth::single_sign_on`]),
//! `provider.rs` the OpenID Connect protocol work, `github.rs` GitHub's OAuth app and user API,
//! `linking.rs` which account a sign-in becomes, `settings.rs` the declared settings and the
//! providers' presets.

mod flow;
mod github;
mod linking;
mod provider;
pub mod settings;

pub use flow::SingleSignOn;

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{HttpRequest, RedirectUrl};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::outbound::{HttpClient, OutboundError};

pub const MSG_PROVIDER_DISABLED: &str = "This provider is disabled";
pub const MSG_INVALID_CALLBACK: &str = "Invalid callback URL provided";
pub const MSG_NO_PROVIDER_SESSION: &str =
    "OAuth authentication requires a completed provider session";
pub const MSG_REGISTER_UNAVAILABLE: &str = "Register action is actually not available.";
pub const MSG_NO_EMAIL: &str = "Email was not available.";
pub const MSG_EMAIL_TAKEN: &str = "Email is already taken.";

/// How long a browser may spend at the provider.
const AUTHORIZE_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the front end has to trade the one-time code.
const FINISH_TTL: Duration = Duration::from_secs(2 * 60);
/// Provider metadata (endpoints and signing keys) is fetched again after this long, or sooner when
/// an `id_token` names a key we do not know, but never twice within [`REDISCOVER_MIN`].
const METADATA_TTL: Duration = Duration::from_secs(3600);
const REDISCOVER_MIN: Duration = Duration::from_secs(30);
/// Outbound requests to a provider: deadline and largest answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
const PROVIDER_MAX_BYTES: usize = 1024 * 1024;
/// Longest single-use key or provider parameter looked at; anything longer is refused unread.
const MAX_PARAM: usize = 2048;

/// The single sign-on configuration, validated by `config`.
#[derive(Debug, Clone, Default)]
pub struct SsoSettings {
    pub providers: Vec<ProviderSettings>,
    /// Front-end callbacks accepted in `?callback=` besides each provider's own.
    pub callback_allowlist: Vec<url::Url>,
    /// Link an identity to the existing account with the same, provider-verified, email.
    pub link_verified_email: bool,
    /// This server's public URL: the provider sends the browser back to
    /// `<public_url>/api/connect/<name>/callback`.
    pub public_url: String,
}

#[derive(Clone)]
pub struct ProviderSettings {
    /// The name in the routes and in `user.provider`: `[a-z0-9_-]+`.
    pub name: String,
    /// What the sign-in button says after "Continue with".
    pub display_name: String,
    pub protocol: Protocol,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub scopes: Vec<String>,
    /// Where the browser goes after the provider, unless the sign-in named another allowed one.
    pub callback: url::Url,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("callback", &self.callback.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Any OpenID Connect provider, found by discovery from its issuer.
    Oidc { issuer: String },
    /// GitHub's OAuth 2 apps: no `id_token`; who signed in comes from its REST API.
    GitHub {
        auth_url: String,
        token_url: String,
        api_url: String,
    },
}

/// Why a provider's answer was not accepted. Logged, never shown: the browser gets a generic
/// `error_description`.
#[derive(Debug, thiserror::Error)]
enum SsoError {
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("token exchange refused: {0}")]
    Exchange(String),
    #[error("id_token refused: {0}")]
    IdToken(String),
    #[error("user API: {0}")]
    UserApi(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl SsoError {
    /// The `error_description` the front end gets.
    fn description(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "The sign-in provider could not be reached",
            Self::Exchange(_) => "The sign-in provider did not accept the sign-in",
            Self::IdToken(_) => "The sign-in provider's answer could not be verified",
            Self::UserApi(_) => "The sign-in provider did not say who signed in",
            Self::Config(_) => "Single sign-on is misconfigured on the server",
        }
    }
}

/// What the authorization leg keeps for the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    nonce: String,
    callback: String,
}

/// Who the provider vouched for, kept for the finishing leg.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Asserted {
    pub subject: String,
    /// Lower-cased.
    pub email: Option<String>,
    pub email_verified: bool,
    /// A username hint: `preferred_username`, GitHub's login.
    pub username: Option<String>,
}

/// The query of the provider's callback.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The configured providers and what they need at run time.
pub struct Sso {
    providers: Vec<Provider>,
    allowlist: Vec<url::Url>,
    link_verified_email: bool,
    http: HttpClient,
}

struct Provider {
    settings: ProviderSettings,
    redirect_uri: RedirectUrl,
    /// OpenID Connect metadata, fetched at first use rather than at start-up, so a provider that is
    /// down does not keep Keyway from starting.
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl Sso {
    pub fn new(settings: SsoSettings) -> std::result::Result<Self, String> {
        let base = settings.public_url.trim_end_matches('/');
        let providers = settings
            .providers
            .into_iter()
            .map(|p| {
                let redirect = format!("{base}/api/connect/{}/callback", p.name);
                let redirect_uri =
                    RedirectUrl::new(redirect.clone()).map_err(|e| format!("{redirect}: {e}"))?;
                Ok(Provider {
                    settings: p,
                    redirect_uri,
                    metadata: Mutex::new(None),
                })
            })
            .collect::<std::result::Result<_, String>>()?;
        Ok(Self {
            providers,
            allowlist: settings.callback_allowlist,
            link_verified_email: settings.link_verified_email,
            http: HttpClient::new(PROVIDER_TIMEOUT, PROVIDER_MAX_BYTES),
        })
    }

    /// None configured.
    pub fn disabled() -> Self {
        Self {
            providers: Vec::new(),
            allowlist: Vec::new(),
            link_verified_email: false,
            http: HttpClient::new(PROVIDER_TIMEOUT, PROVIDER_MAX_BYTES),
        }
    }

    /// `(name, display name)` of each provider, in configuration order: the hosted page's buttons.
    pub fn buttons(&self) -> impl Iterator<Item = (&str, &str)> {
        self.providers
            .iter()
            .map(|p| (p.settings.name.as_str(), p.settings.display_name.as_str()))
    }

    fn provider(&self, name: &str) -> Result<&Provider> {
        self.providers
            .iter()
            .find(|p| p.settings.name == name)
            .ok_or_else(|| Error::Application(MSG_PROVIDER_DISABLED.into()))
    }

    /// The front-end callback for this sign-in: the provider's own unless `requested` names another
    /// whose origin and path are the provider's or on the allow-list (Strapi compares the same two).
    fn callback(&self, provider: &Provider, requested: Option<&str>) -> Result<url::Url> {
        let Some(raw) = requested else {
            return Ok(provider.settings.callback.clone());
        };
        let invalid = || {
            Error::ValidationWith(
                MSG_INVALID_CALLBACK.into(),
                serde_json::json!({ "callback": raw }),
            )
        };
        let url = url::Url::parse(raw).map_err(|_| invalid())?;
        let same =
            |allowed: &url::Url| allowed.origin() == url.origin() && allowed.path() == url.path();
        let allowed = matches!(url.scheme(), "http" | "https")
            && (same(&provider.settings.callback) || self.allowlist.iter().any(same));
        if allowed { Ok(url) } else { Err(invalid()) }
    }

    /// The HTTP client in the shape the `openidconnect` and `oauth2` crates take.
    fn client(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<openidconnect::HttpResponse, OutboundError>,
                > + Send,
        >,
    > + use<> {
        let http = self.http.clone();
        move |request| {
            let http = http.clone();
            Box::pin(async move { http.send(request).await })
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sso_with(callback: &str, allow: &[&str]) -> (Sso, ProviderSettings) {
        let provider = ProviderSettings {
            name: "test".into(),
            display_name: "Test".into(),
            protocol: Protocol::Oidc {
                issuer: "https://idp.example".into(),
            },
            client_id: "keyway".into(),
            client_secret: None,
            scopes: vec!["openid".into()],
            callback: url::Url::parse(callback).unwrap(),
        };
        let sso = Sso::new(SsoSettings {
            providers: vec![provider.clone()],
            callback_allowlist: allow.iter().map(|u| url::Url::parse(u).unwrap()).collect(),
            link_verified_email: false,
            public_url: "https://auth.example".into(),
        })
        .unwrap();
        (sso, provider)
    }

    #[test]
    fn callbacks_must_match_origin_and_path_of_an_allowed_one() {
        let (sso, _) = sso_with(
            "https://app.example/connect/test/redirect",
            &["http://localhost:3000/done"],
        );
        let p = sso.provider("test").unwrap();
        let ok = |u: &str| sso.callback(p, Some(u)).is_ok();
        assert!(ok("https://app.example/connect/test/redirect?next=/x"));
        assert!(ok("http://localhost:3000/done"));
        assert!(!ok("https://app.example/elsewhere"));
        assert!(!ok("https://evil.example/connect/test/redirect"));
        assert!(
            !ok("http://app.example/connect/test/redirect"),
            "scheme is part of the origin"
        );
        assert!(!ok("https://app.example:444/connect/test/redirect"));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("not a url"));
        let Err(Error::ValidationWith(message, details)) =
            sso.callback(p, Some("https://x.example/"))
        else {
            panic!("expected a validation error");
        };
        assert_eq!(message, MSG_INVALID_CALLBACK);
        assert_eq!(details["callback"], "https://x.example/");
        assert_eq!(
            sso.callback(p, None).unwrap().as_str(),
            "https://app.example/connect/test/redirect"
        );
        assert!(
            matches!(sso.provider("nope"), Err(Error::Application(m)) if m == MSG_PROVIDER_DISABLED)
        );
    }

    #[test]
    fn redirect_uris_live_under_the_public_url() {
        let (sso, _) = sso_with("https://app.example/cb", &[]);
        assert_eq!(
            sso.provider("test").unwrap().redirect_uri.as_str(),
            "https://auth.example/api/connect/test/callback"
        );
    }
}
