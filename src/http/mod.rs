//! The HTTP layer: routes, extractors and the error envelope. Handlers only translate between HTTP and
//! the `auth` core.

mod account;
mod auth;
pub mod cookie;
pub mod error;
pub mod extract;
mod health;
pub mod pages;
pub mod users;
mod wellknown;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{delete, get, post};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::Auth;
use crate::config::CookieSettings;
use crate::error::Error;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub cookie: Arc<CookieSettings>,
    pub pages: Arc<pages::PageSettings>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of the API, with the layers that apply to all of them. Pure: tests drive it in-process
/// or over a socket.
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    let base = state.pages.base_path.trim_end_matches('/').to_owned();
    let api = Router::new()
        .route("/api/auth/local", post(auth::login))
        .route("/api/auth/local/register", post(auth::register))
        .route("/api/auth/change-password", post(auth::change_password))
        .route("/api/auth/forgot-password", post(account::forgot_password))
        .route("/api/auth/reset-password", post(account::reset_password))
        .route(
            "/api/auth/email-confirmation",
            get(account::email_confirmation),
        )
        .route(
            "/api/auth/send-email-confirmation",
            post(account::send_email_confirmation),
        )
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/sessions", get(auth::sessions))
        .route("/api/auth/sessions/{id}", delete(auth::end_session))
        .route("/api/auth/verify", get(auth::verify))
        .route("/api/users/me", get(users::me))
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready));
    let app = if base.is_empty() {
        api.merge(pages::router())
    } else {
        api.nest(&base, pages::router())
    };
    app.fallback(|| async { Error::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        // Responses carry tokens and personal data: no cache may keep them.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(|_| error::panic_response()))
        .layer(
            // Only the method and path are recorded: query strings and headers can carry secrets.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
