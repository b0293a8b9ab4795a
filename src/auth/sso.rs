//! Single sign-on: "Continue with Google" and friends, in the shape of Strapi ≥ 5.53's connect flow.
//!
//! 1. [`Auth::sso_begin`] (`GET /api/connect/:provider`) sends the browser to the provider with an
//!    authorization-code request: PKCE (S256), a `state` and, for OpenID Connect, a `nonce`. What the
//!    callback needs is stored by the hash of `state`, bound to the browser by the hash of a cookie.
//! 2. [`Auth::sso_callback`] (`GET /api/connect/:provider/callback`) takes that record out (once),
//!    checks the browser, trades the code for tokens, verifies who the provider vouches for (an
//!    OpenID Connect `id_token`: signature against the provider's keys, `iss`, `aud`, `exp`, `nonce`;
//!    GitHub: its user API) and sends the browser to the front end with a one-time code. No provider
//!    token ever travels in a URL.
//! 3. [`Auth::sso_finish`] (`GET /api/auth/:provider/callback?code=`) trades that code, from the same
//!    browser, for a session: the account linked to the identity, else one linked or created by the
//!    rules below, then `{jwt, user}` like a login.
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

use crate::error::OrInternal;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::sessions::hash_token;
use super::{Auth, ClientInfo, Issued, MSG_BLOCKED, document_id, random_id};
use crate::domain::Email;
use crate::error::{Error, Result};
use crate::outbound::{HttpClient, OutboundError};
use crate::store::{Identity, NewUser, SsoStage, SsoState, StoreError, User};

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

/// A client made from discovered metadata: the authorization endpoint is known, the token and userinfo
/// endpoints may be.
type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

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

