//! Validated input types. A value of one of these types is proof that the input passed the rules, so the
//! core never re-checks a username, an email or a password it was handed.
//!
//! Each `parse` error is the message Strapi's yup schema would give for the field, so the HTTP layer can
//! put it straight into the validation envelope.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// Longest password accepted, in bytes. Long enough for any passphrase or password manager, short enough
/// that hashing it cannot be used to burn CPU. Nothing is ever truncated.
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// What a validated string that is no secret offers besides its `parse`: the text (`as_str`), and
/// `Debug` and `Display` that show it. One definition, so that every such type reads the same way.
macro_rules! shown_text {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// What a password type offers besides its `parse`: the text, only through the explicit `expose`,
/// and a `Debug` that shows a placeholder, so a password can never be printed or logged by accident.
macro_rules! secret_text {
    ($name:ident) => {
        impl $name {
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }
    };
}

/// A username: 3 to 255 characters, none of them control characters, no surrounding whitespace.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!(
                "username must be at least {} characters",
                Self::MIN_CHARS
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!(
                "username must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("username must not contain control characters".into());
        }
        if raw.trim() != raw {
            return Err("username must not start or end with whitespace".into());
        }
        Ok(Self(raw.to_owned()))
    }
}

shown_text!(Username);

/// An email address, stored lower-cased (Strapi matches emails case-insensitively by lower-casing both
/// sides). The check is deliberately structural — one `@`, a non-empty local part, a dotted domain of
/// valid labels — because only a delivered message proves an address exists.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;
    const MIN_LEN: usize = 6;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || "email must be a valid email".to_owned();
        if raw.len() > Self::MAX_LEN || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(invalid());
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid());
        }
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !labels.iter().all(label_ok) {
            return Err(invalid());
        }
        if raw.chars().count() < Self::MIN_LEN {
            return Err(format!(
                "email must be at least {} characters",
                Self::MIN_LEN
            ));
        }
        Ok(Self(raw.to_lowercase()))
    }
}

shown_text!(Email);

/// What every password field asks, chosen or typed at login: present, and at most
/// [`PASSWORD_MAX_BYTES`], so an oversized body cannot make the server hash megabytes.
fn bounded_password(raw: &str) -> Result<SecretString, String> {
    if raw.is_empty() {
        return Err("password is a required field".into());
    }
    if raw.len() > PASSWORD_MAX_BYTES {
        return Err(format!(
            "password must be at most {PASSWORD_MAX_BYTES} bytes"
        ));
    }
    Ok(SecretString::from(raw))
}

/// A syntactically valid new password: present, at most [`PASSWORD_MAX_BYTES`], any Unicode. Whether
/// it is good enough (length, breached lists, the account's own name) is the policy's call, in
/// `auth::policy`, because that depends on configuration and on the account. Held as a secret so it
/// can never be printed or logged by accident; `Debug` shows a placeholder.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Reads a password chosen by a user (register, reset, change, `keyway user add`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_password(raw).map(Self)
    }
}

secret_text!(Password);

/// What a login names its account by: a username or an email, as typed. Only bounded: no account has a
/// longer one (usernames stop at 255 characters, emails at 254 bytes), so anything longer is refused
/// before any lookup, hash or throttle state is spent on it.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginIdentifier(String);

impl LoginIdentifier {
    pub const MAX_CHARS: usize = Username::MAX_CHARS;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("identifier is a required field".into());
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "identifier must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LoginIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // People type passwords into the username field: never printed.
        f.write_str("LoginIdentifier(..)")
    }
}

/// A password typed at login. No policy applies (old accounts may predate the current one), only the
/// size bound, so an oversized body cannot be used to make the server hash megabytes.
#[derive(Clone)]
pub struct LoginPassword(SecretString);

impl LoginPassword {
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_password(raw).map(Self)
    }
}

