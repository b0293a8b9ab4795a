//! The refresh-token cookie: when to use it, how to set it, how to read and clear it. Attributes follow
//! Strapi's (`HttpOnly`, `SameSite=Lax`, `Path=/`), with `Secure` whenever `public_url` is https.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use std::time::Duration;

use crate::config::{CookieSecure, CookieSettings};

/// The request header with which a Strapi 5 client asks for cookie delivery.
pub const COOKIE_MODE_HEADER: &str = "x-strapi-refresh-cookie";

/// Whether this request wants the refresh token in a cookie rather than in the body.
pub fn wanted(settings: &CookieSettings, headers: &HeaderMap) -> bool {
    settings.always
        || headers
            .get(COOKIE_MODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("httponly"))
}

/// The refresh token the request carries in the cookie, if any.
pub fn read(settings: &CookieSettings, headers: &HeaderMap) -> Option<String> {
    read_named(&settings.name, headers)
}

/// The non-empty value of the cookie `name`, if the request carries it.
pub fn read_named(name: &str, headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// The cookie that ties a single sign-on to the browser that started it. Only the API reads it.
pub const SSO_COOKIE: &str = "keyway_sso";

/// `Set-Cookie` for the single sign-on binding. `SameSite=Lax`, because the provider's redirect back
/// is a cross-site top-level navigation, which Lax lets the cookie ride along with (Strict would not).
pub fn set_sso(settings: &CookieSettings, value: &str, max_age: Duration) -> HeaderValue {
    set_named(settings, (SSO_COOKIE, value), "/api/", max_age)
}

/// `Set-Cookie` that stores `token` for `max_age`.
pub fn set(settings: &CookieSettings, token: &str, max_age: Duration) -> HeaderValue {
    set_named(settings, (&settings.name, token), "/", max_age)
}

/// `Set-Cookie` for `name=value` under `path`: HttpOnly, `SameSite=Lax`, `Secure` as configured.
fn set_named(
    settings: &CookieSettings,
    (name, value): (&str, &str),
    path: &str,
    max_age: Duration,
) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .http_only(true)
        .secure(secure(settings))
        .same_site(SameSite::Lax)
        .path(path)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64));
    header_value(&cookie.build())
}

/// `Set-Cookie` that deletes the cookie.
pub fn clear(settings: &CookieSettings) -> HeaderValue {
    let mut cookie = Cookie::build((settings.name.as_str(), ""))
        .http_only(true)
        .secure(secure(settings))
        .same_site(SameSite::Lax)
        .path("/")
        .build();
    cookie.make_removal();
    header_value(&cookie)
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Names are validated at start-up and tokens are base64url, so this cannot fail; an empty
    // header is the harmless fallback.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// Whether the cookie gets `Secure`. `auto` follows the scheme of `public_url`, which the operator
/// states, never the request's `Host`: behind a proxy that forwards `Host: 127.0.0.1:8080`, a
/// Host-based guess would send production cookies over plain HTTP too.
fn secure(settings: &CookieSettings) -> bool {
    match settings.secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => settings.public_https,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    #[test]
    fn cookie_mode_by_header_or_setting() {
        let s = CookieSettings::default();
        assert!(!wanted(&s, &headers(&[])));
        assert!(wanted(&s, &headers(&[(COOKIE_MODE_HEADER, "httpOnly")])));
        assert!(!wanted(&s, &headers(&[(COOKIE_MODE_HEADER, "no")])));
        let always = CookieSettings { always: true, ..s };
        assert!(wanted(&always, &headers(&[])));
    }

    #[test]
    fn reads_the_named_cookie_among_others() {
        let s = CookieSettings::default();
        let h = headers(&[("cookie", "a=1; strapi_up_refresh=tok123; b=2")]);
        assert_eq!(read(&s, &h).as_deref(), Some("tok123"));
        assert_eq!(
            read(&s, &headers(&[("cookie", "strapi_up_refresh=")])),
            None
        );
        assert_eq!(read(&s, &headers(&[])), None);
    }

    #[test]
    fn attributes_follow_strapi_and_secure_follows_the_public_url() {
        let https = CookieSettings {
            public_https: true,
            ..CookieSettings::default()
        };
        let v = set(&https, "tok", Duration::from_secs(60));
        let v = v.to_str().unwrap();
        for part in [
            "strapi_up_refresh=tok",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=60",
            "Secure",
        ] {
            assert!(v.contains(part), "{v} lacks {part}");
        }
        let has_secure = |s: &CookieSettings| {
            set(s, "t", Duration::ZERO)
                .to_str()
                .unwrap()
                .contains("Secure")
        };
        let http = CookieSettings::default();
        assert!(!has_secure(&http), "plain-http public_url: no Secure");
        assert!(has_secure(&CookieSettings {
            secure: CookieSecure::Always,
            ..http.clone()
        }));
        assert!(!has_secure(&CookieSettings {
            secure: CookieSecure::Never,
            ..https.clone()
        }));
        assert!(
            clear(&https).to_str().unwrap().contains("Secure"),
            "the removal matches the cookie it removes"
        );
    }

    #[test]
    fn clearing_expires_the_cookie() {
        let v = clear(&CookieSettings::default());
        let v = v.to_str().unwrap();
        assert!(v.starts_with("strapi_up_refresh=;"), "{v}");
        assert!(v.contains("Max-Age=0"), "{v}");
    }
}
