//! The one error type of the crate. Every failure a client can see is one of these variants; the HTTP
//! layer turns it into Strapi's `{data:null, error:{status,name,message,details}}` envelope in a single
//! place (`http::error`). Internal causes travel in `Internal` and are logged there, never sent.

use crate::store::StoreError;
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of `details.errors`, shaped like a yup validation error.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldError {
    pub path: Vec<String>,
    pub message: String,
    pub name: &'static str,
    /// The offending value, as Strapi 5 echoes it. Never set for secret fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl FieldError {
    pub fn new(path: &str, message: impl Into<String>, value: Option<serde_json::Value>) -> Self {
        Self {
            path: if path.is_empty() {
                Vec::new()
            } else {
                vec![path.to_owned()]
            },
            message: message.into(),
            name: "ValidationError",
            value,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `ValidationError` with `details.errors`, as yup reports a failed schema.
    #[error("validation failed: {}", .0.len())]
    Fields(Vec<FieldError>),
    /// 400 `ValidationError` with empty details (e.g. "Invalid identifier or password").
    #[error("{0}")]
    Validation(String),
    /// 400 `ValidationError` with the given `details` (e.g. "Invalid callback URL provided" with
    /// `{callback}`).
    #[error("{0}")]
    ValidationWith(String, serde_json::Value),
    /// 400 `ApplicationError` (e.g. "Email or Username are already taken").
    #[error("{0}")]
    Application(String),
    /// 400 `BadRequestError`: the request itself could not be read.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `UnauthorizedError`, always with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `ForbiddenError` "Forbidden": no credentials where some are required.
    #[error("Forbidden")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("Payload Too Large")]
    PayloadTooLarge,
    #[error("Service Unavailable")]
    Unavailable,
    /// 408 `RequestTimeoutError`: the request took longer than `request_timeout` (a body that never
    /// finishes arriving, a database that does not answer).
    #[error("Request Timeout")]
    RequestTimeout,
    /// 429 `RateLimitError`; the value is how many seconds to wait (`Retry-After`).
    #[error("Too many requests, please try again later.")]
    RateLimited(u64),
    /// Anything the client cannot act on. The cause is logged with its chain; the client sees only
    /// "Internal Server Error".
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Strapi's 404 for a path nothing here serves (or a parameter no route could match).
    pub fn no_route() -> Self {
        Self::NotFound("Not Found".into())
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(e.into())
    }

    /// The token could not be verified: bad signature, expired, wrong issuer, unknown session…
    pub const INVALID_TOKEN: Self = Self::Unauthorized("Missing or invalid credentials");
    /// The token verified but its user may not act: deleted or blocked.
    pub const INVALID_USER: Self = Self::Unauthorized("Invalid credentials");
}

/// An error followed by its causes, `a: b: c`, for the log: the top message alone often hides what
/// actually failed.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How a store failure becomes an [`Error`]: never by `?` alone. A call that may conflict matches
/// [`StoreError::Conflict`] and answers for it (a taken username is a 400, not a 500); every other
/// call states with [`OrInternal::or_internal`] that any failure there, a conflict included, is the
/// server's. There is deliberately no `From<StoreError> for Error`: with one, a forgotten `Conflict`
/// would quietly become a 500.
pub trait OrInternal<T> {
    fn or_internal(self) -> Result<T>;
}

impl<T> OrInternal<T> for std::result::Result<T, StoreError> {
    fn or_internal(self) -> Result<T> {
        self.map_err(Error::internal)
    }
}
