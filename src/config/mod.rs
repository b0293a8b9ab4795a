//! Configuration, resolved once at start-up. Each module declares its own settings (a section, see
//! [`crate::settings`]) and validates them into its own settings type; this module only layers the
//! sources and reports. The layers, each over the one before: the declared defaults, `keyway.toml`
//! (or `--config`), `KEYWAY_*` environment variables, command-line flags — merged by `figment`.
//! Secrets come from the environment or the file, or from a file named by the matching `*_FILE`
//! setting, never from a flag (flags show up in `ps`). A refused value stops start-up with a message
//! naming the setting and where it came from (the file, the variable or the flag).

mod flags;
mod layers;
mod pages;
mod transport;

use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::AuthSettings;
use crate::auth::mail::MailSettings;
use crate::auth::mail::settings::MailSection;
use crate::auth::password::HashParams;
use crate::auth::password::settings::HashSection;
use crate::auth::sessions::SessionSettings;
use crate::auth::sessions::settings::SessionSection;
use crate::auth::settings::AccountSection;
use crate::auth::sso::SsoSettings;
use crate::auth::sso::settings::SsoSection;
use crate::auth::throttle::settings::LimitSection;
use crate::auth::tokens::TokenSettings;
use crate::auth::tokens::settings::TokenSection;
use crate::settings::{Section, Setting};
use crate::store::DatabaseSettings;
use crate::store::settings::DatabaseSection;

pub use crate::auth::tokens::settings::MIN_JWT_SECRET_BYTES;
pub use crate::settings::{canonical_net, parse_duration};
pub use flags::{CommonArgs, ServeArgs};
pub use layers::ConfigError;
use pages::{CookieSection, PageSection};
pub use pages::{CookieSecure, CookieSettings, PageSettings};
use transport::TransportSection;
pub use transport::{ConnectionLimits, ForwardedHeader, MIN_HEADER_BYTES, TransportSettings};

#[derive(Clone)]
pub struct Config {
    /// Where to listen, connection limits, and what `http` knows of its callers.
    pub transport: TransportSettings,
    pub database_url: SecretString,
    /// Pool size, statement timeout and TLS of the database connection.
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub auth: AuthSettings,
    pub sessions: SessionSettings,
    pub cookie: CookieSettings,
    pub pages: PageSettings,
    pub hash: HashParams,
    /// How many password hashes may run at once.
    pub hash_concurrency: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How often a server reads the invalidation log for changes other processes made (a CLI `user
    /// block`, another node). On PostgreSQL, `NOTIFY` brings them at once and this is the safety net.
    pub invalidation_poll: Duration,
    /// Outgoing mail: SMTP server, sender, links and templates.
    pub mail: MailSettings,
    /// Single sign-on providers.
    pub sso: SsoSettings,
}

/// The sections, once: what [`settings`] lists (and so the flags, the variables, the file's
/// unknown-key check and the README's table), and what the tests read raw.
macro_rules! sections {
    ($($section:ty),* $(,)?) => {
        /// Every declared setting, section by section.
        pub fn settings() -> impl Iterator<Item = &'static Setting> {
            [$(<$section>::SETTINGS),*].into_iter().flatten()
        }

        /// Every section as read from `f`, before validation.
        #[cfg(test)]
        fn raw_sections(f: &Figment) -> Vec<String> {
            vec![$(format!("{:?}", f.extract_lossy::<$section>().map_err(|e| e.to_string()))),*]
        }
    };
}

sections!(
    TransportSection,
    DatabaseSection,
    TokenSection,
    SessionSection,
    CookieSection,
    AccountSection,
    LimitSection,
    HashSection,
    MailSection,
    PageSection,
    SsoSection,
);

impl Config {
    /// The built-in defaults: what `keyway serve` uses with no file, environment or flags.
    pub fn defaults() -> Self {
        Self::from_layers(&Figment::new(), Vec::new()).expect("the declared defaults are valid")
    }

    /// Each section read from the layers and validated by its module. `sso_names` are the
    /// single sign-on providers, known before their variables were layered in.
    fn from_layers(f: &Figment, sso_names: Vec<String>) -> Result<Self, ConfigError> {
        use layers::section;
        let database = section(f, DatabaseSection::validate)?;
        let transport = section(f, TransportSection::validate)?;
        let pages = section(f, PageSection::validate)?;
        let limits = section(f, LimitSection::validate)?;
        let auth = section(f, |s: AccountSection| {
            s.validate(limits, pages.base_path.clone())
        })?;
        let (hash, hash_concurrency) = section(f, HashSection::validate)?;
        let mail = section(f, MailSection::validate)?;
        let sso = section(f, |s: SsoSection| {
            s.validate(sso_names, &mail.public_url, &pages.base_path)
        })?;
        Ok(Self {
            transport,
            database_url: database.url,
            database: database.settings,
            tokens: section(f, TokenSection::validate)?,
            auth,
            sessions: section(f, SessionSection::validate)?,
            cookie: section(f, CookieSection::validate)?,
            pages,
            hash,
            hash_concurrency,
            body_limit_bytes: 64 * 1024,
            invalidation_poll: database.invalidation_poll,
            mail,
            sso,
        })
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.transport.bind)
            .field(
                "database_url",
                &crate::store::redact_url(self.database_url.expose_secret()),
            )
            .field(
                "jwt_secret",
                &self.tokens.secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("auth", &self.auth)
            .field("hash", &self.hash)
            .field("mail", &self.mail)
            .finish_non_exhaustive()
    }
}

/// What the command line adds to the environment: the configuration file, and the flags given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Configuration file (TOML). Default: ./keyway.toml when it exists.
    pub config: Option<PathBuf>,
    /// The flags given, by setting key.
    pub flags: Vec<(String, String)>,
}

impl Overrides {
    /// The overrides of a configuration file (tests).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            config: Some(path.into()),
            flags: Vec::new(),
        }
    }

    /// Adds the flag of setting `key` (tests).
    pub fn flag(mut self, key: &str, value: impl Into<String>) -> Self {
        self.flags.push((key.to_owned(), value.into()));
        self
    }

    /// Resolves the final configuration. `env` looks up environment variables (injected so tests do
    /// not depend on the process environment).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = layers::Layer::file(self.config.as_deref())? {
            figment = figment.merge(file);
        }
        let figment = figment
            .merge(layers::Layer::environment(env))
            .merge(layers::Layer::flags(&self.flags));
        // A provider named only in KEYWAY_SSO_PROVIDERS or its flag has its keys in variables only;
        // which variables to read is known once the providers are.
        let names = layers::section(&figment, |s: SsoSection| Ok(s.provider_names()))?;
        let figment = figment.merge(layers::Layer::sso_environment(&names, env));
        Config::from_layers(&figment, names)
    }
}

#[cfg(test)]
mod tests;