impl Provider {
    /// The provider's metadata: cached, or fetched when missing, old, or (`stale`) believed out of
    /// date because it lacked a key.
    async fn metadata(
        &self,
        sso: &Sso,
        issuer: &str,
        stale: bool,
    ) -> std::result::Result<CoreProviderMetadata, SsoError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, at)) = cached.as_ref() {
            let age = at.elapsed();
            if age < METADATA_TTL && !(stale && age >= REDISCOVER_MIN) {
                return Ok(metadata.clone());
            }
        }
        let issuer =
            IssuerUrl::new(issuer.to_owned()).map_err(|e| SsoError::Config(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &sso.client())
            .await
            .map_err(|e| SsoError::Unreachable(error_chain(&e)))?;
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn secret(&self) -> Option<ClientSecret> {
        self.settings
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_owned()))
    }

    /// Scopes to ask for besides the `openid` the OpenID Connect client always adds.
    fn extra_scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.settings
            .scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
            .map(|s| Scope::new(s.clone()))
    }

    /// An OpenID Connect client for this provider as `metadata` describes it.
    fn oidc_client(&self, metadata: CoreProviderMetadata) -> OidcClient {
        // Basic authentication is the default; some providers only take the secret in the body.
        let basic_only = metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|methods| !methods.iter().any(|m| m.as_ref() == "client_secret_basic"));
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.secret(),
        )
        .set_redirect_uri(self.redirect_uri.clone());
        if basic_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        }
    }

    /// Where to send the browser.
    async fn authorization_url(
        &self,
        sso: &Sso,
        state: String,
        nonce: String,
        challenge: PkceCodeChallenge,
    ) -> std::result::Result<url::Url, SsoError> {
        match &self.settings.protocol {
            Protocol::Oidc { issuer } => {
                let client = self.oidc_client(self.metadata(sso, issuer, false).await?);
                let (url, _, _) = client
                    .authorize_url(
                        CoreAuthenticationFlow::AuthorizationCode,
                        move || CsrfToken::new(state),
                        move || Nonce::new(nonce),
                    )
                    .add_scopes(self.extra_scopes())
                    .set_pkce_challenge(challenge)
                    .url();
                Ok(url)
            }
            Protocol::GitHub { auth_url, .. } => {
                let auth_url =
                    AuthUrl::new(auth_url.clone()).map_err(|e| SsoError::Config(e.to_string()))?;
                let client =
                    oauth2::basic::BasicClient::new(ClientId::new(self.settings.client_id.clone()))
                        .set_auth_uri(auth_url)
                        .set_redirect_uri(self.redirect_uri.clone());
                let (url, _) = client
                    .authorize_url(move || CsrfToken::new(state))
                    .add_scopes(self.settings.scopes.iter().map(|s| Scope::new(s.clone())))
                    .set_pkce_challenge(challenge)
                    .url();
                Ok(url)
            }
        }
    }

    /// Trades the code and finds out who signed in.
    async fn identify(
        &self,
        sso: &Sso,
        code: String,
        pending: &Pending,
    ) -> std::result::Result<Asserted, SsoError> {
        match &self.settings.protocol {
            Protocol::Oidc { issuer } => self.identify_oidc(sso, issuer, code, pending).await,
            Protocol::GitHub {
                token_url, api_url, ..
            } => {
                self.identify_github(sso, token_url, api_url, code, pending)
                    .await
            }
        }
    }

    async fn identify_oidc(
        &self,
        sso: &Sso,
        issuer: &str,
        code: String,
        pending: &Pending,
    ) -> std::result::Result<Asserted, SsoError> {
        let http = sso.client();
        let oidc = self.oidc_client(self.metadata(sso, issuer, false).await?);
        let token = oidc
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SsoError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| SsoError::Exchange(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| SsoError::IdToken("the token answer has no id_token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let verify = |oidc: &OidcClient| {
            let verifier = oidc
                .id_token_verifier()
                .set_allowed_algs(ASYMMETRIC.iter().cloned());
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims: CoreIdTokenClaims = match verify(&oidc) {
            Ok(claims) => claims,
            // The provider may have rotated its keys since we fetched them: fetch once more.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let fresh = self.oidc_client(self.metadata(sso, issuer, true).await?);
                verify(&fresh).map_err(|e| SsoError::IdToken(e.to_string()))?
            }
            Err(e) => return Err(SsoError::IdToken(e.to_string())),
        };
        let mut asserted = Asserted {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_lowercase()),
            email_verified: claims.email_verified().unwrap_or(false),
            username: claims.preferred_username().map(|u| u.to_string()),
        };
        // Providers that keep the email out of the id_token serve it at the userinfo endpoint.
        if asserted.email.is_none()
            && let Ok(request) =
                oidc.user_info(token.access_token().clone(), Some(claims.subject().clone()))
        {
            let info: CoreUserInfoClaims = request
                .request_async(&http)
                .await
                .map_err(|e| SsoError::UserApi(error_chain(&e)))?;
            asserted.email = info.email().map(|e| e.to_lowercase());
            asserted.email_verified = info.email_verified().unwrap_or(false);
            if asserted.username.is_none() {
                asserted.username = info.preferred_username().map(|u| u.to_string());
            }
        }
        Ok(asserted)
    }

    async fn identify_github(
        &self,
        sso: &Sso,
        token_url: &str,
        api_url: &str,
        code: String,
        pending: &Pending,
    ) -> std::result::Result<Asserted, SsoError> {
        let token_url =
            TokenUrl::new(token_url.to_owned()).map_err(|e| SsoError::Config(e.to_string()))?;
        let mut client =
            oauth2::basic::BasicClient::new(ClientId::new(self.settings.client_id.clone()))
                .set_token_uri(token_url)
                .set_redirect_uri(self.redirect_uri.clone())
                // GitHub documents the client credentials as form parameters.
                .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = self.secret() {
            client = client.set_client_secret(secret);
        }
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&sso.client())
            .await
            .map_err(|e| SsoError::Exchange(error_chain(&e)))?;
        let access = token.access_token().secret();
        let api = api_url.trim_end_matches('/');
        let user: GitHubUser = github_get(sso, &format!("{api}/user"), access).await?;
        let emails: Vec<GitHubEmail> =
            github_get(sso, &format!("{api}/user/emails"), access).await?;
        // Only the primary address, and only once GitHub has verified it.
        let primary = emails.into_iter().find(|e| e.primary && e.verified);
        Ok(Asserted {
            subject: user.id.to_string(),
            email_verified: primary.is_some(),
            email: primary.map(|e| e.email.to_lowercase()),
            username: Some(user.login),
        })
    }
}

