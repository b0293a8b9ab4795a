//! The three legs of a sign-in, as methods of the [`SingleSignOn`] service
//! ([`Auth::single_sign_on`]): begin (to the provider), callback (back from it, to the front end
//! with a one-time code) and finish (the code traded for a session).

use openidconnect::PkceCodeChallenge;
use subtle::ConstantTimeEq;

use super::{
    AUTHORIZE_TTL, Asserted, CallbackParams, FINISH_TTL, MAX_PARAM, MSG_NO_PROVIDER_SESSION,
    Pending, millis,
};
use crate::auth::sessions::hash_token;
use crate::auth::{Auth, ClientInfo, Issued, MSG_BLOCKED, random_id};
use crate::error::{Error, OrInternal, Result};
use crate::store::{SsoStage, SsoState};

/// The single sign-on service of an [`Auth`]: what the connect routes and the provider callback
/// ask of the core. The configured providers ([`Sso`](super::Sso)) stay inside the core; the
/// hosted pages see only their buttons. `auth` is visible to `linking.rs`, which decides the
/// account a sign-in becomes.
pub struct SingleSignOn<'a> {
    pub(super) auth: &'a Auth,
}

/// `url` with `pairs` added to its query.
fn with_query(mut url: url::Url, pairs: &[(&str, &str)]) -> String {
    url.query_pairs_mut().extend_pairs(pairs);
    url.into()
}

/// Where a refused sign-in sends the browser: `url` with the OAuth-style `error` and
/// `error_description` the app's callback reads.
fn refusal_url(url: url::Url, error: &str, description: &str) -> String {
    with_query(url, &[("error", error), ("error_description", description)])
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

impl Auth {
    /// Single sign-on through the configured providers: the three legs of a sign-in.
    pub fn single_sign_on(&self) -> SingleSignOn<'_> {
        SingleSignOn { auth: self }
    }
}

impl<'a> SingleSignOn<'a> {
    /// `(name, display name)` of each configured provider, in configuration order: the hosted
    /// login page's buttons.
    pub(crate) fn buttons(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.auth.sso.buttons()
    }

