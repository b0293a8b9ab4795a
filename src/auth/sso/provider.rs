//! The OpenID Connect side of a provider: discovery (cached, refreshed when a key is missing), the
//! authorization URL, the code exchange and the `id_token` checks.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, Scope, SignatureVerificationError,
    TokenResponse,
};
use secrecy::ExposeSecret;
use std::time::Instant;

use super::{Asserted, METADATA_TTL, Pending, Protocol, Provider, REDISCOVER_MIN, Sso, SsoError};
use crate::error;

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
            .map_err(|e| SsoError::Unreachable(error::chain(&e)))?;
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    pub(super) fn secret(&self) -> Option<ClientSecret> {
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
    pub(super) async fn authorization_url(
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
    pub(super) async fn identify(
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
            .map_err(|e| SsoError::Exchange(error::chain(&e)))?;
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
                .map_err(|e| SsoError::UserApi(error::chain(&e)))?;
            asserted.email = info.email().map(|e| e.to_lowercase());
            asserted.email_verified = info.email_verified().unwrap_or(false);
            if asserted.username.is_none() {
                asserted.username = info.preferred_username().map(|u| u.to_string());
            }
        }
        Ok(asserted)
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
