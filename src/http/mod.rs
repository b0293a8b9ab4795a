//! The HTTP layer: routes, extractors and the error envelope. Handlers only translate between HTTP and
//! the `auth` core.

pub mod account;
pub mod auth;
pub mod body;
pub mod client_addr;
mod connect;
pub mod cookie;
pub mod csrf;
pub mod error;
pub mod extract;
mod health;
mod limits;
pub mod openapi;
pub mod pages;
pub mod users;
mod wellknown;

use axum::Router;
use axum::extract::State;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::config::CookieSettings;
use crate::error::Error;

/// What every handler can reach. One `Arc` inside, so the per-request clones the extractors make
/// cost one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub auth: Arc<Auth>,
    pub cookie: Arc<CookieSettings>,
    pub pages: Arc<crate::config::PageSettings>,
    /// The pages' templates, overrides included, loaded and checked at start-up.
    pub page_templates: Arc<crate::templates::pages::PageTemplates>,
    /// Trusted proxies and the header they report clients in.
    pub proxies: Arc<client_addr::Proxies>,
    pub cors_origins: Arc<Vec<String>>,
    /// `public_url`'s origin and `cors_origins`: pages that may use the cookie routes (csrf.rs).
    pub trusted_origins: Arc<Vec<String>>,
    pub request_timeout: std::time::Duration,
    /// One `info` line per request when on; otherwise those lines are `debug`.
    pub access_log: bool,
    /// `/api/openapi.json`, serialized when the router is built.
    pub openapi_json: std::sync::OnceLock<Arc<str>>,
    /// The invalidation feed as the serving process's upkeep last saw it (`/readyz` shows it).
    pub feed: Arc<crate::store::FeedStatus>,
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

/// The API's routes, built from their `#[utoipa::path]` annotations, with the routes Strapi
/// rate-limits (everything that takes a password, a code or an address) apart so the limit can be
/// layered on them alone.
fn api_routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let limited = OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::register))
        .routes(routes!(auth::change_password))
        .routes(routes!(account::forgot_password))
        .routes(routes!(account::reset_password))
        .routes(routes!(account::send_email_confirmation))
        .routes(routes!(connect::connect))
        .routes(routes!(connect::provider_callback));
    let open = OpenApiRouter::new()
        .routes(routes!(account::email_confirmation))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::sessions))
        .routes(routes!(auth::end_session))
        .routes(routes!(auth::verify))
        .routes(routes!(connect::finish))
        .routes(routes!(users::me))
        .routes(routes!(wellknown::jwks))
        .routes(routes!(health::alive))
        .routes(routes!(health::ready))
        .routes(routes!(openapi_json));
    (limited, open)
}

/// The paths the route rate limit applies to, sorted, as the router has them (the configuration
/// reads the same list from `auth::throttle::LIMITED_ROUTES`; a test keeps the two equal).
pub fn limited_routes() -> Vec<String> {
    let (limited, _) = api_routes();
    let mut paths: Vec<String> = limited.into_openapi().paths.paths.into_keys().collect();
    paths.sort();
    paths
}

/// The OpenAPI description of every API route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (limited, open) = api_routes();
    api_and_description(limited, open).1
}

/// The API's routes as one router, and the document that describes them: both come from the same
/// route list, so neither can describe a route the other lacks.
fn api_and_description(
    limited: OpenApiRouter<AppState>,
    open: OpenApiRouter<AppState>,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(limited)
        .merge(open)
        .split_for_parts();
    openapi::optional_bodies_are_absent_not_null(&mut doc);
    (api, doc)
}

/// `GET /api/openapi.json`: this API, described in OpenAPI 3.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = openapi::OpenApiDocument)))]
async fn openapi_json(State(state): State<AppState>) -> Response {
    let Some(doc) = state.openapi_json.get() else {
        return Error::no_route().into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.to_string(),
    )
        .into_response()
}

