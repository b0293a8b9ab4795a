//! `/.well-known/*`: what other software needs to verify Keyway's tokens on its own.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `GET /.well-known/jwks.json`: the public keys that verify current tokens. Cacheable for a few
/// minutes: a rotated key is published before it signs anything a verifier could see first.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta",
    responses((status = 200, description = "The verification keys", body = super::openapi::JwkSet)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.auth.keys().jwks().as_ref().clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
