//! `/api/auth/*`: login, registration, refresh, logout and the forward-auth check.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::body::{Body, Fields, FromBody, Valid};
use super::cookie;
use super::csrf::NotCrossSite;
use super::extract::{Authenticated, Client, MaybeAuthenticated, Path};
use super::openapi::{BodyErrors, CrossSite, OkResponse, RateLimited, TokenErrors};
use super::users::UserView;
use crate::auth::Issued;
use crate::auth::policy::PasswordPolicy;
use crate::auth::sessions::{LogoutScope, MSG_MISSING_REFRESH};
use crate::domain::{Email, LoginIdentifier, LoginPassword, Password, Username};
use crate::error::{Error, Result};

/// What a login, registration, password change or reset answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant<'a> {
    /// The access token; absent when registration waits for the email to be confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jwt: Option<&'a str>,
    /// The refresh token; absent in cookie mode (the cookie carries it) and for Strapi-style
    /// sessionless logins.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<&'a str>,
    pub user: UserView<'a>,
}

impl<'a> Grant<'a> {
    /// The answer for `issued`, leaving the refresh token out when a cookie carries it.
    pub fn of(issued: &'a Issued, in_cookie: bool) -> Self {
        Self {
            jwt: issued.jwt.as_deref(),
            refresh_token: issued.refresh_token.as_deref().filter(|_| !in_cookie),
            user: UserView::from(&issued.user),
        }
    }
}

/// `{jwt, refreshToken}`, or `{jwt}` in cookie mode.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refreshed<'a> {
    pub jwt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<&'a str>,
}

/// `POST /api/auth/local`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct LoginRequest {
    /// The email address or the username.
    #[schema(value_type = String, min_length = 1, max_length = 255)]
    pub identifier: LoginIdentifier,
    #[schema(value_type = String, min_length = 1, max_length = 1024)]
    pub password: LoginPassword,
    /// Names the device, so `logout` with `deviceId` can end just its sessions.
    pub device_id: Option<String>,
}

impl FromBody for LoginRequest {
    type Rules<'r> = ();

    fn from_body(fields: &mut Fields<'_>, (): ()) -> Option<Self> {
        let identifier = fields.parsed("identifier", false, LoginIdentifier::parse);
        let password = fields.parsed("password", true, LoginPassword::parse);
        let device_id = fields.optional_string("deviceId").map(str::to_owned);
        Some(Self {
            identifier: identifier?,
            password: password?,
            device_id,
        })
    }
}

/// `POST /api/auth/local` `{identifier, password, deviceId?}` → `{jwt, refreshToken?, user}`.
#[utoipa::path(post, path = "/api/auth/local", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Logged in", body = Grant), BodyErrors, CrossSite,
        RateLimited))]
pub async fn login(
    _: NotCrossSite,
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Valid(body): Valid<LoginRequest>,
) -> Result<Response> {
    let issued = state
        .auth
        .login(&body.identifier, body.password, body.device_id, client)
        .await?;
    Ok(deliver(
        &state,
        &issued,
        cookie::wanted(&state.cookie, &headers),
    ))
}

/// `POST /api/auth/local/register`. Keys other than these three are refused.
#[derive(ToSchema)]
pub struct RegisterRequest {
    /// At least 3 characters.
    #[schema(value_type = String, min_length = 3)]
    pub username: Username,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    /// At least 8 characters (configurable), at most 1024 bytes, not a commonly breached password,
    /// not the username or email.
    #[schema(value_type = String, min_length = 8, max_length = 1024)]
    pub password: Password,
}

impl FromBody for RegisterRequest {
    type Rules<'r> = &'r PasswordPolicy;

    fn from_body(fields: &mut Fields<'_>, policy: &PasswordPolicy) -> Option<Self> {
        fields.refuse_unknown();
        let account = [fields.peek("username"), fields.peek("email")];
        let email = fields.parsed("email", false, Email::parse);
        let username = fields.parsed("username", false, Username::parse);
        let password = fields.parsed("password", true, |p| policy.parse(p, &account));
        Some(Self {
            username: username?,
            email: email?,
            password: password?,
        })
    }
}