/// Answers 408 in the envelope when a request takes longer than `request_timeout`: a body that never
/// finishes arriving, a handler waiting on a database that does not answer. Dropping the handler's
/// future is what ends its work.
async fn time_limit(
    State(state): State<AppState>,
    req: Request,
    next: middleware::Next,
) -> Response {
    tokio::time::timeout(state.request_timeout, next.run(req))
        .await
        .unwrap_or_else(|_| Error::RequestTimeout.into_response())
}

/// Every route of the API, with the layers that apply to all of them. Pure: tests drive it in-process
/// or over a socket. `extra` routes are served inside the same layers (request id, panic catching,
/// headers, client address), so an embedder, or a test, sees what the API's own routes get.
pub fn router(state: AppState, body_limit_bytes: usize, extra: Router<AppState>) -> Router {
    let base = state.pages.base_path.trim_end_matches('/').to_owned();
    let (limited, open) = api_routes();
    let limited = limited.route_layer(middleware::from_fn_with_state(state.clone(), limits::limit));
    let (api, doc) = api_and_description(limited, open);
    // Serialized once, here, rather than on each request for it.
    let _ = state.openapi_json.set(
        doc.to_json()
            .expect("the OpenAPI document serializes")
            .into(),
    );
    let app = if base.is_empty() {
        api.merge(pages::router(&state))
    } else {
        // `nest` serves the pages' `/` at `{base}` only; the links say `{base}/`.
        api.nest(&base, pages::router(&state))
            .route(&format!("{base}/"), get(pages::login))
    };
    let app = app
        .merge(extra)
        .fallback(|| async { Error::no_route() })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client_addr::resolve,
        ));
    // No CORS layer at all without origins (the default): it would only cost every request a clone.
    let app = if state.cors_origins.is_empty() {
        app
    } else {
        app.layer(cors(&state.cors_origins))
    };
    let access_level = if state.access_log {
        Level::INFO
    } else {
        Level::DEBUG
    };
    app.layer(middleware::from_fn_with_state(state.clone(), time_limit))
    // Inside the header layers, so the answer to a panic carries them like any other.
    .layer(CatchPanicLayer::custom(|_| error::panic_response()))
    // Responses carry tokens and personal data: no cache may keep them.
    .layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ))
    .layer(SetResponseHeaderLayer::if_not_present(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
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
            .on_response(DefaultOnResponse::new().level(access_level)),
    )
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
    .with_state(state)
}

/// A header map of `pairs`, in order (a name may repeat), for the unit tests of header readers.
#[cfg(test)]
fn test_headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::body::assert_reader_matches_schema as agree;
    use super::{account, auth};
    use crate::auth::policy::PasswordPolicy;

    /// Every body type reads exactly the fields its schema describes, and every request body the
    /// document describes is one of the types checked here.
    #[test]
    fn every_request_body_is_read_as_it_is_described() {
        let policy = PasswordPolicy::new(8, None);
        let checked = [
            agree::<auth::LoginRequest>(()),
            agree::<auth::RegisterRequest>(&policy),
            agree::<auth::ChangePasswordRequest>((&policy, ["", ""])),
            agree::<auth::RefreshRequest>(()),
            agree::<auth::LogoutRequest>(()),
            agree::<account::EmailRequest>(()),
            agree::<account::ResetPasswordRequest>(&policy),
        ];
        let doc = serde_json::to_value(super::openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let Some(content) = operation["requestBody"]["content"].as_object() else {
                    continue;
                };
                for media in content.values() {
                    let reference = media["schema"]["$ref"].as_str().unwrap_or_default();
                    let name = reference.rsplit('/').next().unwrap_or_default();
                    assert!(
                        checked.iter().any(|c| c == name),
                        "{method} {path}: add its body type ({reference}) to this test"
                    );
                }
            }
        }
    }

    #[test]
    fn the_configuration_knows_exactly_the_routes_the_router_limits() {
        assert_eq!(
            super::limited_routes(),
            crate::auth::throttle::LIMITED_ROUTES.to_vec(),
            "update auth::throttle::LIMITED_ROUTES with the router's limited routes"
        );
    }
}