    /// `GET /api/connect/:provider`: where to send the browser. `browser` is the value of the cookie
    /// that binds this sign-in to the browser. A provider that cannot be reached sends the browser
    /// back to the front end with the error, as the callback would.
    #[tracing::instrument(skip_all, fields(provider = name))]
    pub async fn begin(&self, name: &str, callback: Option<&str>, browser: &str) -> Result<String> {
        let provider = self.auth.sso.provider(name)?;
        let callback = self.auth.sso.callback(provider, callback)?;
        let state = random_id(32);
        let nonce = random_id(32);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let url = match provider
            .authorization_url(&self.auth.sso, state.clone(), nonce.clone(), challenge)
            .await
        {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(error = %e, "single sign-on could not start");
                return Ok(refusal_url(callback, "oauth_error", e.description()));
            }
        };
        let pending = Pending {
            verifier: verifier.secret().clone(),
            nonce,
            callback: callback.into(),
        };
        self.auth
            .store
            .put_sso_state(&SsoState {
                hash: hash_token(&state),
                stage: SsoStage::Authorize,
                provider: name.to_owned(),
                browser: hash_token(browser),
                payload: serde_json::to_string(&pending).map_err(Error::internal)?,
                expires_at: self.auth.now_millis() + millis(AUTHORIZE_TTL),
            })
            .await
            .or_internal()?;
        Ok(url.into())
    }

    /// `GET /api/connect/:provider/callback`: where to send the browser next, always the front end,
    /// with `?code=` on success and `?error=&error_description=` otherwise.
    #[tracing::instrument(skip_all, fields(provider = name))]
    pub async fn callback(
        &self,
        name: &str,
        params: CallbackParams,
        browser: Option<&str>,
        client: &ClientInfo,
    ) -> Result<String> {
        let provider = self.auth.sso.provider(name)?;
        let fallback = provider.settings.callback.clone();
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= MAX_PARAM);
        let taken = match state {
            Some(state) => self
                .auth
                .store
                .take_sso_state(
                    &hash_token(state),
                    SsoStage::Authorize,
                    self.auth.now_millis(),
                )
                .await
                .or_internal()?,
            None => None,
        };
        let Some(taken) = taken.filter(|t| t.provider == name) else {
            return Ok(self
                .refused(
                    client,
                    "unknown or used state",
                    fallback,
                    "invalid_state",
                    "The sign-in expired or was already used",
                )
                .await);
        };
        let pending: Pending = serde_json::from_str(&taken.payload).map_err(Error::internal)?;
        let callback = url::Url::parse(&pending.callback).unwrap_or(fallback);
        if !same_browser(&taken.browser, browser) {
            return Ok(self
                .refused(
                    client,
                    "another browser",
                    callback,
                    "invalid_state",
                    "The sign-in was started in another browser",
                )
                .await);
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
            return Ok(refusal_url(callback, error_code(error), &description));
        }
        let Some(code) = params
            .code
            .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM)
        else {
            return Ok(refusal_url(
                callback,
                "oauth_error",
                "The sign-in provider sent no code",
            ));
        };
        let asserted = match provider.identify(&self.auth.sso, code, &pending).await {
            Ok(asserted) => asserted,
            Err(e) => {
                tracing::warn!(error = %e, "single sign-on refused");
                let detail = format!("{name}: {}", e.description());
                return Ok(self
                    .refused(client, &detail, callback, "oauth_error", e.description())
                    .await);
            }
        };
        let code = random_id(32);
        self.auth
            .store
            .put_sso_state(&SsoState {
                hash: hash_token(&code),
                stage: SsoStage::Finish,
                provider: name.to_owned(),
                browser: taken.browser,
                payload: serde_json::to_string(&asserted).map_err(Error::internal)?,
                expires_at: self.auth.now_millis() + millis(FINISH_TTL),
            })
            .await
            .or_internal()?;
        Ok(with_query(callback, &[("code", &code)]))
    }

    /// A refused callback, recorded with why (`detail`, for the operator) before the browser is
    /// sent to `url` with the OAuth-style error the app reads.
    async fn refused(
        &self,
        client: &ClientInfo,
        detail: &str,
        url: url::Url,
        error: &str,
        description: &str,
    ) -> String {
        self.auth
            .audit("sso_failure", None, client, Some(detail))
            .await;
        refusal_url(url, error, description)
    }

    /// `GET /api/auth/:provider/callback?code=`: the session for the person the provider vouched for.
    #[tracing::instrument(skip_all, fields(provider = name))]
    pub async fn finish(
        &self,
        name: &str,
        code: Option<&str>,
        browser: Option<&str>,
        client: ClientInfo,
    ) -> Result<Issued> {
        // Strapi answers this for any provider, configured or not, and so does Keyway: without a
        // configured provider there can be no completed sign-in either.
        let refused = || Error::Application(MSG_NO_PROVIDER_SESSION.into());
        self.auth.sso.provider(name).map_err(|_| refused())?;
        let code = code
            .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM)
            .ok_or_else(refused)?;
        let taken = self
            .auth
            .store
            .take_sso_state(&hash_token(code), SsoStage::Finish, self.auth.now_millis())
            .await
            .or_internal()?
            .filter(|t| t.provider == name && same_browser(&t.browser, browser))
            .ok_or_else(refused)?;
        let asserted: Asserted = serde_json::from_str(&taken.payload).map_err(Error::internal)?;
        let ticket = self.auth.caches.ticket();
        let user = self.sso_account(name, &asserted, &client).await?;
        if user.blocked {
            self.auth
                .audit("login_failure", Some(user.id), &client, Some("blocked"))
                .await;
            return Err(Error::Application(MSG_BLOCKED.into()));
        }
        let detail = format!("single sign-on with {name}");
        self.auth
            .audit("login_success", Some(user.id), &client, Some(&detail))
            .await;
        let (jwt, refresh_token) = self.auth.start_session(&user, ticket, None, client).await?;
        Ok(Issued {
            jwt: Some(jwt),
            refresh_token,
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn query_pairs_are_appended_and_escaped() {
        let url = url::Url::parse("https://app.example/cb?keep=1").unwrap();
        assert_eq!(
            refusal_url(url, "x y", "a&b"),
            "https://app.example/cb?keep=1&error=x+y&error_description=a%26b"
        );
    }
}