/// `POST /api/auth/local/register` `{username, email, password}` → `{jwt, refreshToken?, user}`, or
/// `{user}` when the address must be confirmed first. As in Strapi, the refresh token always comes in
/// the body here.
#[utoipa::path(post, path = "/api/auth/local/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 200, description = "Registered", body = Grant), BodyErrors, CrossSite,
        RateLimited))]
pub async fn register(
    _: NotCrossSite,
    State(state): State<AppState>,
    Client(client): Client,
    body: Body,
) -> Result<Response> {
    // Strapi answers "disabled" before looking at the body.
    state.auth.accounts().ensure_registration_open()?;
    let body: RegisterRequest = body.read(state.auth.password_policy())?;
    let issued = state
        .auth
        .accounts()
        .register(body.username, body.email, body.password, client)
        .await?;
    Ok(deliver(&state, &issued, false))
}

/// The `{jwt, refreshToken, user}` body, or `{jwt, user}` plus the cookie in cookie mode.
pub(super) fn deliver(state: &AppState, issued: &Issued, in_cookie: bool) -> Response {
    let mut response = Json(Grant::of(issued, in_cookie)).into_response();
    if let (true, Some(refresh)) = (in_cookie, &issued.refresh_token) {
        let c = cookie::set(
            &state.cookie,
            refresh,
            state.auth.sessions().settings().absolute_ttl,
        );
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

/// `POST /api/auth/change-password`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    #[schema(value_type = String)]
    pub current_password: LoginPassword,
    #[schema(value_type = String)]
    pub password: Password,
    #[schema(value_type = String)]
    pub password_confirmation: Confirmed,
}

/// Proof that a body's `passwordConfirmation` was sent and equals its new `password`.
pub struct Confirmed;

impl FromBody for ChangePasswordRequest {
    /// The policy, and the caller's username and email (a new password may be neither).
    type Rules<'r> = (&'r PasswordPolicy, [&'r str; 2]);

    fn from_body(fields: &mut Fields<'_>, (policy, account): Self::Rules<'_>) -> Option<Self> {
        fields.no_unknown();
        let current = fields.parsed("currentPassword", true, LoginPassword::parse);
        let password = fields.parsed("password", true, |p| policy.parse(p, &account));
        let confirmation = fields.string("passwordConfirmation", true);
        let confirmed = confirmed(fields, password.as_ref(), confirmation);
        Some(Self {
            current_password: current?,
            password: password?,
            password_confirmation: confirmed?,
        })
    }
}

/// The confirmation read, checked against the new password when that one is valid.
pub(super) fn confirmed(
    fields: &mut Fields<'_>,
    password: Option<&Password>,
    confirmation: Option<&str>,
) -> Option<Confirmed> {
    let confirmation = confirmation?;
    if password.is_some_and(|p| p.expose() != confirmation) {
        fields.fail("passwordConfirmation", "Passwords do not match");
        return None;
    }
    Some(Confirmed)
}

/// `POST /api/auth/change-password` `{currentPassword, password, passwordConfirmation}` →
/// `{jwt, refreshToken, user}`; every earlier session of the account ends.
#[utoipa::path(post, path = "/api/auth/change-password", tag = "auth",
    request_body = ChangePasswordRequest, security(("bearer" = [])),
    responses((status = 200, description = "Password changed", body = Grant), BodyErrors,
        TokenErrors, RateLimited))]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body,
) -> Result<Response> {
    let account = [who.user.username.as_str(), who.user.email.as_str()];
    let body: ChangePasswordRequest = body.read((state.auth.password_policy(), account))?;
    let issued = state
        .auth
        .accounts()
        .change_password(&who, body.current_password, body.password, client)
        .await?;
    Ok(Json(Grant::of(&issued, false)).into_response())
}

