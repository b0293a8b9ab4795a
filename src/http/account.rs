//! `/api/auth/*` of the account lifecycle: forgotten passwords and email confirmation, with Strapi's
//! shapes and messages.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Grant;
use super::extract::{Body, Client, Fields};
use super::openapi::{
    BodyErrors, EmailRequest, ErrorEnvelope, OkResponse, RateLimited, ResetPasswordRequest,
};
use crate::domain::Email;
use crate::error::{Error, FieldError, Result};

/// `POST /api/auth/forgot-password` `{email}` → `{ok: true}`, registered or not.
#[utoipa::path(post, path = "/api/auth/forgot-password", tag = "account", request_body = EmailRequest,
    responses((status = 200, description = "Sent if the address is registered", body = OkResponse),
        BodyErrors, RateLimited))]
pub async fn forgot_password(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Json<OkResponse>> {
    let mut fields = Fields::new(&body);
    fields.no_unknown(&["email"]);
    let email = fields.parsed("email", false, Email::parse);
    let email = fields.finish(email)?;
    state.auth.forgot_password(&email).await?;
    Ok(Json(OkResponse { ok: true }))
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
    Body(body): Body,
) -> Result<Response> {
    let policy = state.auth.password_policy();
    let mut fields = Fields::new(&body);
    fields.no_unknown(&["code", "password", "passwordConfirmation"]);
    // Yup reports this schema's errors in this order.
    let confirmation = fields.string("passwordConfirmation", true);
    // The account is known only from the code: the core checks the password against its name.
    let password = fields.parsed("password", true, |p| policy.parse(p, &[]));
    let code = fields.string("code", false);
    if let (Some(p), Some(c)) = (&password, confirmation)
        && p.expose() != c
    {
        fields.fail("passwordConfirmation", "Passwords do not match");
    }
    let (code, password) = fields.finish(code.zip(password))?;
    let issued = state.auth.reset_password(code, password, client).await?;
    Ok(Json(Grant::of(&issued, false)).into_response())
}

/// `GET /api/auth/email-confirmation?confirmation=…` → `302` to the configured page.
#[utoipa::path(get, path = "/api/auth/email-confirmation", tag = "account",
    params(("confirmation" = String, Query, description = "The code from the mailed link")),
    responses((status = 302, description = "Confirmed; on to the configured page",
            headers(("location" = String))),
        (status = 400, description = "Missing or unusable code", body = ErrorEnvelope)))]
pub async fn email_confirmation(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    let code = query
        .get("confirmation")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Error::Fields(vec![FieldError::new(
                "confirmation",
                "confirmation is a required field",
                None,
            )])
        })?;
    state.auth.confirm_email(code).await?;
    let location = HeaderValue::from_str(&state.auth.confirmation_redirect())
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
    Body(body): Body,
) -> Result<Json<Sent>> {
    let mut fields = Fields::new(&body);
    let raw = fields.string("email", false).map(str::to_owned);
    let email = fields.parsed("email", false, Email::parse);
    let email = fields.finish(email)?;
    state.auth.resend_confirmation(&email).await?;
    Ok(Json(Sent {
        email: raw,
        sent: true,
    }))
}
