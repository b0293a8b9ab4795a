//! The HTTP layer: routes, extractors and the error envelope. Handlers only translate between HTTP and
//! the `auth` core.

mod account;
mod auth;
pub mod client;
pub mod cookie;
pub mod error;
pub mod extract;
mod health;
mod limits;
pub mod pages;
pub mod users;
mod wellknown;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::routing::{delete, get, post};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
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
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    pub cors_origins: Arc<Vec<String>>,
    pub request_timeout: std::time::Duration,
}

/// CORS for the configured origins only; none configured, none allowed (the default). Credentials are
/// allowed so a front end elsewhere can use the refresh cookie.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-strapi-refresh-cookie"),
        ])
        .expose_headers([
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            header::RETRY_AFTER,
        ])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of the API, with the layers that apply to all of them. Pure: tests drive it in-process
/// or over a socket.
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    let base = state.pages.base_path.trim_end_matches('/').to_owned();
    // The routes Strapi rate-limits: everything that takes a password, a code or an address.
    let limited = Router::new()
        .route("/api/auth/local", post(auth::login))
        .route("/api/auth/local/register", post(auth::register))
        .route("/api/auth/change-password", post(auth::change_password))
        .route("/api/auth/forgot-password", post(account::forgot_password))
        .route("/api/auth/reset-password", post(account::reset_password))
        .route(
            "/api/auth/send-email-confirmation",
            post(account::send_email_confirmation),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), limits::limit));
    let api = Router::new()
        .merge(limited)
        .route(
            "/api/auth/email-confirmation",
            get(account::email_confirmation),
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
        // `nest` serves the pages' `/` at `{base}` only; the links say `{base}/`.
        api.nest(&base, pages::router())
            .route(&format!("{base}/"), get(pages::login))
    };
    app.fallback(|| async { Error::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), client::resolve))
        .layer(cors(&state.cors_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
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