/// `POST /api/auth/refresh`. In cookie mode the cookie carries the token and the body may be empty.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
}

impl FromBody for RefreshRequest {
    type Rules<'r> = ();

    /// Anything but a string is no token: the answer is the missing token's, not a field error.
    fn from_body(fields: &mut Fields<'_>, (): ()) -> Option<Self> {
        let refresh_token = fields.lenient_string("refreshToken").map(str::to_owned);
        Some(Self { refresh_token })
    }
}

/// `POST /api/auth/refresh` `{refreshToken}` (or the cookie) → `{jwt, refreshToken}`, or `{jwt}` and a
/// new cookie in cookie mode.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = Option<RefreshRequest>,
    responses((status = 200, description = "A new access token and refresh token", body = Refreshed),
        BodyErrors, CrossSite, TokenErrors))]
pub async fn refresh(
    _: NotCrossSite,
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Valid(body): Valid<RefreshRequest>,
) -> Result<Response> {
    let from_cookie = cookie::read(&state.cookie, &headers);
    let in_cookie = from_cookie.is_some() || cookie::wanted(&state.cookie, &headers);
    let token = match (from_cookie, body.refresh_token) {
        (Some(c), _) => c,
        (None, Some(t)) if !t.is_empty() => t,
        _ => return Err(Error::BadRequest(MSG_MISSING_REFRESH.into())),
    };
    let refreshed = state.auth.sessions().refresh(&token, &client).await?;
    let mut response = Json(Refreshed {
        jwt: &refreshed.jwt,
        refresh_token: Some(refreshed.refresh_token.as_str()).filter(|_| !in_cookie),
    })
    .into_response();
    if in_cookie {
        let c = cookie::set(
            &state.cookie,
            &refreshed.refresh_token,
            state.auth.sessions().settings().absolute_ttl,
        );
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(response)
}

/// `POST /api/auth/logout`: the current session by default; `scope: "all"` ends every session of
/// the user, `deviceId` those of one device, and `refreshToken` (or the cookie) the session of an
/// expired access token.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct LogoutRequest {
    pub scope: Option<String>,
    pub device_id: Option<String>,
    pub refresh_token: Option<String>,
}

impl FromBody for LogoutRequest {
    type Rules<'r> = ();

    fn from_body(fields: &mut Fields<'_>, (): ()) -> Option<Self> {
        let mut read = |key| fields.optional_string(key).map(str::to_owned);
        let (scope, device_id, refresh_token) =
            (read("scope"), read("deviceId"), read("refreshToken"));
        Some(Self {
            scope,
            device_id,
            refresh_token,
        })
    }
}

/// `POST /api/auth/logout` `{scope?: "all", deviceId?, refreshToken?}` → `{ok: true}`. The first of
/// these that is given decides: `scope: "all"` ends every session of the access token's user,
/// `deviceId` that user's sessions on the device, `refreshToken` that token's session (which must be
/// the access token's user's, else 403 and nothing ends); with none, the access token's own session,
/// or the refresh cookie's when no access token names one. A client whose access token has expired can
/// still end its session with the refresh token alone.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = Option<LogoutRequest>,
    security((), ("bearer" = [])),
    responses((status = 200, description = "The sessions are ended", body = OkResponse), BodyErrors,
        CrossSite, TokenErrors))]
