//! `/api/auth/*`: login and registration.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Body, Client, Fields, reject_unknown_keys};
use super::users::UserView;
use crate::auth::Issued;
use crate::domain::{Email, LoginPassword, Password, Username};
use crate::error::Result;

/// `POST /api/auth/local` `{identifier, password}` → `{jwt, user}`.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    Body(body): Body,
) -> Result<Json<Value>> {
    let mut fields = Fields::new(&body);
    let identifier = fields.string("identifier", false);
    let password = fields.parsed("password", true, LoginPassword::parse);
    let (identifier, password) = fields.finish(identifier.zip(password))?;
    let issued = state.auth.login(identifier, password, client).await?;
    Ok(Json(issued_body(&issued)))
}

/// `POST /api/auth/local/register` `{username, email, password}` → `{jwt, user}`, or `{user}` when the
/// address must be confirmed first.
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    Body(body): Body,
) -> Result<Json<Value>> {
    // Strapi answers "disabled" before looking at the body.
    state.auth.ensure_registration_open()?;
    reject_unknown_keys(&body, &["username", "email", "password"])?;
    let min = state.auth.settings().password_min_chars;
    let mut fields = Fields::new(&body);
    let email = fields.parsed("email", false, Email::parse);
    let username = fields.parsed("username", false, Username::parse);
    let password = fields.parsed("password", true, |p| Password::parse(p, min));
    let ((email, username), password) = fields.finish(email.zip(username).zip(password))?;
    let issued = state
        .auth
        .register(username, email, password, client)
        .await?;
    Ok(Json(issued_body(&issued)))
}

fn issued_body(issued: &Issued) -> Value {
    let user = UserView::from(&issued.user);
    match &issued.jwt {
        Some(jwt) => json!({ "jwt": jwt, "user": user }),
        None => json!({ "user": user }),
    }
}
