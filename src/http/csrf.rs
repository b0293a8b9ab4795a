//! Cross-site request refusal for the routes that set or use the session cookie: login, register,
//! refresh, logout and the single sign-on trade. A page on another site can make a browser send a
//! request without asking the server first (no CORS preflight) only as a form (`urlencoded`,
//! `multipart`), plain text, a body without a type, or a navigation. A cross-site form posted to the
//! login would sign the victim's browser into the attacker's account (login CSRF). So these routes
//! accept a request only when it shows it is not cross-site:
//!
//! - its `Origin` is one Keyway trusts: `public_url`'s origin or one of `cors_origins` (front ends the
//!   operator named); or
//! - the browser's own `Sec-Fetch-Site` says `same-origin` (or `none`: the user typed the address).
//!   Any other `Sec-Fetch-Site` (`cross-site`, `same-site`) is refused; or
//! - there is no fetch metadata (a client that is not a browser, or an old browser) and the body is
//!   declared JSON, which a browser sends across sites only after a preflight that only
//!   `cors_origins` pass; or a request without a body type and without `Origin` (curl, servers).
//!
//! The host the request names is not trusted: an attacker who points a name of theirs at this server
//! (DNS rebinding) chooses it.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderName, header, request::Parts};

use super::AppState;
use crate::error::{Error, Result};

/// Proof that the request is not a cross-site one (see the module); a refusal is `403 Forbidden`.
pub struct NotCrossSite;

impl FromRequestParts<AppState> for NotCrossSite {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if allowed(&parts.headers, &state.trusted_origins) {
            Ok(NotCrossSite)
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// Whether a request with these headers may reach a cookie route, `trusted` being the exact origins
/// (`scheme://host[:port]`) of `public_url` and `cors_origins`.
pub fn allowed(headers: &HeaderMap, trusted: &[String]) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = text(header::ORIGIN);
    if origin.is_some_and(|o| trusted.iter().any(|t| t == o)) {
        return true;
    }
    match text(SEC_FETCH_SITE) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => match text(header::CONTENT_TYPE) {
            Some(kind) => is_json(kind),
            None => origin.is_none(),
        },
    }
}

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// `application/json` or an `application/…+json` type, as the body extractor reads them.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_with(pairs: &[(&'static str, &str)]) -> bool {
        let trusted = [
            "https://auth.example.com".to_owned(),
            "https://app.example.com".to_owned(),
        ];
        allowed(&crate::http::test_headers(pairs), &trusted)
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
    const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");

    #[test]
    fn clients_that_are_not_browsers_keep_working() {
        assert!(allowed_with(&[JSON]));
        assert!(allowed_with(&[(
            "content-type",
            "application/vnd.api+json"
        )]));
        assert!(allowed_with(&[]), "no body, no origin: curl, a server");
    }

    #[test]
    fn trusted_origins_and_same_origin_browsers_pass() {
        assert!(allowed_with(&[
            FORM,
            ("origin", "https://auth.example.com")
        ]));
        assert!(allowed_with(&[
            FORM,
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-site")
        ]));
        assert!(allowed_with(&[FORM, ("sec-fetch-site", "same-origin")]));
        assert!(allowed_with(&[("sec-fetch-site", "none")]));
    }

    #[test]
    fn what_a_cross_site_page_can_send_is_refused() {
        assert!(!allowed_with(&[FORM]), "a form without any proof");
        assert!(!allowed_with(&[("content-type", "text/plain")]));
        assert!(!allowed_with(&[(
            "content-type",
            "multipart/form-data; boundary=x"
        )]));
        assert!(!allowed_with(&[FORM, ("origin", "https://evil.test")]));
        assert!(!allowed_with(&[FORM, ("origin", "null")]));
        assert!(
            !allowed_with(&[("origin", "https://evil.test")]),
            "a body without a type from a page"
        );
        assert!(!allowed_with(&[JSON, ("sec-fetch-site", "cross-site")]));
        assert!(!allowed_with(&[
            FORM,
            ("origin", "https://evil.test"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(
            !allowed_with(&[FORM, ("origin", "https://auth.example.com.evil.test")]),
            "origins compare exactly"
        );
    }
}