pub async fn logout(
    _: NotCrossSite,
    State(state): State<AppState>,
    MaybeAuthenticated(who): MaybeAuthenticated,
    Client(client): Client,
    headers: HeaderMap,
    Valid(body): Valid<LogoutRequest>,
) -> Result<Response> {
    let from_cookie = cookie::read(&state.cookie, &headers);
    let sessionless = who.as_ref().is_none_or(|p| p.session_id.is_none());
    let scope = match (body.scope.as_deref(), body.device_id, body.refresh_token) {
        (Some("all"), _, _) => LogoutScope::All,
        (_, Some(d), _) if !d.is_empty() => LogoutScope::Device(d),
        // A token named in the body is what the client asks to end, whichever session the access
        // token that carried it belongs to.
        (_, _, Some(t)) if !t.is_empty() => LogoutScope::RefreshToken(t),
        // The cookie is sent with every request, asked or not: it stands in only for a caller whose
        // access token names no session.
        _ => match from_cookie.clone() {
            Some(c) if sessionless => LogoutScope::RefreshToken(c),
            _ => LogoutScope::Current,
        },
    };
    state
        .auth
        .sessions()
        .logout(who.as_ref(), scope, &client)
        .await?;
    let mut response = Json(OkResponse { ok: true }).into_response();
    if from_cookie.is_some() || cookie::wanted(&state.cookie, &headers) {
        let clear = cookie::clear(&state.cookie);
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}

/// `GET /api/auth/verify`: the forward-auth target (nginx `auth_request`, Traefik ForwardAuth, Caddy
/// `forward_auth`) and a ready secure query: `200 {"status":"200 OK","user":{…}}` plus `X-Keyway-*`
/// headers for a valid token, `401` for anything else, including no token.
#[utoipa::path(get, path = "/api/auth/verify", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The token is good", body = Verified,
        headers(("x-keyway-user-id" = String), ("x-keyway-username" = String),
            ("x-keyway-email" = String), ("x-keyway-role" = String))),
        TokenErrors))]
pub async fn verify(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let token = super::extract::bearer_token(&headers).ok_or(Error::INVALID_TOKEN)?;
    let who = state.auth.authenticate(&token).await?;
    let user = &who.user;
    let mut response = Json(Verified {
        status: "200 OK",
        user: UserView::from(user.as_ref()),
    })
    .into_response();
    let h = response.headers_mut();
    let pairs = [
        ("x-keyway-user-id", user.id.to_string()),
        ("x-keyway-username", user.username.clone()),
        ("x-keyway-email", user.email.clone()),
        ("x-keyway-role", user.role.kind.clone()),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    Ok(response)
}

/// The answer of `GET /api/auth/verify`.
#[derive(Serialize, ToSchema)]
pub struct Verified<'a> {
    /// Always `"200 OK"`.
    pub status: &'static str,
    pub user: UserView<'a>,
}

/// `{data: …}`, Strapi 5's wrapper for the session routes.
#[derive(Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

/// `{}`.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// One open session of the user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub device_id: String,
    pub device_name: Option<String>,
    /// Whether the calling token belongs to this session.
    pub current: bool,
    pub login_at: String,
    pub last_active_at: String,
}

/// `GET /api/auth/sessions` → `{data: [{id, deviceId, deviceName, current, loginAt, lastActiveAt}]}`.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The user's open sessions", body = Data<Vec<SessionView>>),
        TokenErrors))]
pub async fn sessions(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Data<Vec<SessionView>>>> {
    let list = state.auth.sessions().list(&who).await?;
    let data = list
        .into_iter()
        .map(|s| SessionView {
            id: s.id,
            device_id: s.device_id,
            device_name: s.device_name,
            current: s.current,
            login_at: crate::store::iso(s.login_at),
            last_active_at: crate::store::iso(s.last_active_at),
        })
        .collect();
    Ok(Json(Data { data }))
}

/// `DELETE /api/auth/sessions/{id}` → `{data: {}}`; another user's or an unknown session is 404.
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id, as listed")),
    responses((status = 200, description = "The session is ended", body = Data<Empty>),
        TokenErrors,
        (status = 404, description = "No such session of this user", body = super::openapi::ErrorEnvelope)))]
pub async fn end_session(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Data<Empty>>> {
    state.auth.sessions().end(&who, &id).await?;
    Ok(Json(Data { data: Empty {} }))
}