secret_text!(LoginPassword);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn username_bounds() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"x".repeat(255)).is_ok());
        assert!(Username::parse(&"x".repeat(256)).is_err());
        assert_eq!(
            Username::parse("ab").unwrap_err(),
            "username must be at least 3 characters"
        );
        assert!(Username::parse("a\u{0}bc").is_err());
        assert!(Username::parse(" alice").is_err());
        assert!(Username::parse("alice ").is_err());
        // Multi-byte characters count once each, as in Strapi.
        assert!(Username::parse("żółw").is_ok());
        assert!(Username::parse("żó").is_err());
    }

    #[test]
    fn login_identifiers_are_bounded_like_usernames() {
        assert!(LoginIdentifier::parse(&"é".repeat(255)).is_ok());
        assert_eq!(
            LoginIdentifier::parse(&"é".repeat(256)).unwrap_err(),
            "identifier must be at most 255 characters"
        );
        assert!(LoginIdentifier::parse("").is_err());
        assert_eq!(LoginIdentifier::parse("Alice").unwrap().as_str(), "Alice");
    }

    #[test]
    fn usernames_keep_their_case() {
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "Alice");
    }

    #[test]
    fn email_accepts_ordinary_addresses_and_lowercases() {
        let e = Email::parse("Appsmith_User@Example.COM").unwrap();
        assert_eq!(e.as_str(), "appsmith_user@example.com");
        assert!(Email::parse("a.b+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for bad in [
            "",
            "not-an-email",
            "@example.com",
            "a@",
            "a@example",
            "a@@example.com",
            "a b@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
            "a@example.com\n",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err(),
                "email must be a valid email",
                "{bad:?}"
            );
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.com", "b".repeat(250))).is_err());
    }

    #[test]
    fn password_syntax() {
        assert_eq!(
            Password::parse("").unwrap_err(),
            "password is a required field"
        );
        // Length rules belong to the policy (auth::policy): any non-empty password parses.
        assert!(Password::parse("abc").is_ok());
        assert!(Password::parse(&"p".repeat(1024)).is_ok());
        assert!(Password::parse(&"p".repeat(1025)).is_err());
        // 1024 bytes is the bound even when fewer characters: 342 three-byte characters = 1026 bytes.
        assert!(Password::parse(&"€".repeat(342)).is_err());
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let p = Password::parse("hunter2-secret").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        let l = LoginPassword::parse("hunter2-secret").unwrap();
        assert!(!format!("{l:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn parsed_usernames_satisfy_the_rules(s in "\\PC{0,300}") {
            if let Ok(u) = Username::parse(&s) {
                let n = u.as_str().chars().count();
                prop_assert!((3..=255).contains(&n));
                prop_assert!(!u.as_str().chars().any(char::is_control));
                prop_assert_eq!(u.as_str().trim(), u.as_str());
            }
        }

        #[test]
        fn parsed_emails_are_lowercase_and_bounded(s in "[a-zA-Z0-9._%+-]{0,70}@[a-zA-Z0-9.-]{0,70}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(e.as_str(), s.to_lowercase());
                prop_assert!(e.as_str().len() <= Email::MAX_LEN);
                prop_assert_eq!(e.as_str().matches('@').count(), 1);
            }
        }

        #[test]
        fn email_parse_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
            }
        }

        #[test]
        fn passwords_are_never_truncated(s in "\\PC{1,400}") {
            match Password::parse(&s) {
                Ok(p) => prop_assert_eq!(p.expose(), s.as_str()),
                Err(_) => prop_assert!(s.len() > PASSWORD_MAX_BYTES),
            }
        }

        #[test]
        fn arbitrary_input_never_panics(s in any::<String>()) {
            let _ = Username::parse(&s);
            let _ = Email::parse(&s);
            let _ = Password::parse(&s);
            let _ = LoginPassword::parse(&s);
            let _ = LoginIdentifier::parse(&s);
        }
    }
}
