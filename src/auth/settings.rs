//! The core's own settings, declared once: who may register and as what, the password rules, the
//! mailed codes and where their links land, and how long the audit trail is kept. Validated, with the
//! limits and the pages' path, into [`AuthSettings`].

use super::throttle::settings::Limits;
use super::{AuthSettings, audit, policy};
use crate::settings::{Checked, Dur, Invalid, section};

section! {
    /// The accounts section.
    pub struct AccountSection {
        /// Whether anyone may register.
        allow_register: bool = true; Serve, "`true`";
        /// Role given to new accounts (type or name).
        default_role: String = "authenticated".into(); Serve, "`authenticated`";
        /// Require a confirmed email before login.
        email_confirmation: bool = false; Serve, "`false`";
        /// Minimum length of new passwords in characters (Strapi's is 6).
        password_min_length: usize = 8; Serve, "`8`";
        /// Range API of an online breached-password check (k-anonymity, e.g.
        /// `https://api.pwnedpasswords.com/range`); empty is off.
        pwned_check_url: String = String::new(); Serve, "empty (off)";
        /// How long a password-reset code works.
        reset_code_ttl: Dur = Dur::secs(3600); Serve, "`1h`";
        /// How long an email-confirmation code works.
        confirmation_code_ttl: Dur = Dur::secs(24 * 3600); Serve, "`24h`";
        /// Page that reset links open, `?code=` appended (default: the hosted page).
        reset_url: Option<String> = None; Serve, "hosted page";
        /// Where confirmation links land (default: the hosted page).
        confirmation_redirect: Option<String> = None; Serve, "hosted page";
        /// How long audit events are kept.
        audit_retention: Dur = Dur(audit::DEFAULT_RETENTION); Serve, "`90d`";
    }
}

impl AccountSection {
    /// `pages_path` is where the hosted pages live, for the links in mail.
    pub fn validate(self, limits: Limits, pages_path: String) -> Checked<AuthSettings> {
        for (key, url) in [
            ("reset_url", &self.reset_url),
            ("confirmation_redirect", &self.confirmation_redirect),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(Invalid::new(key, "must be an http:// or https:// URL"));
            }
        }
        let max = crate::domain::PASSWORD_MAX_BYTES;
        if !(1..=max).contains(&self.password_min_length) {
            return Err(Invalid::new(
                "password_min_length",
                format!("must be between 1 and {max}"),
            ));
        }
        let url = self.pwned_check_url.trim();
        let pwned_check = if url.is_empty() {
            None
        } else if url.starts_with("https://") || url.starts_with("http://") {
            Some(policy::BreachCheckSettings {
                range_url: url.trim_end_matches('/').to_owned(),
                timeout: policy::DEFAULT_BREACH_CHECK_TIMEOUT,
            })
        } else {
            return Err(Invalid::new(
                "pwned_check_url",
                format!("'{url}' must be an http:// or https:// URL (or empty: off)"),
            ));
        };
        Ok(AuthSettings {
            allow_register: self.allow_register,
            default_role: self.default_role,
            email_confirmation: self.email_confirmation,
            password_min_chars: self.password_min_length,
            reset_code_ttl: self.reset_code_ttl.positive("reset_code_ttl")?,
            confirmation_code_ttl: self
                .confirmation_code_ttl
                .positive("confirmation_code_ttl")?,
            reset_url: self.reset_url,
            confirmation_redirect: self.confirmation_redirect,
            pages_path,
            pwned_check,
            rate_limits: limits.rate_limits,
            throttle: limits.throttle,
            audit_retention: self.audit_retention.positive("audit_retention")?,
            ipv6_prefix_len: limits.ipv6_prefix_len,
        })
    }
}
