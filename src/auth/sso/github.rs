//! GitHub's OAuth apps: no `id_token`, so who signed in comes from its REST API (the user, and the
//! primary address only once GitHub has verified it).

use openidconnect::{
    AuthType, AuthorizationCode, ClientId, OAuth2TokenResponse, PkceCodeVerifier, TokenUrl,
};
use serde::Deserialize;

use super::{Asserted, Pending, Provider, Sso, SsoError};
use crate::error;

impl Provider {
    pub(super) async fn identify_github(
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
            .map_err(|e| SsoError::Exchange(error::chain(&e)))?;
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
