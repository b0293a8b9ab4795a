//! The hosted pages' settings and the refresh cookie's, declared once. Declared here rather than in
//! `http` because configuration sits below it: `http` reads these types.

use serde::Deserialize;
use std::path::PathBuf;

use crate::settings::{Checked, Invalid, section};
use crate::templates::pages::PageTemplates;

section! {
    /// The pages section.
    pub struct PageSection {
        /// Path of the hosted login app.
        base_path: String = "/".into(); Serve, "`/`";
        /// Logo shown on the hosted pages: an http(s) URL or a path on this server.
        logo_url: Option<String> = None; Serve, "—";
        /// Accent colour of the hosted pages, #rgb or #rrggbb.
        accent_color: Option<String> = None; Serve, "—";
        /// Folder of hosted page template overrides, each named like its built-in (login.html,
        /// page.html, …).
        pages_templates_dir: Option<PathBuf> = None; Serve, "—";
    }
}

/// Settings of the hosted pages, validated by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSettings {
    /// Where the pages live: starts and ends with `/`.
    pub base_path: String,
    /// A logo shown above every page: an http(s) URL or a path on this server.
    pub logo_url: Option<String>,
    /// The accent colour, `#rgb` or `#rrggbb`.
    pub accent_color: Option<String>,
    /// Folder of page template overrides (`crate::templates::pages`).
    pub templates_dir: Option<PathBuf>,
}

impl Default for PageSettings {
    fn default() -> Self {
        Self {
            base_path: "/".into(),
            logo_url: None,
            accent_color: None,
            templates_dir: None,
        }
    }
}

impl PageSection {
    pub fn validate(self) -> Checked<PageSettings> {
        let path = self.base_path;
        let trimmed = path.trim_matches('/');
        let ok = trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            && !trimmed.split('/').any(|seg| seg == ".." || seg == ".")
            && !trimmed.starts_with("api")
            && !trimmed.starts_with(".well-known");
        if !ok {
            return Err(Invalid::new(
                "base_path",
                format!("'{path}' must be a plain path like /login (and not under /api)"),
            ));
        }
        if let Some(url) = &self.logo_url {
            let plain_path = url.starts_with('/') && !url.starts_with("//");
            if !(plain_path || url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Invalid::new("logo_url", "must be an http(s) URL or a path"));
            }
        }
        if let Some(color) = &self.accent_color {
            let hex = color.strip_prefix('#').unwrap_or("");
            if !matches!(hex.len(), 3 | 6) || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
                return Err(Invalid::new(
                    "accent_color",
                    format!("'{color}' must be #rgb or #rrggbb"),
                ));
            }
        }
        if let Some(dir) = &self.pages_templates_dir {
            // Loaded once here, thrown away, so a broken override stops start-up with its file and
            // line; the app loads it again when it is built.
            PageTemplates::load(Some(dir))
                .map_err(|e| Invalid::new("pages_templates_dir", format!("page template {e}")))?;
        }
        Ok(PageSettings {
            base_path: if trimmed.is_empty() {
                "/".into()
            } else {
                format!("/{trimmed}/")
            },
            logo_url: self.logo_url,
            accent_color: self.accent_color,
            templates_dir: self.pages_templates_dir,
        })
    }
}

section! {
    /// The refresh cookie section.
    pub struct CookieSection {
        /// Always deliver refresh tokens in an HttpOnly cookie (otherwise only when asked).
        refresh_cookie: bool = false; Serve, "`false`";
        /// Name of the refresh cookie.
        refresh_cookie_name: String = CookieSettings::default().name; Serve, "`strapi_up_refresh`";
        /// Secure attribute of the refresh cookie: auto (Secure when public_url is https), always
        /// or never.
        refresh_cookie_secure: CookieSecure = CookieSecure::Auto; Serve, "`auto`";
    }
}

impl CookieSection {
    pub fn validate(self) -> Checked<CookieSettings> {
        let name = self.refresh_cookie_name;
        let token_char = |ch: char| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch);
        if name.is_empty() || !name.chars().all(token_char) {
            return Err(Invalid::new(
                "refresh_cookie_name",
                format!("'{name}' is not a valid cookie name"),
            ));
        }
        Ok(CookieSettings {
            always: self.refresh_cookie,
            name,
            secure: self.refresh_cookie_secure,
            public_https: false,
        })
    }
}

/// The refresh-token cookie (Strapi's `sessions.cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// Always deliver the refresh token as a cookie, not only when the client asks with
    /// `x-strapi-refresh-cookie: httpOnly`.
    pub always: bool,
    pub name: String,
    pub secure: CookieSecure,
    /// Whether `public_url` is https: what `secure = auto` follows. Filled in from the public URL
    /// when the app is built (`App::with_auth`), so it cannot disagree with it.
    pub public_https: bool,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            always: false,
            // Strapi's name, so clients written for Strapi find it.
            name: "strapi_up_refresh".into(),
            secure: CookieSecure::Auto,
            public_https: false,
        }
    }
}

/// Whether the cookie gets the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// Secure when `public_url` is https.
    Auto,
    Always,
    Never,
}
