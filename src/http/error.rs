//! The single place where an [`Error`] becomes an HTTP response: Strapi's v4/v5 envelope
//! `{"data":null,"error":{"status","name","message","details"}}`. Internal causes are logged here, once,
//! with their chain, and never reach the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::Error;

/// RFC 6750 challenge sent with every 401, so clients know a bearer token is what is wanted.
const BEARER_CHALLENGE: &str = r#"Bearer realm="keyway", error="invalid_token""#;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, name, message, details) = match &self {
            Error::Fields(errors) => {
                let message = match errors.as_slice() {
                    [one] => one.message.clone(),
                    many => format!("{} errors occurred", many.len()),
                };
                (
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    message,
                    json!({ "errors": errors }),
                )
            }
            Error::Validation(m) => (
                StatusCode::BAD_REQUEST,
                "ValidationError",
                m.clone(),
                json!({}),
            ),
            Error::ValidationWith(m, details) => (
                StatusCode::BAD_REQUEST,
                "ValidationError",
                m.clone(),
                details.clone(),
            ),
            Error::Application(m) => (
                StatusCode::BAD_REQUEST,
                "ApplicationError",
                m.clone(),
                json!({}),
            ),
            Error::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                "BadRequestError",
                m.clone(),
                json!({}),
            ),
            Error::Unauthorized(m) => (
                StatusCode::UNAUTHORIZED,
                "UnauthorizedError",
                (*m).to_owned(),
                json!({}),
            ),
            Error::Forbidden => (
                StatusCode::FORBIDDEN,
                "ForbiddenError",
                "Forbidden".into(),
                json!({}),
            ),
            Error::NotFound(m) => (StatusCode::NOT_FOUND, "NotFoundError", m.clone(), json!({})),
            Error::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedError",
                "Method Not Allowed".into(),
                json!({}),
            ),
            Error::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeError",
                "Payload Too Large".into(),
                json!({}),
            ),
            Error::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableError",
                "Service Unavailable".into(),
                json!({}),
            ),
            Error::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutError",
                "Request Timeout".into(),
                json!({}),
            ),
            Error::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitError",
                "Too many requests, please try again later.".into(),
                json!({}),
            ),
            Error::Internal(cause) => {
                tracing::error!(error = %crate::error::chain(cause.as_ref()), "internal error");
                internal_parts()
            }
        };
        let mut response = envelope(status, name, &message, details);
        if let Error::RateLimited(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn internal_parts() -> (StatusCode, &'static str, String, Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "Internal Server Error".into(),
        json!({}),
    )
}

/// The response for a handler that panicked: the same opaque 500 as any internal error.
pub fn panic_response() -> Response {
    let (status, name, message, details) = internal_parts();
    envelope(status, name, &message, details)
}

fn envelope(status: StatusCode, name: &str, message: &str, details: Value) -> Response {
    let body = json!({
        "data": null,
        "error": { "status": status.as_u16(), "name": name, "message": message, "details": details },
    });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BEARER_CHALLENGE),
        );
    }
    response
}
