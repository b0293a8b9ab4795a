//! Request-body parsing as the `Body` extractor does it (JSON, `+json`, form encoding, whatever the
//! `Content-Type`), then the field reader the handlers use (`Fields`, with the domain parsers and the
//! password policy). Nothing may panic, and no error may echo a password back.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use keyway::auth::policy::PasswordPolicy;
use keyway::domain::{Email, LoginIdentifier, LoginPassword, Username};
use keyway::error::Error;
use keyway::http::extract::{Fields, parse_body, reject_unknown_keys};
use keyway_fuzz::body::{ContentType, Input};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static POLICY: LazyLock<PasswordPolicy> = LazyLock::new(|| PasswordPolicy::new(8, None));

const SECRET_FIELDS: [&str; 3] = ["password", "currentPassword", "passwordConfirmation"];

fuzz_target!(|input: Input| {
    let mut headers = HeaderMap::new();
    let value = match input.content_type {
        ContentType::Missing => None,
        ContentType::Json => Some(HeaderValue::from_static("application/json")),
        ContentType::JsonWithCharset => {
            Some(HeaderValue::from_static("application/json; charset=utf-8"))
        }
        ContentType::ProblemJson => Some(HeaderValue::from_static("application/problem+json")),
        ContentType::Form => Some(HeaderValue::from_static(
            "application/x-www-form-urlencoded",
        )),
        ContentType::Raw(raw) => match HeaderValue::from_bytes(&raw) {
            Ok(v) => Some(v),
            Err(_) => return,
        },
    };
    if let Some(v) = value {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let Ok(body) = parse_body(&headers, &input.body) else {
        return;
    };

    // The reads of login, register and change-password, in one pass.
    let mut fields = Fields::new(&body);
    fields.no_unknown(&["identifier", "password", "deviceId", "email", "username"]);
    let identifier = fields.parsed("identifier", false, LoginIdentifier::parse);
    let login = fields.parsed("password", true, LoginPassword::parse);
    let _ = fields.optional_string("deviceId");
    let email = fields.parsed("email", false, Email::parse);
    let username = fields.parsed("username", false, Username::parse);
    let identity = [identifier.as_ref().map_or("", LoginIdentifier::as_str)];
    let new = fields.parsed("currentPassword", true, |p| POLICY.parse(p, &identity));
    let confirmation = fields.string("passwordConfirmation", true);
    if let (Some(p), Some(c)) = (&new, confirmation)
        && p.expose() != c
    {
        fields.fail("passwordConfirmation", "Passwords do not match");
    }
    match fields.finish(identifier.zip(login).zip(email).zip(username).zip(new)) {
        Ok(((((identifier, _), email), username), _)) => {
            let chars = identifier.as_str().chars().count();
            assert!((1..=LoginIdentifier::MAX_CHARS).contains(&chars));
            assert_eq!(email.as_str(), email.as_str().to_lowercase());
            assert!(username.as_str().chars().count() >= Username::MIN_CHARS);
        }
        Err(Error::Fields(errors)) => {
            assert!(!errors.is_empty());
            for e in &errors {
                let secret = e.path.iter().any(|p| SECRET_FIELDS.contains(&p.as_str()));
                assert!(
                    !(secret && e.value.is_some()),
                    "a password was echoed: {e:?}"
                );
            }
        }
        Err(other) => panic!("the field reader failed outside validation: {other}"),
    }
    let _ = reject_unknown_keys(&body, &["username", "email", "password"]);
});
