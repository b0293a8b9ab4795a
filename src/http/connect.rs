//! Single sign-on (Strapi's connect flow): `/api/connect/:provider` sends the browser to the provider,
//! `/api/connect/:provider/callback` receives it back and forwards it to the front end with a one-time
//! code, `/api/auth/:provider/callback` trades that code for `{jwt, user}`. The decisions are the
//! core's (`auth::sso`); this file reads the query and the binding cookie and writes redirects.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Duration;
use utoipa::IntoParams;

use super::AppState;
use super::auth::deliver;
use super::cookie;
use super::csrf::NotCrossSite;
use super::extract::{Client, Path, Query};
use super::openapi::{CrossSite, ErrorEnvelope, RateLimited};
use crate::auth::random_id;
use crate::auth::sso::CallbackParams;
use crate::error::{Error, Result};

/// How long the binding cookie lives: the time a browser may spend at the provider.
const BINDING_TTL: Duration = Duration::from_secs(10 * 60);

/// A `302` to `location` that tells the browser not to pass the URL (it may carry a code) on in
/// `Referer`.
fn redirect(location: &str) -> Result<Response> {
    let location = HeaderValue::from_str(location)
        .map_err(|_| Error::internal("single sign-on redirect is not a valid header value"))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response())
}

/// The browser's binding value: the cookie's, when it carries one we could have issued, else `None`.
fn binding(headers: &HeaderMap) -> Option<String> {
    cookie::read_named(cookie::SSO_COOKIE, headers).filter(|v| {
        v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// `GET /api/connect/:provider`'s query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectQuery {
    /// Front-end URL to return to; must match the provider's or the allow-list
    #[param(nullable = false)]
    callback: Option<String>,
}

/// `GET /api/connect/:provider[?callback=]` → `302` to the provider.
#[utoipa::path(get, path = "/api/connect/{provider}", tag = "sso",
    params(("provider" = String, Path, description = "A configured provider's name, e.g. google"),
        ConnectQuery),
    responses((status = 302, description = "On to the provider (or back to the front end with \
            `error` when the provider cannot be reached)",
            headers(("location" = String), ("set-cookie" = String))),
        (status = 400, description = "Unknown provider or callback not allowed", body = ErrorEnvelope),
        RateLimited))]
pub async fn connect(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<ConnectQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    // One binding per browser, reused across tabs, so starting a second sign-in does not break the
    // first.
    let browser = binding(&headers).unwrap_or_else(|| random_id(32));
    let location = state
        .auth
        .single_sign_on()
        .begin(&provider, query.callback.as_deref(), &browser)
        .await?;
    let mut response = redirect(&location)?;
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie::set_sso(&state.cookie, &browser, BINDING_TTL),
    );
    Ok(response)
}

/// `GET /api/connect/:provider/callback`'s query: what the provider sends the browser back with.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProviderCallbackQuery {
    /// The provider's authorization code
    #[param(nullable = false)]
    code: Option<String>,
    /// The state Keyway sent
    #[param(nullable = false)]
    state: Option<String>,
    /// The provider's error, if it refused
    #[param(nullable = false)]
    error: Option<String>,
    // Only ever with `error`: the answer's description names it.
    #[param(ignore)]
    error_description: Option<String>,
}

/// `GET /api/connect/:provider/callback?code=&state=` (from the provider) → `302` to the front end.
#[utoipa::path(get, path = "/api/connect/{provider}/callback", tag = "sso",
    params(("provider" = String, Path, description = "A configured provider's name"),
        ProviderCallbackQuery),
    responses((status = 302, description = "On to the front end with `code`, or with `error` and \
            `error_description`", headers(("location" = String))),
        (status = 400, description = "Unknown provider", body = ErrorEnvelope),
        RateLimited))]
pub async fn provider_callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<ProviderCallbackQuery>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response> {
    let callback = CallbackParams {
        code: query.code,
        state: query.state,
        error: query.error,
        error_description: query.error_description,
    };
    let location = state
        .auth
        .single_sign_on()
        .callback(&provider, callback, binding(&headers).as_deref(), &client)
        .await?;
    redirect(&location)
}

/// `GET /api/auth/:provider/callback`'s query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FinishQuery {
    /// The one-time code the front end was sent
    #[param(required = true, value_type = String)]
    code: Option<String>,
}

/// `GET /api/auth/:provider/callback?code=` (from the front end, same browser) → `{jwt, user}`.
#[utoipa::path(get, path = "/api/auth/{provider}/callback", tag = "sso",
    params(("provider" = String, Path, description = "A configured provider's name"),
        FinishQuery),
    responses((status = 200, description = "Signed in", body = super::auth::Grant),
        (status = 400, description = "No completed sign-in for this browser, or the account is \
            refused", body = ErrorEnvelope), CrossSite))]
pub async fn finish(
    _: NotCrossSite,
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<FinishQuery>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response> {
    let issued = state
        .auth
        .single_sign_on()
        .finish(
            &provider,
            query.code.as_deref(),
            binding(&headers).as_deref(),
            client,
        )
        .await?;
    Ok(deliver(
        &state,
        &issued,
        cookie::wanted(&state.cookie, &headers),
    ))
}