/// Signature algorithms accepted on an `id_token`: the asymmetric ones providers use. Symmetric ones
/// (signed with the client secret) are left out on purpose.
const ASYMMETRIC: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

async fn github_get<T: serde::de::DeserializeOwned>(
    sso: &Sso,
    url: &str,
    access_token: &str,
) -> std::result::Result<T, SsoError> {
    let request = hyper::http::Request::get(url)
        .header("Authorization", format!("Bearer {access_token}"))
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .body(Vec::new())
        .map_err(|e| SsoError::Config(e.to_string()))?;
    let response = sso
        .http
        .send(request)
        .await
        .map_err(|e| SsoError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(SsoError::UserApi(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    serde_json::from_slice(response.body()).map_err(|e| SsoError::UserApi(format!("{url}: {e}")))
}

/// An error with its causes, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `url` with `pairs` added to its query.
fn with_query(mut url: url::Url, pairs: &[(&str, &str)]) -> String {
    url.query_pairs_mut().extend_pairs(pairs);
    url.into()
}

/// An OAuth error code as the provider sent it, if it looks like one (RFC 6749 allows only these
/// characters); anything else becomes `oauth_error`.
fn error_code(raw: &str) -> &str {
    let plausible = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if plausible { raw } else { "oauth_error" }
}

/// Whether `browser` (the cookie's value) is the one whose hash the sign-in stored.
fn same_browser(stored_hash: &str, browser: Option<&str>) -> bool {
    browser.is_some_and(|b| bool::from(hash_token(b).as_bytes().ct_eq(stored_hash.as_bytes())))
}

/// A username from the provider's hint or the email's local part: letters, digits, `.`, `_`, `-`,
/// 3 to 40 characters; after the first attempt a random suffix makes it unique.
fn username_candidate(asserted: &Asserted, attempt: u32) -> String {
    let hint = asserted
        .username
        .as_deref()
        .or(asserted.email.as_deref())
        .unwrap_or("user");
    let local = hint.split('@').next().unwrap_or(hint);
    let mut name: String = local
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect();
    if name.chars().count() < 3 {
        name = format!("user{name}");
    }
    if attempt > 0 {
        use rand::RngExt;
        let suffix: u32 = rand::rng().random_range(1000..10_000);
        name = format!("{name}-{suffix}");
    }
    name
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Auth {
    pub fn sso(&self) -> &Sso {
        &self.sso
    }

    /// `GET /api/connect/:provider`: where to send the browser. `browser` is the value of the cookie
    /// that binds this sign-in to the browser. A provider that cannot be reached sends the browser
    /// back to the front end with the error, as the callback would.
    #[tracing::instrument(skip_all, fields(provider = name))]
    pub async fn sso_begin(
        &self,
        name: &str,
        callback: Option<&str>,
        browser: &str,
    ) -> Result<String> {
        let provider = self.sso.provider(name)?;
        let callback = self.sso.callback(provider, callback)?;
        let state = random_id(32);
        let nonce = random_id(32);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let url = match provider
            .authorization_url(&self.sso, state.clone(), nonce.clone(), challenge)
            .await
        {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(error = %e, "single sign-on could not start");
                return Ok(with_query(
                    callback,
                    &[
                        ("error", "oauth_error"),
                        ("error_description", e.description()),
                    ],
                ));
            }
        };
        let pending = Pending {
            verifier: verifier.secret().clone(),
            nonce,
            callback: callback.into(),
        };
        self.store
            .put_sso_state(&SsoState {
                hash: hash_token(&state),
                stage: SsoStage::Authorize,
                provider: name.to_owned(),
                browser: hash_token(browser),
                payload: serde_json::to_string(&pending).map_err(Error::internal)?,
                expires_at: self.now_millis() + millis(AUTHORIZE_TTL),
            })
            .await
            .or_internal()?;
        Ok(url.into())
    }

    /// `GET /api/connect/:provider/callback`: where to send the browser next, always the front end,
    /// with `?code=` on success and `?error=&error_description=` otherwise.
    #[tracing::instrument(skip_all, fields(provider = name))]
    pub async fn sso_callback(
        &self,
        name: &str,
        params: CallbackParams,
        browser: Option<&str>,
        client: &ClientInfo,
    ) -> Result<String> {
        let provider = self.sso.provider(name)?;
        let fallback = provider.settings.callback.clone();
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= MAX_PARAM);
        let taken = match state {
            Some(state) => self
                .store
                .take_sso_state(&hash_token(state), SsoStage::Authorize, self.now_millis())
                .await
                .or_internal()?,
            None => None,
        };
        let Some(taken) = taken.filter(|t| t.provider == name) else {
            self.audit("sso_failure", None, client, Some("unknown or used state"))
                .await;
            return Ok(with_query(
                fallback,
                &[
                    ("error", "invalid_state"),
                    (
                        "error_description",
                        "The sign-in expired or was already used",
                    ),
                ],
            ));
        };
        let pending: Pending = serde_json::from_str(&taken.payload).map_err(Error::internal)?;
        let callback = url::Url::parse(&pending.callback).unwrap_or(fallback);
        if !same_browser(&taken.browser, browser) {
            self.audit("sso_failure", None, client, Some("another browser"))
                .await;
            return Ok(with_query(
                callback,
                &[
                    ("error", "invalid_state"),
                    (
                        "error_description",
                        "The sign-in was started in another browser",
                    ),
                ],
            ));
        }
        if let Some(error) = params.error.as_deref() {
            // The provider's own refusal (the user cancelled, consent denied…), passed on.
            let description: String = params
                .error_description
                .as_deref()
                .unwrap_or("The sign-in provider refused the sign-in")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            return Ok(with_query(
                callback,
                &[
                    ("error", error_code(error)),
                    ("error_description", &description),
                ],
            ));
        }
        let Some(code) = params
            .code
            .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM)
        else {
            return Ok(with_query(
                callback,
                &[
                    ("error", "oauth_error"),
                    ("error_description", "The sign-in provider sent no code"),
                ],
            ));
        };
        let asserted = match provider.identify(&self.sso, code, &pending).await {
            Ok(asserted) => asserted,
            Err(e) => {
                tracing::warn!(error = %e, "single sign-on refused");
                let detail = format!("{name}: {}", e.description());
                self.audit("sso_failure", None, client, Some(&detail)).await;
                return Ok(with_query(
                    callback,
                    &[
                        ("error", "oauth_error"),
                        ("error_description", e.description()),
                    ],
                ));
            }
        };
        let code = random_id(32);
        self.store
            .put_sso_state(&SsoState {
                hash: hash_token(&code),
                stage: SsoStage::Finish,
                provider: name.to_owned(),
                browser: taken.browser,
                payload: serde_json::to_string(&asserted).map_err(Error::internal)?,
                expires_at: self.now_millis() + millis(FINISH_TTL),
            })
            .await
            .or_internal()?;
        Ok(with_query(callback, &[("code", &code)]))
    }

    /// `GET /api/auth/:provider/callback?code=`: the session for the person the provider vouched for.
    #[tracing::instrument(skip_all, fields(provider = name))]
    pub async fn sso_finish(
        &self,
        name: &str,
        code: Option<&str>,
        browser: Option<&str>,
        client: ClientInfo,
    ) -> Result<Issued> {
        // Strapi answers this for any provider, configured or not, and so does Keyway: without a
        // configured provider there can be no completed sign-in either.
        let refused = || Error::Application(MSG_NO_PROVIDER_SESSION.into());
        self.sso.provider(name).map_err(|_| refused())?;
        let code = code
            .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM)
            .ok_or_else(refused)?;
        let taken = self
            .store
            .take_sso_state(&hash_token(code), SsoStage::Finish, self.now_millis())
            .await
            .or_internal()?
            .filter(|t| t.provider == name && same_browser(&t.browser, browser))
            .ok_or_else(refused)?;
        let asserted: Asserted = serde_json::from_str(&taken.payload).map_err(Error::internal)?;
        let ticket = self.caches.ticket();
        let user = self.sso_account(name, &asserted, &client).await?;
        if user.blocked {
            self.audit("login_failure", Some(user.id), &client, Some("blocked"))
                .await;
            return Err(Error::Application(MSG_BLOCKED.into()));
        }
        let detail = format!("single sign-on with {name}");
        self.audit("login_success", Some(user.id), &client, Some(&detail))
            .await;
        let (jwt, refresh_token) = self.start_session(&user, ticket, None, client).await?;
        Ok(Issued {
            jwt: Some(jwt),
            refresh_token,
            user,
        })
    }

    /// The account of the person the provider vouched for: the linked one, else an existing account
    /// with the same verified email when linking is allowed and its address was proven here, else a
    /// new one when registration is open.
    async fn sso_account(
        &self,
        name: &str,
        asserted: &Asserted,
        client: &ClientInfo,
    ) -> Result<User> {
        if let Some(user) = self.linked_user(name, &asserted.subject).await? {
            return Ok(user);
        }
        // An address the provider has not verified proves nothing: an account made from it, or
        // linked by it, would let whoever typed it at the provider into the owner's account later.
        let email = asserted
            .email
            .as_deref()
            .filter(|_| asserted.email_verified)
            .and_then(|e| Email::parse(e).ok())
            .ok_or_else(|| Error::Application(MSG_NO_EMAIL.into()))?;
        let now = self.now_millis();
        let identity = Identity {
            provider: name.to_owned(),
            subject: asserted.subject.clone(),
            user_id: 0,
            email: Some(email.as_str().to_owned()),
            created_at: now,
        };
        if let Some(existing) = self
            .store
            .user_by_email(email.as_str())
            .await
            .or_internal()?
        {
            if existing.blocked {
                return Err(Error::Application(MSG_BLOCKED.into()));
            }
            // Linking needs the account's own address proven too: else it may be a squatter's,
            // registered with the victim's address, whose password would keep working.
            let proven = existing.confirmed && self.settings.email_confirmation;
            if !(self.sso.link_verified_email && proven) {
                if self.sso.link_verified_email {
                    self.audit(
                        "sso_failure",
                        Some(existing.id),
                        client,
                        Some("unproven address"),
                    )
                    .await;
                }
                return Err(Error::Application(MSG_EMAIL_TAKEN.into()));
            }
            let identity = Identity {
                user_id: existing.id,
                ..identity
            };
            match self.store.link_identity(&identity).await {
                // A twin sign-in linked it first: same outcome.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(Error::internal(e)),
            }
            self.audit("sso_linked", Some(existing.id), client, Some(name))
                .await;
            return self
                .store
                .user_by_id(existing.id)
                .await
                .or_internal()?
                .ok_or_else(|| Error::Application(MSG_NO_PROVIDER_SESSION.into()));
        }
        if !self.settings.allow_register {
            return Err(Error::Application(MSG_REGISTER_UNAVAILABLE.into()));
        }
        let role = self
            .store
            .role_by_name_or_kind(&self.settings.default_role)
            .await
            .or_internal()?
            .ok_or_else(|| Error::Application("Impossible to find the default role".into()))?;
        for attempt in 0..5 {
            let new = NewUser {
                document_id: document_id(),
                username: username_candidate(asserted, attempt),
                email: email.as_str().to_owned(),
                provider: name.to_owned(),
                password_hash: None,
                // The provider verified the address (checked above).
                confirmed: true,
                blocked: false,
                role_id: role.id,
                now,
            };
            match self.store.create_user_with_identity(new, &identity).await {
                Ok(user) => {
                    self.audit("sso_registered", Some(user.id), client, Some(name))
                        .await;
                    return Ok(user);
                }
                Err(StoreError::Conflict) => {
                    // A twin first sign-in may have won the race: its account is this one.
                    if let Some(user) = self.linked_user(name, &asserted.subject).await? {
                        return Ok(user);
                    }
                    if self
                        .store
                        .user_by_email(email.as_str())
                        .await
                        .or_internal()?
                        .is_some()
                    {
                        return Err(Error::Application(MSG_EMAIL_TAKEN.into()));
                    }
                    // Else the username was taken: the next attempt adds a suffix.
                }
                Err(e) => return Err(Error::internal(e)),
            }
        }
        Err(Error::internal("no free username after five attempts"))
    }

    async fn linked_user(&self, provider: &str, subject: &str) -> Result<Option<User>> {
        match self
            .store
            .identity_owner(provider, subject)
            .await
            .or_internal()?
        {
            Some(id) => self.store.user_by_id(id).await.or_internal(),
            None => Ok(None),
        }
    }

    /// The identities linked to an account (`keyway user show`).
    pub async fn identities(&self, user_id: i64) -> Result<Vec<Identity>> {
        self.store.identities_of_user(user_id).await.or_internal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asserted(username: Option<&str>, email: Option<&str>) -> Asserted {
        Asserted {
            subject: "s".into(),
            email: email.map(str::to_owned),
            email_verified: true,
            username: username.map(str::to_owned),
        }
    }

    #[test]
    fn usernames_come_from_the_hint_or_the_email_and_stay_plain() {
        assert_eq!(
            username_candidate(&asserted(Some("octocat"), None), 0),
            "octocat"
        );
        assert_eq!(
            username_candidate(&asserted(Some("ann@corp.example"), None), 0),
            "ann"
        );
        assert_eq!(
            username_candidate(&asserted(None, Some("bo.b+x@mail.example")), 0),
            "bo.bx"
        );
        assert_eq!(username_candidate(&asserted(None, None), 0), "user");
        assert_eq!(username_candidate(&asserted(Some("al"), None), 0), "useral");
        let retry = username_candidate(&asserted(Some("octocat"), None), 1);
        assert!(
            retry.starts_with("octocat-") && retry.len() == "octocat-".len() + 4,
            "{retry}"
        );
        let long = "x".repeat(300);
        assert_eq!(
            username_candidate(&asserted(Some(&long), None), 0).len(),
            40
        );
    }

    #[test]
    fn provider_error_codes_pass_only_when_plausible() {
        assert_eq!(error_code("access_denied"), "access_denied");
        assert_eq!(error_code("<script>"), "oauth_error");
        assert_eq!(error_code(""), "oauth_error");
        assert_eq!(error_code(&"a".repeat(65)), "oauth_error");
    }

    #[test]
    fn the_browser_must_present_the_cookie_whose_hash_was_stored() {
        let stored = hash_token("cookie-value");
        assert!(same_browser(&stored, Some("cookie-value")));
        assert!(!same_browser(&stored, Some("other")));
        assert!(!same_browser(&stored, None));
    }

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

    #[test]
    fn query_pairs_are_appended_and_escaped() {
        let url = url::Url::parse("https://app.example/cb?keep=1").unwrap();
        assert_eq!(
            with_query(url, &[("error", "x y"), ("error_description", "a&b")]),
            "https://app.example/cb?keep=1&error=x+y&error_description=a%26b"
        );
    }
}
