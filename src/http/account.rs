//! `/api/auth/*` of the account lifecycle: forgotten passwords and email confirmation, with Strapi's
//! shapes and messages.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Confirmed, Grant, confirmed};
use super::body::{Body, Fields, FromBody, NoUnknown, Valid};
use super::extract::{Client, Query};
use super::openapi::{BodyErrors, ErrorEnvelope, OkResponse, RateLimited};
use crate::auth::policy::PasswordPolicy;
use crate::domain::{Email, Password};
use crate::error::{Error, FieldError, Result};

/// `POST /api/auth/forgot-password` and `POST /api/auth/send-email-confirmation`.
#[derive(ToSchema)]
pub struct EmailRequest {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    /// The address as it was sent, before it was lower-cased.
    #[schema(ignore)]
    pub as_sent: String,
}

impl FromBody for EmailRequest {
    type Rules<'r> = ();

    fn from_body(fields: &mut Fields<'_>, (): ()) -> Option<Self> {
        let (email, as_sent) = fields.parsed("email", false, |raw| {
            Email::parse(raw).map(|email| (email, raw.to_owned()))
        })?;
        Some(Self { email, as_sent })
    }
}

/// `POST /api/auth/forgot-password` `{email}` → `{ok: true}`, registered or not.
#[utoipa::path(post, path = "/api/auth/forgot-password", tag = "account", request_body = EmailRequest,
    responses((status = 200, description = "Sent if the address is registered", body = OkResponse),
        BodyErrors, RateLimited))]
pub async fn forgot_password(
    State(state): State<AppState>,
    // Strapi's schema here refuses other keys; send-email-confirmation's does not.
    Valid(NoUnknown(body)): Valid<NoUnknown<EmailRequest>>,
) -> Result<Json<OkResponse>> {
    state.auth.accounts().forgot_password(&body.email).await?;
    Ok(Json(OkResponse { ok: true }))
}

/// `POST /api/auth/reset-password`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ResetPasswordRequest {
    /// The code from the mailed link.
    pub code: String,
    #[schema(value_type = String)]
    pub password: Password,
    #[schema(value_type = String)]
    pub password_confirmation: Confirmed,
}

impl FromBody for ResetPasswordRequest {
    type Rules<'r> = &'r PasswordPolicy;

    fn from_body(fields: &mut Fields<'_>, policy: &PasswordPolicy) -> Option<Self> {
        fields.no_unknown();
        // Yup reports this schema's errors in this order.
        let confirmation = fields.string("passwordConfirmation", true);
        // The account is known only from the code: the core checks the password against its name.
        let password = fields.parsed("password", true, |p| policy.parse(p, &[]));
        let code = fields.string("code", false).map(str::to_owned);
        let confirmed = confirmed(fields, password.as_ref(), confirmation);
        Some(Self {
            code: code?,
            password: password?,
            password_confirmation: confirmed?,
        })
    }
}

/// `POST /api/auth/reset-password` `{code, password, passwordConfirmation}` → `{jwt, refreshToken,
/// user}`. Every earlier session of the account ends.
#[utoipa::path(post, path = "/api/auth/reset-password", tag = "account",
    request_body = ResetPasswordRequest,
    responses((status = 200, description = "Password reset; logged in", body = Grant), BodyErrors,
        RateLimited))]
pub async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    body: Body,
) -> Result<Response> {
    let body: ResetPasswordRequest = body.read(state.auth.password_policy())?;
    let issued = state
        .auth
        .accounts()
        .reset_password(&body.code, body.password, client)
        .await?;
    Ok(Json(Grant::of(&issued, false)).into_response())
}

/// `GET /api/auth/email-confirmation`'s query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfirmationQuery {
    /// The code from the mailed link
    #[param(required = true, value_type = String)]
    confirmation: Option<String>,
}

/// `GET /api/auth/email-confirmation?confirmation=…` → `302` to the configured page.
#[utoipa::path(get, path = "/api/auth/email-confirmation", tag = "account",
    params(ConfirmationQuery),
    responses((status = 302, description = "Confirmed; on to the configured page",
            headers(("location" = String))),
        (status = 400, description = "Missing or unusable code", body = ErrorEnvelope)))]
pub async fn email_confirmation(
    State(state): State<AppState>,
    Query(query): Query<ConfirmationQuery>,
) -> Result<Response> {
    let code = query
        .confirmation
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Error::Fields(vec![FieldError::new(
                "confirmation",
                "confirmation is a required field",
                None,
            )])
        })?;
    state.auth.accounts().confirm_email(&code).await?;
    let location = HeaderValue::from_str(&state.auth.accounts().confirmation_redirect())
        .map_err(|_| Error::internal("confirmation redirect is not a valid header value"))?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// `{email, sent: true}`.
#[derive(Serialize, ToSchema)]
pub struct Sent {
    pub email: Option<String>,
    pub sent: bool,
}

/// `POST /api/auth/send-email-confirmation` `{email}` → `{email, sent: true}`, whatever the address.
#[utoipa::path(post, path = "/api/auth/send-email-confirmation", tag = "account",
    request_body = EmailRequest,
    responses((status = 200, description = "Sent if the address waits for confirmation", body = Sent),
        BodyErrors, RateLimited))]
pub async fn send_email_confirmation(
    State(state): State<AppState>,
    Valid(body): Valid<EmailRequest>,
) -> Result<Json<Sent>> {
    state
        .auth
        .accounts()
        .resend_confirmation(&body.email)
        .await?;
    Ok(Json(Sent {
        email: Some(body.as_sent),
        sent: true,
    }))
}
