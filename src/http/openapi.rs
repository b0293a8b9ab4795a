//! The machine-readable description of the API, built from the handlers' own `#[utoipa::path]`
//! annotations and response types: the router is assembled from the same annotations
//! ([`utoipa_axum::routes!`]), so a route cannot exist without its description or the other way round.
//! `/api/openapi.json` serves it; `docs/openapi.json` is the checked-in copy that a test compares.
//! Request bodies are described by their own types, next to their handlers (`body.rs`).

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's frame: title, security scheme and tags. Paths and schemas come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyway",
        description = "Self-hosted authentication API, wire-compatible with Strapi's users-permissions plugin."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Logging in, registering and sessions"),
        (name = "account", description = "Forgotten passwords and email confirmation"),
        (name = "sso", description = "Single sign-on with OpenID Connect providers and GitHub"),
        (name = "users", description = "The logged-in user"),
        (name = "meta", description = "Keys, health and this description")
    )
)]
pub struct ApiDoc;

/// The scheme handlers name in `security(("bearer" = []))` (the macro wants the literal).
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// Strapi's error envelope, the body of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `null`.
    #[schema(value_type = Option<Object>)]
    pub data: Value,
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status again.
    pub status: u16,
    /// `ValidationError`, `ApplicationError`, `UnauthorizedError`, `RateLimitError`, …
    pub name: String,
    pub message: String,
    /// `{errors: [{path, message, name, value}]}` for field validation, otherwise `{}`.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// `{ok: true}`.
#[derive(Serialize, ToSchema)]
pub struct OkResponse {
    pub ok: bool,
}

/// `{status: "ok"}` of the health probes.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: &'static str,
}

/// `/readyz`'s answer: the database answers, and where the push feed of invalidations stands.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub invalidation_feed: FeedReport,
}

/// How this process learns of logouts, blocks and the like made by others: informative only, since
/// a process without its feed still applies them, on the poll.
#[derive(Serialize, ToSchema)]
pub struct FeedReport {
    /// `listening` (PostgreSQL `LISTEN`: applied as they commit), `connecting` (expected but not
    /// connected yet or again) or `none` (SQLite: the poll only).
    #[schema(example = "listening")]
    pub state: &'static str,
    /// Times the feed connected since the process started, reconnections included.
    pub connects: u64,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Value>,
}

/// This document, for the route that serves it.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct OpenApiDocument(pub Value);

/// A body that could not be accepted: invalid JSON or fields (Strapi's `ValidationError`), a refused
/// login or registration (`ApplicationError`), or one over the size limit.
#[derive(utoipa::IntoResponses)]
pub enum BodyErrors {
    #[response(status = 400, description = "Invalid input or refused request")]
    BadRequest(ErrorEnvelope),
    #[response(status = 413, description = "The body is over the size limit")]
    TooLarge(ErrorEnvelope),
}

/// The answers of a route that needs a bearer token.
#[derive(utoipa::IntoResponses)]
pub enum TokenErrors {
    #[response(
        status = 401,
        description = "Missing, invalid, expired or revoked token; carries `WWW-Authenticate: Bearer`"
    )]
    Unauthorized(ErrorEnvelope),
    #[response(
        status = 403,
        description = "No token at all: Strapi's public role may not use this route"
    )]
    Forbidden(ErrorEnvelope),
}

/// The answer past a route's rate limit.
#[derive(utoipa::IntoResponses)]
pub enum RateLimited {
    #[response(
        status = 429,
        description = "Too many requests from this client; `Retry-After` says when to try again"
    )]
    TooMany(ErrorEnvelope),
}

/// The refusal of a request that may come from another site's page (http/csrf.rs).
#[derive(utoipa::IntoResponses)]
pub enum CrossSite {
    #[response(
        status = 403,
        description = "A form, plain-text or untyped body from a page that is not this server's nor \
            a trusted front end (`cors_origins`), or a browser request marked cross-site"
    )]
    Refused(ErrorEnvelope),
}

/// utoipa describes an optional body (`request_body = Option<T>`) as `oneOf [T, null]`, but a JSON
/// `null` body is refused like any other body that is not an object, as Strapi's body parser refuses
/// it: such a body may be absent, never `null`. Keeps `T` alone; the body stays not required.
pub fn optional_bodies_are_absent_not_null(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{SchemaType, Type};
    use utoipa::openapi::{RefOr, Schema};
    let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema
                    && one.items.len() == 2
                    && let Some(kept) = one.items.iter().find(|s| !is_null(s))
                    && one.items.iter().any(is_null)
                {
                    content.schema = Some(kept.clone());
                }
            }
        }
    }
}
