//! The session settings, declared once: refresh tokens and the two lifetimes of a session.
//! Validated into [`SessionSettings`].

use super::SessionSettings;
use crate::settings::{Checked, Dur, section};

section! {
    /// The session section.
    pub struct SessionSection {
        /// Issue refresh tokens at login.
        refresh_tokens: bool = true; Serve, "`true`";
        /// Sessions not refreshed for this long end.
        session_idle_ttl: Dur = Dur::secs(14 * 86_400); Serve, "`14d`";
        /// Sessions end this long after login.
        session_absolute_ttl: Dur = Dur::secs(30 * 86_400); Serve, "`30d`";
        /// How long a used refresh token may be replayed for the same successor.
        refresh_grace: Dur = Dur::secs(10); Serve, "`10s`";
    }
}

impl SessionSection {
    pub fn validate(self) -> Checked<SessionSettings> {
        Ok(SessionSettings {
            refresh_tokens: self.refresh_tokens,
            idle_ttl: self.session_idle_ttl.positive("session_idle_ttl")?,
            absolute_ttl: self.session_absolute_ttl.positive("session_absolute_ttl")?,
            refresh_grace: self.refresh_grace.positive("refresh_grace")?,
            ..SessionSettings::default()
        })
    }
}
