//! Request-body parsing as the `Body` extractor does it (JSON, `+json`, form encoding, whatever the
//! `Content-Type`), then every body type of the API read from the result with its own rules (the
//! domain parsers, the password policy, the unknown-key rules). Nothing may panic, no error may echo a
//! password back, and what is accepted meets the domain types' bounds.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use keyway::auth::policy::PasswordPolicy;
use keyway::domain::{LoginIdentifier, Username};
use keyway::error::Error;
use keyway::http::account::{EmailRequest, ResetPasswordRequest};
use keyway::http::auth::{
    ChangePasswordRequest, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest,
};
use keyway::http::body::{Body, NoUnknown, parse_body};
use keyway_fuzz::body::{ContentType, Input};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static POLICY: LazyLock<PasswordPolicy> = LazyLock::new(|| PasswordPolicy::new(8, None));

const SECRET_FIELDS: [&str; 3] = ["password", "currentPassword", "passwordConfirmation"];

/// An answer is the value, the field errors (none echoing a secret), or registration's refusal of
/// unknown keys; anything else is the reader failing outside validation.
fn check<T>(read: Result<T, Error>, accepted: impl FnOnce(T)) {
    match read {
        Ok(value) => accepted(value),
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
        Err(Error::Validation(message)) => assert!(message.starts_with("Invalid parameters: ")),
        Err(other) => panic!("the field reader failed outside validation: {other}"),
    }
}

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
    let body = Body(body);
    check(body.read::<LoginRequest>(()), |login| {
        let chars = login.identifier.as_str().chars().count();
        assert!((1..=LoginIdentifier::MAX_CHARS).contains(&chars));
    });
    check(body.read::<RegisterRequest>(&POLICY), |register| {
        let email = register.email.as_str();
        assert_eq!(email, email.to_lowercase());
        assert!(register.username.as_str().chars().count() >= Username::MIN_CHARS);
    });
    let account = ["alice", "alice@example.com"];
    check(
        body.read::<ChangePasswordRequest>((&POLICY, account)),
        |change| assert!(!account.contains(&change.password.expose())),
    );
    check(body.read::<ResetPasswordRequest>(&POLICY), |reset| {
        assert!(!reset.code.is_empty());
    });
    check(body.read::<NoUnknown<EmailRequest>>(()), |_| {});
    check(body.read::<EmailRequest>(()), |request| {
        assert_eq!(request.email.as_str(), request.as_sent.to_lowercase());
    });
    check(body.read::<LogoutRequest>(()), |_| {});
    check(body.read::<RefreshRequest>(()), |_| {});
});
