//! Configuration, resolved once at start-up: built-in defaults, then `keyway.toml` (or `--config`), then
//! `KEYWAY_*` environment variables, then command-line flags. Secrets are read from the environment or
//! the file, or from a file named by the matching `*_FILE` setting, never from a flag (flags show up in
//! `ps`). Everything is validated here, so a bad value stops start-up with a message that says what to fix.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::AuthSettings;
use crate::auth::mail::{MailSettings, Mailer};
use crate::auth::password::HashParams;
use crate::auth::sessions::SessionSettings;
use crate::auth::sso::{Protocol, ProviderSettings, SsoSettings};
use crate::auth::throttle::{Limit, RateLimitSettings, ThrottleSettings};
use crate::auth::tokens::{KeyAlgorithm, TokenSettings};
use crate::store::{DatabaseSettings, SslMode};
use crate::templates::pages::PageTemplates;

/// Shortest HS256 secret accepted: 256 bits, the size of the HMAC-SHA256 output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: SecretString,
    /// Pool size, statement timeout and TLS of the database connection.
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub auth: AuthSettings,
    pub sessions: SessionSettings,
    pub cookie: CookieSettings,
    pub pages: PageSettings,
    /// Addresses of reverse proxies whose `X-Forwarded-For` / `Forwarded` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one forwarding header trusted proxies are believed in; the other is ignored.
    pub forwarded_header: ForwardedHeader,
    /// Origins allowed to call the API from a browser (CORS); empty means none.
    pub cors_origins: Vec<String>,
    /// Longest time a request may take before it is answered 408.
    pub request_timeout: Duration,
    pub hash: HashParams,
    /// How many password hashes may run at once.
    pub hash_concurrency: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Connections at once, header size and header deadline.
    pub connections: ConnectionLimits,
    /// How often a server reads the invalidation log for changes other processes made (a CLI `user
    /// block`, another node). On PostgreSQL, `NOTIFY` brings them at once and this is the safety net.
    pub invalidation_poll: Duration,
    /// One `info` log line per request (method, path, status, latency). Off by default: a reverse
    /// proxy usually keeps access logs, and the line costs about a tenth of a cached token check.
    pub access_log: bool,
    /// Outgoing mail: SMTP server, sender, links and templates.
    pub mail: MailSettings,
    /// Single sign-on providers.
    pub sso: SsoSettings,
}

impl Config {
    /// The built-in defaults: what `keyway serve` uses with no file, environment or flags.
    pub fn defaults() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: SecretString::from("sqlite://keyway.db"),
            database: DatabaseSettings::default(),
            tokens: TokenSettings {
                secret: None,
                algorithm: KeyAlgorithm::EdDsa,
                ttl: Duration::from_secs(30 * 24 * 3600),
                issuer: "keyway".into(),
                audience: "keyway".into(),
                accept_strapi_tokens: false,
            },
            auth: AuthSettings {
                allow_register: true,
                default_role: "authenticated".into(),
                email_confirmation: false,
                password_min_chars: 8,
                reset_code_ttl: Duration::from_secs(3600),
                confirmation_code_ttl: Duration::from_secs(24 * 3600),
                reset_url: None,
                confirmation_redirect: None,
                pages_path: "/".into(),
                rate_limits: RateLimitSettings::default(),
                throttle: ThrottleSettings::default(),
                audit_retention: crate::auth::audit::DEFAULT_RETENTION,
                pwned_check: None,
                ipv6_prefix_len: crate::auth::DEFAULT_IPV6_PREFIX_LEN,
            },
            sessions: SessionSettings::default(),
            cookie: CookieSettings::default(),
            pages: PageSettings::default(),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(30),
            hash: HashParams::default(),
            hash_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            body_limit_bytes: 64 * 1024,
            connections: ConnectionLimits::default(),
            invalidation_poll: Duration::from_millis(500),
            access_log: false,
            mail: MailSettings::default(),
            sso: SsoSettings::default(),
        }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// Secure when `public_url` is https.
    Auto,
    Always,
    Never,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
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

/// Settings that can come from flags or `KEYWAY_*` variables (clap reads both; the flag wins). The
/// flags are `serve`'s (and `doctor`'s); other commands read the same variables through
/// [`Overrides::from_environment`]. The file and database settings every command takes are
/// [`DatabaseArgs`], copied in by [`DatabaseArgs::apply`].
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Overrides {
    /// Configuration file (TOML). Default: ./keyway.toml when it exists.
    #[arg(skip)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default sqlite://keyway.db).
    #[arg(skip)]
    pub database_url: Option<String>,
    /// File holding the database URL (for URLs with a password).
    #[arg(skip)]
    pub database_url_file: Option<PathBuf>,
    /// Most database connections kept open (default 2 for SQLite, 10 for PostgreSQL).
    #[arg(skip)]
    pub database_pool_size: Option<u32>,
    /// PostgreSQL: longest a statement may run before the server cancels it (default 30s; 0 is no
    /// limit).
    #[arg(skip)]
    pub database_statement_timeout: Option<String>,
    /// PostgreSQL: TLS mode, as libpq's sslmode (default: the URL's sslmode, else prefer).
    #[arg(skip)]
    pub database_sslmode: Option<SslMode>,
    /// SQLite: start even when other local users may read the database file (default false: it
    /// holds the signing keys, so start-up stops and says `chmod 600 FILE`).
    #[arg(skip)]
    pub allow_readable_database: Option<bool>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "KEYWAY_BIND")]
    pub bind: Option<String>,
    /// File holding the HS256 secret (KEYWAY_JWT_SECRET in the environment also works).
    #[arg(long, env = "KEYWAY_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Access-token lifetime: seconds, or a number with s, m, h or d (default 30d).
    #[arg(long, env = "KEYWAY_JWT_TTL")]
    pub jwt_ttl: Option<String>,
    #[arg(long, env = "KEYWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "KEYWAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Algorithm of generated signing keys: EdDSA (default), ES256 or RS256.
    #[arg(long, env = "KEYWAY_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<KeyAlgorithm>,
    /// Accept tokens Strapi issued with the same secret until they expire (default false).
    #[arg(long, env = "KEYWAY_ACCEPT_STRAPI_TOKENS")]
    pub accept_strapi_tokens: Option<bool>,
    /// Issue refresh tokens at login (default true).
    #[arg(long, env = "KEYWAY_REFRESH_TOKENS")]
    pub refresh_tokens: Option<bool>,
    /// Sessions not refreshed for this long end (default 14d).
    #[arg(long, env = "KEYWAY_SESSION_IDLE_TTL")]
    pub session_idle_ttl: Option<String>,
    /// Sessions end this long after login (default 30d).
    #[arg(long, env = "KEYWAY_SESSION_ABSOLUTE_TTL")]
    pub session_absolute_ttl: Option<String>,
    /// How long a used refresh token may be replayed for the same successor (default 10s).
    #[arg(long, env = "KEYWAY_REFRESH_GRACE")]
    pub refresh_grace: Option<String>,
    /// Route rate limits on the auth routes (default true).
    #[arg(long, env = "KEYWAY_RATE_LIMIT")]
    pub rate_limit: Option<bool>,
    /// Requests per window per route and client (default 10).
    #[arg(long, env = "KEYWAY_RATE_LIMIT_MAX")]
    pub rate_limit_max: Option<u32>,
    /// Rate-limit window (default 60s).
    #[arg(long, env = "KEYWAY_RATE_LIMIT_WINDOW")]
    pub rate_limit_window: Option<String>,
    /// Per-account login throttling (default true).
    #[arg(long, env = "KEYWAY_LOGIN_THROTTLE")]
    pub login_throttle: Option<bool>,
    /// Reverse proxies whose forwarding headers are believed: addresses or CIDRs, comma-separated.
    #[arg(long, env = "KEYWAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Servers that relay many users' requests (an Appsmith or Retool server): addresses or CIDRs,
    /// comma-separated. Their route limits count per identifier, under relay_rate_limit_max.
    #[arg(long, env = "KEYWAY_RELAY_CLIENTS", value_delimiter = ',')]
    pub relay_clients: Option<Vec<String>>,
    /// Requests per window per route from one relay client, all its users together (default 600).
    #[arg(long, env = "KEYWAY_RELAY_RATE_LIMIT_MAX")]
    pub relay_rate_limit_max: Option<u32>,
    /// Which header trusted proxies report the client in: x-forwarded-for (default) or forwarded.
    #[arg(long, env = "KEYWAY_FORWARDED_HEADER")]
    pub forwarded_header: Option<ForwardedHeader>,
    /// IPv6 clients are limited per network of this many leading bits (default 64, 1 to 128).
    #[arg(long, env = "KEYWAY_IPV6_PREFIX_LEN")]
    pub ipv6_prefix_len: Option<u8>,
    /// Browser origins allowed to call the API (CORS), comma-separated; default none.
    #[arg(long, env = "KEYWAY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// How long audit events are kept (default 90d).
    #[arg(long, env = "KEYWAY_AUDIT_RETENTION")]
    pub audit_retention: Option<String>,
    /// Longest a request may take (default 30s).
    #[arg(long, env = "KEYWAY_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Path of the hosted login app (default /).
    #[arg(long, env = "KEYWAY_BASE_PATH")]
    pub base_path: Option<String>,
    /// Logo shown on the hosted pages: an http(s) URL or a path on this server.
    #[arg(long, env = "KEYWAY_LOGO_URL")]
    pub logo_url: Option<String>,
    /// Accent colour of the hosted pages, #rgb or #rrggbb.
    #[arg(long, env = "KEYWAY_ACCENT_COLOR")]
    pub accent_color: Option<String>,
    /// Folder of hosted page template overrides, each named like its built-in (login.html,
    /// page.html, …).
    #[arg(long, env = "KEYWAY_PAGES_TEMPLATES_DIR")]
    pub pages_templates_dir: Option<PathBuf>,
    /// How long a password-reset code works (default 1h).
    #[arg(long, env = "KEYWAY_RESET_CODE_TTL")]
    pub reset_code_ttl: Option<String>,
    /// How long an email-confirmation code works (default 24h).
    #[arg(long, env = "KEYWAY_CONFIRMATION_CODE_TTL")]
    pub confirmation_code_ttl: Option<String>,
    /// Page that reset links open, `?code=` appended (default: the hosted page under public_url).
    #[arg(long, env = "KEYWAY_RESET_URL")]
    pub reset_url: Option<String>,
    /// Where confirmation links land (default: the hosted page under public_url).
    #[arg(long, env = "KEYWAY_CONFIRMATION_REDIRECT")]
    pub confirmation_redirect: Option<String>,
    /// Always deliver refresh tokens in an HttpOnly cookie (default false: only when asked).
    #[arg(long, env = "KEYWAY_REFRESH_COOKIE")]
    pub refresh_cookie: Option<bool>,
    /// Name of the refresh cookie (default strapi_up_refresh).
    #[arg(long, env = "KEYWAY_REFRESH_COOKIE_NAME")]
    pub refresh_cookie_name: Option<String>,
    /// Secure attribute of the refresh cookie: auto (default: Secure when public_url is https),
    /// always or never.
    #[arg(long, env = "KEYWAY_REFRESH_COOKIE_SECURE")]
    pub refresh_cookie_secure: Option<CookieSecure>,
    /// Whether anyone may register (default true).
    #[arg(long, env = "KEYWAY_ALLOW_REGISTER")]
    pub allow_register: Option<bool>,
    /// Role given to new accounts (default authenticated).
    #[arg(long, env = "KEYWAY_DEFAULT_ROLE")]
    pub default_role: Option<String>,
    /// Require a confirmed email before login (default false).
    #[arg(long, env = "KEYWAY_EMAIL_CONFIRMATION")]
    pub email_confirmation: Option<bool>,
    /// Minimum length of new passwords in characters (default 8; Strapi's is 6).
    #[arg(long, env = "KEYWAY_PASSWORD_MIN_LENGTH")]
    pub password_min_length: Option<usize>,
    /// Range API of an online breached-password check (k-anonymity, e.g.
    /// https://api.pwnedpasswords.com/range); empty is off (the default).
    #[arg(long, env = "KEYWAY_PWNED_CHECK_URL")]
    pub pwned_check_url: Option<String>,
    /// argon2id memory cost in KiB (default 19456).
    #[arg(long, env = "KEYWAY_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: Option<u32>,
    /// argon2id iterations (default 2).
    #[arg(long, env = "KEYWAY_ARGON2_ITERATIONS")]
    pub argon2_iterations: Option<u32>,
    /// argon2id parallelism (default 1).
    #[arg(long, env = "KEYWAY_ARGON2_PARALLELISM")]
    pub argon2_parallelism: Option<u32>,
    /// Password hashes allowed to run at once (default: number of CPUs).
    #[arg(long, env = "KEYWAY_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// How often to read the invalidation log for other processes' changes (default 500ms).
    #[arg(long, env = "KEYWAY_INVALIDATION_POLL")]
    pub invalidation_poll: Option<String>,
    /// Log one line per request at info (default false).
    #[arg(long, env = "KEYWAY_ACCESS_LOG")]
    pub access_log: Option<bool>,
    /// Connections served at once; more wait to be accepted (default 10000).
    #[arg(long, env = "KEYWAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest request line plus headers, in bytes (default 16384, at least 8192); more is 431.
    #[arg(long, env = "KEYWAY_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Longest a client may take to send a request's headers (default 10s).
    #[arg(long, env = "KEYWAY_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// Longest a connection may stay open with no request after its last one (default 60s).
    #[arg(long, env = "KEYWAY_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Streams one HTTP/2 connection may have open at once (default 100).
    #[arg(long, env = "KEYWAY_HTTP2_MAX_STREAMS")]
    pub http2_max_streams: Option<u32>,
    /// File holding the SMTP URL (KEYWAY_SMTP_URL in the environment also works): smtp://host:port
    /// (plain, local relays), smtp+starttls://user:pass@host or smtps://user:pass@host. Without one,
    /// `serve` refuses to start unless mail_to_log is on or --demo is given.
    #[arg(long, env = "KEYWAY_SMTP_URL_FILE")]
    pub smtp_url_file: Option<PathBuf>,
    /// Without smtp_url, write account mail (reset links included) to the log instead; development
    /// only (default false: `serve` refuses to start without SMTP, except with --demo).
    #[arg(long, env = "KEYWAY_MAIL_TO_LOG")]
    pub mail_to_log: Option<bool>,
    /// Sender of the account mails (default "Keyway <no-reply@localhost>").
    #[arg(long, env = "KEYWAY_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Public base URL of this server, for links in mails (default http://127.0.0.1:8080).
    #[arg(long, env = "KEYWAY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Product name shown in mails (default Keyway).
    #[arg(long, env = "KEYWAY_APP_NAME")]
    pub app_name: Option<String>,
    /// Folder of mail template overrides: NAME.subject, NAME.txt, NAME.html with NAME one of
    /// email-confirmation, reset-password, password-changed.
    #[arg(long, env = "KEYWAY_MAIL_TEMPLATES_DIR")]
    pub mail_templates_dir: Option<PathBuf>,
    /// Single sign-on providers to enable, comma-separated (each configured by
    /// KEYWAY_SSO_<NAME>_* variables or a [sso.<name>] table in the file).
    #[arg(long, env = "KEYWAY_SSO_PROVIDERS")]
    pub sso_providers: Option<String>,
    /// Front-end callback URLs a sign-in may ask to return to, besides each provider's own,
    /// comma-separated.
    #[arg(long, env = "KEYWAY_SSO_CALLBACK_ALLOWLIST")]
    pub sso_callback_allowlist: Option<String>,
    /// Link a provider identity to the existing account with the same email when the provider says
    /// the email is verified and that account's address was confirmed here with email_confirmation
    /// on (default false: such a sign-in is refused).
    #[arg(long, env = "KEYWAY_SSO_LINK_VERIFIED_EMAIL")]
    pub sso_link_verified_email: Option<bool>,
}

/// What every command takes: the configuration file and the database. Global flags, so they may stand
/// before or after the subcommand, and the only ones besides a command's own in its `--help`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Configuration and database (every command)")]
pub struct DatabaseArgs {
    /// Configuration file (TOML). Default: ./keyway.toml when it exists.
    #[arg(long, env = "KEYWAY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default sqlite://keyway.db).
    #[arg(
        long,
        env = "KEYWAY_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// File holding the database URL (for URLs with a password).
    #[arg(long, env = "KEYWAY_DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,
    /// Most database connections kept open (default 2 for SQLite, 10 for PostgreSQL).
    #[arg(long, env = "KEYWAY_DATABASE_POOL_SIZE", global = true)]
    pub database_pool_size: Option<u32>,
    /// PostgreSQL: longest a statement may run before the server cancels it (default 30s; 0 is no
    /// limit).
    #[arg(long, env = "KEYWAY_DATABASE_STATEMENT_TIMEOUT", global = true)]
    pub database_statement_timeout: Option<String>,
    /// PostgreSQL: TLS mode, as libpq's sslmode (default: the URL's sslmode, else prefer).
    #[arg(long, env = "KEYWAY_DATABASE_SSLMODE", global = true)]
    pub database_sslmode: Option<SslMode>,
    /// SQLite: start even when other local users may read the database file (default false: it
    /// holds the signing keys, so start-up stops and says `chmod 600 FILE`).
    #[arg(long, env = "KEYWAY_ALLOW_READABLE_DATABASE", global = true)]
    pub allow_readable_database: Option<bool>,
}

impl DatabaseArgs {
    /// Copies these settings into `o`, where `resolve` reads them.
    pub fn apply(self, o: &mut Overrides) {
        o.config = self.config;
        o.database_url = self.database_url;
        o.database_url_file = self.database_url_file;
        o.database_pool_size = self.database_pool_size;
        o.database_statement_timeout = self.database_statement_timeout;
        o.database_sslmode = self.database_sslmode;
        o.allow_readable_database = self.allow_readable_database;
    }
}

impl Overrides {
    /// The settings as the `KEYWAY_*` variables give them, for commands without `serve`'s flags (an
    /// admin command still hashes with the configured argon2 parameters and policy).
    pub fn from_environment() -> Result<Self, clap::Error> {
        use clap::{Args, FromArgMatches};
        let cmd = Self::augment_args(clap::Command::new("keyway").no_binary_name(true));
        let matches = cmd.try_get_matches_from(std::iter::empty::<String>())?;
        Self::from_arg_matches(&matches)
    }
}

/// The configuration file. Same names as the flags, in snake_case; unknown keys are an error so a typo
/// does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub database_url_file: Option<PathBuf>,
    pub database_pool_size: Option<u32>,
    pub database_statement_timeout: Option<TtlValue>,
    pub database_sslmode: Option<SslMode>,
    pub allow_readable_database: Option<bool>,
    pub jwt_secret: Option<String>,
    pub jwt_secret_file: Option<PathBuf>,
    pub jwt_ttl: Option<TtlValue>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_algorithm: Option<KeyAlgorithm>,
    pub accept_strapi_tokens: Option<bool>,
    pub refresh_tokens: Option<bool>,
    pub session_idle_ttl: Option<TtlValue>,
    pub session_absolute_ttl: Option<TtlValue>,
    pub refresh_grace: Option<TtlValue>,
    pub refresh_cookie: Option<bool>,
    pub refresh_cookie_name: Option<String>,
    pub base_path: Option<String>,
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
    pub pages_templates_dir: Option<PathBuf>,
    pub rate_limit: Option<bool>,
    pub rate_limit_max: Option<u32>,
    pub rate_limit_window: Option<TtlValue>,
    /// Per-route overrides: `"/api/auth/local" = { max = 20, window = "60s" }`.
    pub rate_limit_routes: Option<std::collections::HashMap<String, RouteLimit>>,
    pub login_throttle: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub relay_clients: Option<Vec<String>>,
    pub relay_rate_limit_max: Option<u32>,
    pub forwarded_header: Option<ForwardedHeader>,
    pub ipv6_prefix_len: Option<u8>,
    pub cors_origins: Option<Vec<String>>,
    pub request_timeout: Option<TtlValue>,
    pub audit_retention: Option<TtlValue>,
    pub reset_code_ttl: Option<TtlValue>,
    pub confirmation_code_ttl: Option<TtlValue>,
    pub reset_url: Option<String>,
    pub confirmation_redirect: Option<String>,
    pub refresh_cookie_secure: Option<CookieSecure>,
    pub allow_register: Option<bool>,
    pub default_role: Option<String>,
    pub email_confirmation: Option<bool>,
    pub password_min_length: Option<usize>,
    pub pwned_check_url: Option<String>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub hash_concurrency: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub header_read_timeout: Option<TtlValue>,
    pub idle_timeout: Option<TtlValue>,
    pub http2_max_streams: Option<u32>,
    pub access_log: Option<bool>,
    pub invalidation_poll: Option<TtlValue>,
    pub smtp_url: Option<String>,
    pub smtp_url_file: Option<PathBuf>,
    pub mail_to_log: Option<bool>,
    pub mail_from: Option<String>,
    pub public_url: Option<String>,
    pub app_name: Option<String>,
    pub mail_templates_dir: Option<PathBuf>,
    /// `[sso.<name>]` tables, one per provider.
    pub sso: Option<std::collections::BTreeMap<String, SsoProviderFile>>,
    pub sso_callback_allowlist: Option<Vec<String>>,
    pub sso_link_verified_email: Option<bool>,
}

/// One single sign-on provider in the file; `KEYWAY_SSO_<NAME>_<KEY>` variables override each key.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoProviderFile {
    /// `oidc` or `github`; by default `github` for the provider named github, else `oidc`.
    pub kind: Option<String>,
    pub issuer: Option<String>,
    /// Microsoft's preset: the directory (tenant) id.
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub display_name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub callback: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
}

/// One route's limit in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimit {
    pub max: u32,
    pub window: TtlValue,
}

/// A TTL in the file may be a number of seconds or a string like "30d".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TtlValue {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Addresses or CIDRs, canonical (an IPv4-mapped network is the IPv4 network it is, as the client
/// addresses it is compared with are); blank entries, as a trailing comma leaves, are skipped.
fn networks(setting: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(canonical_net)
                .map_err(|_| {
                    ConfigError::Invalid(format!("{setting}: '{p}' is not an address or CIDR"))
                })
        })
        .collect()
}

impl Overrides {
    /// Resolves the final configuration. `env` looks up environment variables (injected so tests do
    /// not depend on the process environment).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = self.read_file()?;
        let mut c = Config::defaults();
        let invalid = ConfigError::Invalid;

        if let Some(bind) = self.bind.clone().or(file.bind) {
            c.bind = bind.parse().map_err(|_| {
                invalid(format!(
                    "bind: '{bind}' is not an address like 127.0.0.1:8080"
                ))
            })?;
        }

        let url_file = self.database_url_file.clone().or(file.database_url_file);
        let url = match (&self.database_url, url_file, file.database_url) {
            (Some(u), _, _) => Some(u.clone()),
            (None, Some(path), _) => Some(read_secret_file(&path)?),
            (None, None, u) => u,
        };
        if let Some(url) = url {
            c.database_url = SecretString::from(url);
        }
        if let Some(n) = self.database_pool_size.or(file.database_pool_size) {
            if n == 0 {
                return Err(invalid("database_pool_size must be at least 1".into()));
            }
            c.database.pool_size = Some(n);
        }
        // Zero is allowed here, unlike the other durations: it is PostgreSQL's "no limit".
        let timeout = match (
            &self.database_statement_timeout,
            file.database_statement_timeout,
        ) {
            (Some(t), _) => Some(parse_duration(t)),
            (None, Some(TtlValue::Seconds(s))) => Some(Ok(Duration::from_secs(s))),
            (None, Some(TtlValue::Text(t))) => Some(parse_duration(&t)),
            (None, None) => None,
        };
        if let Some(t) = timeout {
            c.database.statement_timeout =
                t.map_err(|e| invalid(format!("database_statement_timeout: {e}")))?;
        }
        if let Some(mode) = self.database_sslmode.or(file.database_sslmode) {
            // Two answers to one question would leave the reader guessing which one is in force.
            if let Some(in_url) = url_sslmode(c.database_url.expose_secret())
                && in_url != mode.as_str()
            {
                return Err(invalid(format!(
                    "database_sslmode is {} but the database URL says sslmode={in_url}; \
                     set one of them",
                    mode.as_str()
                )));
            }
            c.database.ssl_mode = Some(mode);
        }

        if let Some(v) = self
            .allow_readable_database
            .or(file.allow_readable_database)
        {
            c.database.allow_readable_file = v;
        }

        // Secret precedence: a *_FILE setting over the value itself, environment over the file config.
        let secret_file = self.jwt_secret_file.clone().or(file.jwt_secret_file);
        let secret = match secret_file {
            Some(path) => Some(read_secret_file(&path)?),
            None => env("KEYWAY_JWT_SECRET").or(file.jwt_secret),
        };
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            if secret.len() < MIN_JWT_SECRET_BYTES {
                return Err(invalid(format!(
                    "the JWT secret is {} bytes; it must be at least {MIN_JWT_SECRET_BYTES} \
                     (generate one with: openssl rand -base64 48)",
                    secret.len()
                )));
            }
            c.tokens.secret = Some(SecretString::from(secret));
        }

        let ttl = |name: &str, flag: &Option<String>, file: Option<TtlValue>| {
            let parsed = match (flag, file) {
                (Some(t), _) => parse_duration(t),
                (None, Some(TtlValue::Seconds(s))) => Ok(Duration::from_secs(s)),
                (None, Some(TtlValue::Text(t))) => parse_duration(&t),
                (None, None) => return Ok(None),
            };
            match parsed {
                Ok(d) if d.is_zero() => Err(invalid(format!("{name} must be longer than zero"))),
                Ok(d) => Ok(Some(d)),
                Err(e) => Err(invalid(format!("{name}: {e}"))),
            }
        };
        if let Some(d) = ttl("jwt_ttl", &self.jwt_ttl, file.jwt_ttl)? {
            c.tokens.ttl = d;
        }
        if let Some(d) = ttl(
            "session_idle_ttl",
            &self.session_idle_ttl,
            file.session_idle_ttl,
        )? {
            c.sessions.idle_ttl = d;
        }
        if let Some(d) = ttl(
            "session_absolute_ttl",
            &self.session_absolute_ttl,
            file.session_absolute_ttl,
        )? {
            c.sessions.absolute_ttl = d;
        }
        if let Some(d) = ttl("refresh_grace", &self.refresh_grace, file.refresh_grace)? {
            c.sessions.refresh_grace = d;
        }
        if let Some(v) = self.rate_limit.or(file.rate_limit) {
            c.auth.rate_limits.enabled = v;
        }
        if let Some(v) = self.rate_limit_max.or(file.rate_limit_max) {
            if v == 0 {
                return Err(invalid(
                    "rate_limit_max must be at least 1 (or set rate_limit = false)".into(),
                ));
            }
            c.auth.rate_limits.default.max = v;
        }
        if let Some(d) = ttl(
            "rate_limit_window",
            &self.rate_limit_window,
            file.rate_limit_window,
        )? {
            c.auth.rate_limits.default.window = d;
        }
        for (route, limit) in file.rate_limit_routes.unwrap_or_default() {
            let window = match limit.window {
                TtlValue::Seconds(s) => Duration::from_secs(s),
                TtlValue::Text(t) => parse_duration(&t)
                    .map_err(|e| invalid(format!("rate_limit_routes.{route}: {e}")))?,
            };
            if !route.starts_with('/') || limit.max == 0 || window.is_zero() {
                return Err(invalid(format!(
                    "rate_limit_routes.{route}: a path like /api/auth/local with max ≥ 1 and a window"
                )));
            }
            // A key naming no limited route would be ignored, and that route would silently keep
            // the default: the same trap as a mistyped setting, refused the same way.
            let limited = crate::auth::throttle::LIMITED_ROUTES;
            if !limited.contains(&route.as_str()) {
                return Err(invalid(format!(
                    "rate_limit_routes.\"{route}\" names no rate-limited route; the limited \
                     routes are: {}",
                    limited.join(", ")
                )));
            }
            c.auth.rate_limits.routes.insert(
                route,
                Limit {
                    max: limit.max,
                    window,
                },
            );
        }
        if let Some(v) = self.login_throttle.or(file.login_throttle) {
            c.auth.throttle.enabled = v;
        }
        if let Some(list) = self.trusted_proxies.clone().or(file.trusted_proxies) {
            c.trusted_proxies = networks("trusted_proxies", &list)?;
        }
        if let Some(list) = self.relay_clients.clone().or(file.relay_clients) {
            c.auth.rate_limits.relay_clients = networks("relay_clients", &list)?;
        }
        if let Some(v) = self.relay_rate_limit_max.or(file.relay_rate_limit_max) {
            if v == 0 {
                return Err(invalid(
                    "relay_rate_limit_max must be at least 1 (or list no relay_clients)".into(),
                ));
            }
            c.auth.rate_limits.relay_max = v;
        }
        if let Some(v) = self.forwarded_header.or(file.forwarded_header) {
            c.forwarded_header = v;
        }
        if let Some(v) = self.ipv6_prefix_len.or(file.ipv6_prefix_len) {
            if !(1..=128).contains(&v) {
                return Err(invalid("ipv6_prefix_len must be between 1 and 128".into()));
            }
            c.auth.ipv6_prefix_len = v;
        }
        if let Some(list) = self.cors_origins.clone().or(file.cors_origins) {
            for origin in &list {
                let exact = url::Url::parse(origin).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.origin().ascii_serialization() == origin.trim_end_matches('/')
                });
                if !exact {
                    return Err(invalid(format!(
                        "cors_origins: '{origin}' must be an origin like https://app.example.com"
                    )));
                }
            }
            c.cors_origins = list
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect();
        }
        if let Some(d) = ttl(
            "request_timeout",
            &self.request_timeout,
            file.request_timeout,
        )? {
            c.request_timeout = d;
        }
        if let Some(path) = self.base_path.clone().or(file.base_path) {
            let trimmed = path.trim_matches('/');
            let ok = trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && !trimmed.split('/').any(|seg| seg == ".." || seg == ".")
                && !trimmed.starts_with("api")
                && !trimmed.starts_with(".well-known");
            if !ok {
                return Err(invalid(format!(
                    "base_path '{path}' must be a plain path like /login (and not under /api)"
                )));
            }
            c.pages.base_path = if trimmed.is_empty() {
                "/".into()
            } else {
                format!("/{trimmed}/")
            };
            c.auth.pages_path = c.pages.base_path.clone();
        }
        if let Some(url) = self.logo_url.clone().or(file.logo_url) {
            let plain_path = url.starts_with('/') && !url.starts_with("//");
            if !(plain_path || url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid("logo_url must be an http(s) URL or a path".into()));
            }
            c.pages.logo_url = Some(url);
        }
        if let Some(color) = self.accent_color.clone().or(file.accent_color) {
            let hex = color.strip_prefix('#').unwrap_or("");
            if !matches!(hex.len(), 3 | 6) || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "accent_color '{color}' must be #rgb or #rrggbb"
                )));
            }
            c.pages.accent_color = Some(color);
        }
        if let Some(dir) = self
            .pages_templates_dir
            .clone()
            .or(file.pages_templates_dir)
        {
            // Loaded once here, thrown away, so a broken override stops start-up with its file and
            // line; the app loads it again when it is built.
            PageTemplates::load(Some(&dir)).map_err(|e| invalid(format!("page template {e}")))?;
            c.pages.templates_dir = Some(dir);
        }
        if let Some(d) = ttl("reset_code_ttl", &self.reset_code_ttl, file.reset_code_ttl)? {
            c.auth.reset_code_ttl = d;
        }
        if let Some(d) = ttl(
            "confirmation_code_ttl",
            &self.confirmation_code_ttl,
            file.confirmation_code_ttl,
        )? {
            c.auth.confirmation_code_ttl = d;
        }
        for (name, flag, file_value, target) in [
            (
                "reset_url",
                &self.reset_url,
                file.reset_url,
                &mut c.auth.reset_url,
            ),
            (
                "confirmation_redirect",
                &self.confirmation_redirect,
                file.confirmation_redirect,
                &mut c.auth.confirmation_redirect,
            ),
        ] {
            if let Some(url) = flag.clone().or(file_value) {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(format!(
                        "{name} must be an http:// or https:// URL"
                    )));
                }
                *target = Some(url);
            }
        }
        if let Some(v) = self.jwt_algorithm.or(file.jwt_algorithm) {
            c.tokens.algorithm = v;
        }
        if let Some(v) = self.accept_strapi_tokens.or(file.accept_strapi_tokens) {
            if v && c.tokens.secret.is_none() {
                return Err(invalid(
                    "accept_strapi_tokens needs the Strapi JWT secret (KEYWAY_JWT_SECRET)".into(),
                ));
            }
            c.tokens.accept_strapi_tokens = v;
        }
        if let Some(v) = self.refresh_tokens.or(file.refresh_tokens) {
            c.sessions.refresh_tokens = v;
        }
        if let Some(v) = self.refresh_cookie.or(file.refresh_cookie) {
            c.cookie.always = v;
        }
        if let Some(v) = self
            .refresh_cookie_name
            .clone()
            .or(file.refresh_cookie_name)
        {
            let token_char =
                |ch: char| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch);
            if v.is_empty() || !v.chars().all(token_char) {
                return Err(invalid(format!(
                    "refresh_cookie_name '{v}' is not a valid cookie name"
                )));
            }
            c.cookie.name = v;
        }
        if let Some(v) = self.refresh_cookie_secure.or(file.refresh_cookie_secure) {
            c.cookie.secure = v;
        }
        if let Some(v) = self.jwt_issuer.clone().or(file.jwt_issuer) {
            c.tokens.issuer = v;
        }
        if let Some(v) = self.jwt_audience.clone().or(file.jwt_audience) {
            c.tokens.audience = v;
        }
        if let Some(v) = self.allow_register.or(file.allow_register) {
            c.auth.allow_register = v;
        }
        if let Some(v) = self.default_role.clone().or(file.default_role) {
            c.auth.default_role = v;
        }
        if let Some(v) = self.email_confirmation.or(file.email_confirmation) {
            c.auth.email_confirmation = v;
        }
        if let Some(v) = self.password_min_length.or(file.password_min_length) {
            if !(1..=crate::domain::PASSWORD_MAX_BYTES).contains(&v) {
                return Err(invalid(format!(
                    "password_min_length must be between 1 and {}",
                    crate::domain::PASSWORD_MAX_BYTES
                )));
            }
            c.auth.password_min_chars = v;
        }
        if let Some(url) = self.pwned_check_url.clone().or(file.pwned_check_url) {
            let url = url.trim();
            c.auth.pwned_check = if url.is_empty() {
                None
            } else if url.starts_with("https://") || url.starts_with("http://") {
                Some(crate::auth::policy::BreachCheckSettings {
                    range_url: url.trim_end_matches('/').to_owned(),
                    timeout: crate::auth::policy::DEFAULT_BREACH_CHECK_TIMEOUT,
                })
            } else {
                return Err(invalid(format!(
                    "pwned_check_url '{url}' must be an http:// or https:// URL (or empty: off)"
                )));
            };
        }
        if let Some(v) = self.argon2_memory_kib.or(file.argon2_memory_kib) {
            c.hash.m_cost_kib = v;
        }
        if let Some(v) = self.argon2_iterations.or(file.argon2_iterations) {
            c.hash.t_cost = v;
        }
        if let Some(v) = self.argon2_parallelism.or(file.argon2_parallelism) {
            c.hash.p_cost = v;
        }
        if let Some(v) = self.hash_concurrency.or(file.hash_concurrency) {
            if v == 0 {
                return Err(invalid("hash_concurrency must be at least 1".into()));
            }
            c.hash_concurrency = v;
        }
        if let Some(d) = ttl(
            "invalidation_poll",
            &self.invalidation_poll,
            file.invalidation_poll,
        )? {
            if d.is_zero() {
                return Err(invalid("invalidation_poll must be longer than zero".into()));
            }
            c.invalidation_poll = d;
        }
        if let Some(v) = self.access_log.or(file.access_log) {
            c.access_log = v;
        }
        if let Some(v) = self.max_connections.or(file.max_connections) {
            if v == 0 {
                return Err(invalid("max_connections must be at least 1".into()));
            }
            c.connections.max_connections = v;
        }
        if let Some(v) = self.max_header_bytes.or(file.max_header_bytes) {
            if v < MIN_HEADER_BYTES {
                return Err(invalid(format!(
                    "max_header_bytes must be at least {}",
                    MIN_HEADER_BYTES
                )));
            }
            c.connections.max_header_bytes = v;
        }
        if let Some(d) = ttl(
            "header_read_timeout",
            &self.header_read_timeout,
            file.header_read_timeout,
        )? {
            c.connections.header_read_timeout = d;
        }
        if let Some(d) = ttl("idle_timeout", &self.idle_timeout, file.idle_timeout)? {
            c.connections.idle_timeout = d;
        }
        if let Some(v) = self.http2_max_streams.or(file.http2_max_streams) {
            if v == 0 {
                return Err(invalid("http2_max_streams must be at least 1".into()));
            }
            c.connections.http2_max_streams = v;
        }

        // Same precedence as the JWT secret: the *_FILE setting, then the environment, then the file.
        let smtp_url_file = self.smtp_url_file.clone().or(file.smtp_url_file);
        let smtp_url = match smtp_url_file {
            Some(path) => Some(read_secret_file(&path)?),
            None => env("KEYWAY_SMTP_URL").or(file.smtp_url),
        };
        c.mail.smtp_url = smtp_url
            .filter(|u| !u.trim().is_empty())
            .map(SecretString::from);
        if let Some(v) = self.mail_to_log.or(file.mail_to_log) {
            c.mail.to_log = v;
        }
        if let Some(v) = self.mail_from.clone().or(file.mail_from) {
            c.mail.from = v;
        }
        if let Some(v) = self.public_url.clone().or(file.public_url) {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(invalid(format!(
                    "public_url '{v}' must start with http:// or https://"
                )));
            }
            c.mail.public_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = self.app_name.clone().or(file.app_name) {
            c.mail.app_name = v;
        }
        if let Some(v) = self.mail_templates_dir.clone().or(file.mail_templates_dir) {
            c.mail.templates_dir = Some(v);
        }
        // Builds a throw-away mailer so a bad smtp_url, sender or template stops start-up here.
        Mailer::new(c.mail.clone()).map_err(|e| invalid(e.to_string()))?;
        c.sso = sso_settings(
            self,
            file.sso,
            file.sso_callback_allowlist,
            file.sso_link_verified_email,
            &c,
            env,
        )?;
        Ok(c)
    }

    fn read_file(&self) -> Result<FileConfig, ConfigError> {
        let (path, required) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("keyway.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileConfig::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path,
            message: e.to_string(),
        })
    }
}

/// `text` as a URL, if it is an http or https one.
fn http_url(text: &str) -> Option<url::Url> {
    url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// The single sign-on providers: those named by `sso_providers` plus the file's `[sso.<name>]`
/// tables, each key from `KEYWAY_SSO_<NAME>_<KEY>` or else the table. Presets fill in the well-known
/// providers' endpoints and names.
fn sso_settings(
    flags: &Overrides,
    tables: Option<std::collections::BTreeMap<String, SsoProviderFile>>,
    allowlist: Option<Vec<String>>,
    link_verified_email: Option<bool>,
    c: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SsoSettings, ConfigError> {
    let invalid = ConfigError::Invalid;
    let tables = tables.unwrap_or_default();
    let mut names: Vec<String> = tables.keys().cloned().collect();
    for name in flags.sso_providers.iter().flat_map(|l| l.split(',')) {
        let name = name.trim().to_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut providers = Vec::with_capacity(names.len());
    for name in names {
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            || name.len() > 32
        {
            return Err(invalid(format!(
                "sso provider name '{name}' must be lower-case letters, digits, _ or - (at most 32)"
            )));
        }
        if name == "local" {
            return Err(invalid(
                "sso provider name 'local' is taken by password logins".into(),
            ));
        }
        let table = tables.get(&name).cloned().unwrap_or_default();
        let prefix = format!("KEYWAY_SSO_{}_", name.to_uppercase().replace('-', "_"));
        let key = |k: &str, from_file: Option<String>| {
            env(&format!("{prefix}{k}"))
                .or(from_file)
                .filter(|v| !v.trim().is_empty())
        };
        let setting = |k: &str| format!("sso.{name}.{}", k.to_lowercase());
        let client_id = key("CLIENT_ID", table.client_id.clone())
            .ok_or_else(|| invalid(format!("{} is required", setting("CLIENT_ID"))))?;
        // Same precedence as the other secrets: the *_FILE setting, then the variable, then the file.
        let secret_file = env(&format!("{prefix}CLIENT_SECRET_FILE"))
            .map(PathBuf::from)
            .or(table.client_secret_file.clone());
        let client_secret = match secret_file {
            Some(path) => Some(read_secret_file(&path)?),
            None => key("CLIENT_SECRET", table.client_secret.clone()),
        }
        .map(SecretString::from);
        let kind = key("KIND", table.kind.clone())
            .unwrap_or_else(|| if name == "github" { "github" } else { "oidc" }.into());
        let url_setting = |k: &str, from_file: Option<String>, default: &str| {
            let v = key(k, from_file).unwrap_or_else(|| default.to_owned());
            http_url(&v)
                .map(|_| v.trim_end_matches('/').to_owned())
                .ok_or_else(|| invalid(format!("{} '{v}' is not an http(s) URL", setting(k))))
        };
        let (protocol, preset_name, preset_scopes) = match kind.as_str() {
            "github" => (
                Protocol::GitHub {
                    auth_url: url_setting(
                        "AUTH_URL",
                        table.auth_url.clone(),
                        "https://github.com/login/oauth/authorize",
                    )?,
                    token_url: url_setting(
                        "TOKEN_URL",
                        table.token_url.clone(),
                        "https://github.com/login/oauth/access_token",
                    )?,
                    api_url: url_setting(
                        "API_URL",
                        table.api_url.clone(),
                        "https://api.github.com",
                    )?,
                },
                "GitHub",
                "read:user user:email",
            ),
            "oidc" => {
                let tenant = key("TENANT", table.tenant.clone());
                let (preset_issuer, preset_name) = match name.as_str() {
                    "google" => (Some("https://accounts.google.com".to_owned()), "Google"),
                    "gitlab" => (Some("https://gitlab.com".to_owned()), "GitLab"),
                    // Microsoft's multi-tenant endpoints have no single issuer an id_token could be
                    // checked against, so the preset needs the directory's own.
                    "microsoft" => (
                        tenant.map(|t| format!("https://login.microsoftonline.com/{t}/v2.0")),
                        "Microsoft",
                    ),
                    _ => (None, ""),
                };
                let issuer = key("ISSUER", table.issuer.clone())
                    .or(preset_issuer)
                    .ok_or_else(|| {
                        invalid(if name == "microsoft" {
                            "sso.microsoft needs tenant (the directory id) or issuer".to_owned()
                        } else {
                            format!(
                                "{} is required for an OpenID Connect provider",
                                setting("ISSUER")
                            )
                        })
                    })?;
                let issuer = url_setting("ISSUER", Some(issuer.clone()), &issuer)?;
                (
                    Protocol::Oidc { issuer },
                    preset_name,
                    "openid email profile",
                )
            }
            other => {
                return Err(invalid(format!(
                    "{} '{other}' must be oidc or github",
                    setting("KIND")
                )));
            }
        };
        let display_name = key("DISPLAY_NAME", table.display_name.clone())
            .or_else(|| (!preset_name.is_empty()).then(|| preset_name.to_owned()))
            .unwrap_or_else(|| name.clone());
        let scopes: Vec<String> = match env(&format!("{prefix}SCOPES")) {
            Some(v) => v.split([',', ' ']).map(str::to_owned).collect(),
            None => table
                .scopes
                .clone()
                .unwrap_or_else(|| preset_scopes.split(' ').map(str::to_owned).collect()),
        }
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect();
        let default_callback = format!(
            "{}{}connect/{name}/redirect",
            c.mail.public_url, c.pages.base_path
        );
        let callback = key("CALLBACK", table.callback.clone()).unwrap_or(default_callback);
        let callback = http_url(&callback).ok_or_else(|| {
            invalid(format!(
                "{} '{callback}' is not an http(s) URL",
                setting("CALLBACK")
            ))
        })?;
        providers.push(ProviderSettings {
            name,
            display_name,
            protocol,
            client_id,
            client_secret,
            scopes,
            callback,
        });
    }
    let allowlist = match &flags.sso_callback_allowlist {
        Some(list) => list.split(',').map(|u| u.trim().to_owned()).collect(),
        None => allowlist.unwrap_or_default(),
    };
    let callback_allowlist = allowlist
        .into_iter()
        .filter(|u| !u.is_empty())
        .map(|u| {
            http_url(&u).ok_or_else(|| {
                invalid(format!(
                    "sso_callback_allowlist: '{u}' is not an http(s) URL"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(SsoSettings {
        providers,
        callback_allowlist,
        link_verified_email: flags
            .sso_link_verified_email
            .or(link_verified_email)
            .unwrap_or(false),
        public_url: c.mail.public_url.clone(),
    })
}

/// The `sslmode` (or sqlx's `ssl-mode`) parameter of a PostgreSQL URL, lower-cased.
fn url_sslmode(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return None;
    }
    parsed
        .query_pairs()
        .find(|(k, _)| k == "sslmode" || k == "ssl-mode")
        .map(|(_, v)| v.to_ascii_lowercase())
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    // Files written with `echo` end in a newline that is not part of the secret.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d`, or `500ms` (the unit `invalidation_poll`'s default is
/// stated in, so the documented default can be written back).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 3600, 15m, 12h or 30d"))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("'{text}' is not a duration like 3600, 15m, 12h or 30d"))?;
    Ok(Duration::from_secs(secs))
}

// Settings types of the transport and the pages, declared here so configuration never reaches up
// into `http` or `serve`: they read these, not the other way round.

/// Connection-level limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// The most bytes of request line and headers one request may send. hyper's own floor is 8 KiB.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request's headers. Also the deadline for a new
    /// connection's first request (protocol detection included), and the time a closing connection
    /// gets to say goodbye before it is dropped.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight after its last one.
    pub idle_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            // Node's (and so Strapi's) default.
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            // What RFC 9113 recommends as the least a server should allow, and nginx's default.
            http2_max_streams: 100,
        }
    }
}

/// hyper refuses a read buffer under 8 KiB; smaller configured caps are raised to it.
pub const MIN_HEADER_BYTES: usize = 8192;

/// The header trusted proxies report the client in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, what nginx, HAProxy and the cloud load balancers append to.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

/// A configured network as the addresses it is compared with: `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
pub fn canonical_net(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        other => other,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = Overrides {
            config: Some(file_with("").path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose_secret(), "sqlite://keyway.db");
        assert_eq!(c.tokens.ttl, Duration::from_secs(2_592_000));
        assert!(c.tokens.secret.is_none());
        assert!(c.auth.allow_register);
        assert_eq!(c.auth.password_min_chars, 8);
        assert_eq!(
            c.auth.pwned_check, None,
            "the online check is off by default"
        );
        assert_eq!(c.hash, HashParams::default());
        assert_eq!(c.body_limit_bytes, 65_536);
    }

    #[test]
    fn flags_override_the_file() {
        let f = file_with("bind = \"0.0.0.0:9000\"\njwt_ttl = 60\nallow_register = false\n");
        let from_file = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = from_file.resolve(&no_env).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.tokens.ttl, Duration::from_secs(60));
        assert!(!c.auth.allow_register);

        let flagged = Overrides {
            bind: Some("127.0.0.1:7000".into()),
            jwt_ttl: Some("2h".into()),
            ..from_file
        };
        let c = flagged.resolve(&no_env).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:7000");
        assert_eq!(c.tokens.ttl, Duration::from_secs(7200));
        assert!(
            !c.auth.allow_register,
            "untouched settings keep the file's value"
        );
    }

    #[test]
    fn relay_clients_resolve_canonical_from_file_and_flags() {
        let defaults = Overrides {
            config: Some(file_with("").path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert!(defaults.auth.rate_limits.relay_clients.is_empty());
        assert_eq!(defaults.auth.rate_limits.relay_max, 600);

        let f = file_with(
            "relay_clients = [\"::ffff:172.17.0.0/112\", \"10.0.0.7\", \"2001:db8::/64\"]\n\
             relay_rate_limit_max = 50\n",
        );
        let c = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        let nets = |list: &[&str]| -> Vec<ipnet::IpNet> {
            list.iter().map(|n| n.parse().unwrap()).collect()
        };
        assert_eq!(
            c.auth.rate_limits.relay_clients,
            nets(&["172.17.0.0/16", "10.0.0.7/32", "2001:db8::/64"]),
            "mapped networks are IPv4, bare addresses are /32"
        );
        assert_eq!(c.auth.rate_limits.relay_max, 50);

        // The flag (and so the environment variable, which clap reads the same way) is comma-separated
        // and wins over the file.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            overrides: Overrides,
        }
        let cli = <Cli as clap::Parser>::try_parse_from([
            "keyway",
            "--relay-clients",
            "192.0.2.10, ::ffff:192.0.2.11,",
            "--relay-rate-limit-max",
            "120",
        ])
        .unwrap();
        let c = Overrides {
            config: Some(f.path().to_owned()),
            ..cli.overrides
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(
            c.auth.rate_limits.relay_clients,
            nets(&["192.0.2.10/32", "192.0.2.11/32"])
        );
        assert_eq!(c.auth.rate_limits.relay_max, 120);

        for bad in [
            "relay_clients = [\"appsmith\"]",
            "relay_clients = [\"10.0.0.0/33\"]",
            "relay_rate_limit_max = 0",
        ] {
            let f = file_with(bad);
            let resolved = Overrides {
                config: Some(f.path().to_owned()),
                ..Default::default()
            }
            .resolve(&no_env);
            assert!(resolved.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn edge_settings_resolve_and_are_validated() {
        let defaults = Overrides {
            config: Some(file_with("").path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(defaults.forwarded_header, ForwardedHeader::XForwardedFor);
        assert_eq!(defaults.auth.ipv6_prefix_len, 64);
        assert_eq!(defaults.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(defaults.connections.http2_max_streams, 100);

        let f = file_with(
            "forwarded_header = \"forwarded\"\nipv6_prefix_len = 56\nidle_timeout = \"90s\"\n\
             http2_max_streams = 32\ntrusted_proxies = [\"::ffff:10.0.0.0/104\"]\n",
        );
        let c = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(c.forwarded_header, ForwardedHeader::Forwarded);
        assert_eq!(c.auth.ipv6_prefix_len, 56);
        assert_eq!(c.connections.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.connections.http2_max_streams, 32);
        assert_eq!(
            c.trusted_proxies,
            vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()],
            "an IPv4-mapped network is compared as the IPv4 network it is"
        );

        for bad in [
            "ipv6_prefix_len = 0",
            "ipv6_prefix_len = 129",
            "idle_timeout = 0",
            "http2_max_streams = 0",
            "forwarded_header = \"x-real-ip\"",
        ] {
            let f = file_with(bad);
            let resolved = Overrides {
                config: Some(f.path().to_owned()),
                ..Default::default()
            }
            .resolve(&no_env);
            assert!(resolved.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let f = file_with("bnid = \"0.0.0.0:9000\"\n");
        let err = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let f = file_with("");
        let o = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let err = o
            .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "too-short".into()))
            .unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
        let ok = o
            .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "x".repeat(32)))
            .unwrap();
        assert!(ok.tokens.secret.is_some());
    }

    #[test]
    fn secret_files_win_and_lose_their_trailing_newline() {
        let secret = file_with(&format!("{}\n", "s".repeat(40)));
        let cfg = file_with(&format!("jwt_secret = \"{}\"\n", "f".repeat(40)));
        let c = Overrides {
            config: Some(cfg.path().to_owned()),
            jwt_secret_file: Some(secret.path().to_owned()),
            ..Default::default()
        }
        .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "e".repeat(40)))
        .unwrap();
        assert_eq!(c.tokens.secret.unwrap().expose_secret(), "s".repeat(40));
    }

    #[test]
    fn environment_secret_overrides_the_file() {
        let cfg = file_with(&format!("jwt_secret = \"{}\"\n", "f".repeat(40)));
        let c = Overrides {
            config: Some(cfg.path().to_owned()),
            ..Default::default()
        }
        .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "e".repeat(40)))
        .unwrap();
        assert_eq!(c.tokens.secret.unwrap().expose_secret(), "e".repeat(40));
    }

    #[test]
    fn database_settings_default_and_layer() {
        let empty = file_with("");
        let blank = || Overrides {
            config: Some(empty.path().to_owned()),
            ..Default::default()
        };
        let c = blank().resolve(&no_env).unwrap();
        assert_eq!(c.database, DatabaseSettings::default());
        assert_eq!(c.database.pool_size, None, "the engine's own default");
        assert_eq!(c.database.statement_timeout, Duration::from_secs(30));
        assert_eq!(c.database.ssl_mode, None, "the URL's, else prefer");

        let f = file_with(
            "database_url = \"postgres://k@db/keyway\"\n\
             database_pool_size = 25\n\
             database_statement_timeout = \"2m\"\n\
             database_sslmode = \"verify-full\"\n",
        );
        let from_file = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = from_file.resolve(&no_env).unwrap();
        assert_eq!(c.database.pool_size, Some(25));
        assert_eq!(c.database.statement_timeout, Duration::from_secs(120));
        assert_eq!(c.database.ssl_mode, Some(SslMode::VerifyFull));

        let flagged = Overrides {
            database_pool_size: Some(3),
            database_statement_timeout: Some("0".into()),
            database_sslmode: Some(SslMode::Require),
            ..from_file
        };
        let c = flagged.resolve(&no_env).unwrap();
        assert_eq!(c.database.pool_size, Some(3));
        assert_eq!(
            c.database.statement_timeout,
            Duration::ZERO,
            "0 is no limit"
        );
        assert_eq!(c.database.ssl_mode, Some(SslMode::Require));

        let refuse = |o: Overrides| o.resolve(&no_env).unwrap_err().to_string();
        assert!(
            refuse(Overrides {
                database_pool_size: Some(0),
                ..blank()
            })
            .contains("database_pool_size")
        );
        assert!(
            refuse(Overrides {
                database_statement_timeout: Some("soon".into()),
                ..blank()
            })
            .contains("database_statement_timeout")
        );
        let bad_mode = file_with("database_sslmode = \"sometimes\"\n");
        assert!(
            refuse(Overrides {
                config: Some(bad_mode.path().to_owned()),
                ..Default::default()
            })
            .contains("sometimes")
        );
    }

    #[test]
    fn sslmode_in_the_url_and_the_setting_must_agree() {
        let empty = file_with("");
        let with = |url: &str, mode: Option<SslMode>| {
            Overrides {
                config: Some(empty.path().to_owned()),
                database_url: Some(url.into()),
                database_sslmode: mode,
                ..Default::default()
            }
            .resolve(&no_env)
        };
        let c = with("postgres://k@db/keyway?sslmode=require", None).unwrap();
        assert_eq!(c.database.ssl_mode, None, "left to the URL");
        let c = with(
            "postgres://k@db/keyway?sslmode=Require",
            Some(SslMode::Require),
        )
        .unwrap();
        assert_eq!(c.database.ssl_mode, Some(SslMode::Require));
        let err = with(
            "postgresql://k:hunter2@db/keyway?sslmode=verify-full",
            Some(SslMode::Disable),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("database_sslmode") && err.contains("verify-full"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            with("sqlite://keyway.db", Some(SslMode::Require)).is_ok(),
            "SQLite ignores it"
        );
    }

    #[test]
    fn sso_providers_come_from_tables_and_variables_with_presets() {
        let secret = file_with("from-file\n");
        let toml = format!(
            "public_url = \"https://auth.acme.test\"\n\
             base_path = \"/login\"\n\
             sso_callback_allowlist = [\"https://app.acme.test/done\"]\n\
             [sso.google]\nclient_id = \"g-id\"\nclient_secret_file = \"{}\"\n\
             [sso.keycloak]\nissuer = \"https://kc.acme.test/realms/x/\"\nclient_id = \"kc\"\n\
             display_name = \"Staff\"\nscopes = [\"openid\", \"email\"]\n",
            secret.path().display()
        );
        let f = file_with(&toml);
        let env = |k: &str| match k {
            "KEYWAY_SSO_GITHUB_CLIENT_ID" => Some("gh-id".to_owned()),
            "KEYWAY_SSO_GITHUB_CLIENT_SECRET" => Some("gh-secret".to_owned()),
            "KEYWAY_SSO_KEYCLOAK_CLIENT_ID" => Some("kc-env".to_owned()),
            _ => None,
        };
        let c = Overrides {
            config: Some(f.path().to_owned()),
            sso_providers: Some("github, google".into()),
            ..Default::default()
        }
        .resolve(&env)
        .unwrap();
        let sso = &c.sso;
        let names: Vec<&str> = sso.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["google", "keycloak", "github"]);
        let [google, keycloak, github] = &sso.providers[..] else {
            panic!("three providers expected: {names:?}");
        };
        assert_eq!(
            google.protocol,
            Protocol::Oidc {
                issuer: "https://accounts.google.com".into()
            }
        );
        assert_eq!(google.display_name, "Google");
        assert_eq!(
            google.client_secret.as_ref().unwrap().expose_secret(),
            "from-file"
        );
        assert_eq!(google.scopes, ["openid", "email", "profile"]);
        assert_eq!(
            google.callback.as_str(),
            "https://auth.acme.test/login/connect/google/redirect"
        );
        assert_eq!(keycloak.client_id, "kc-env", "the variable beats the table");
        assert_eq!(keycloak.display_name, "Staff");
        assert_eq!(keycloak.scopes, ["openid", "email"]);
        assert_eq!(
            keycloak.protocol,
            Protocol::Oidc {
                issuer: "https://kc.acme.test/realms/x".into()
            }
        );
        assert!(keycloak.client_secret.is_none());
        assert_eq!(
            github.protocol,
            Protocol::GitHub {
                auth_url: "https://github.com/login/oauth/authorize".into(),
                token_url: "https://github.com/login/oauth/access_token".into(),
                api_url: "https://api.github.com".into(),
            }
        );
        assert_eq!(github.scopes, ["read:user", "user:email"]);
        assert_eq!(
            sso.callback_allowlist[0].as_str(),
            "https://app.acme.test/done"
        );
        assert!(!sso.link_verified_email);
        assert_eq!(sso.public_url, "https://auth.acme.test");
        assert!(
            !format!("{google:?}").contains("from-file"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn sso_mistakes_stop_start_up_with_the_setting_named() {
        let refused = |providers: &str, env: &[(&str, &str)]| {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            Overrides {
                config: Some(file_with("").path().to_owned()),
                sso_providers: Some(providers.into()),
                ..Default::default()
            }
            .resolve(&lookup)
            .unwrap_err()
            .to_string()
        };
        assert!(refused("okta", &[]).contains("sso.okta.client_id"));
        let issuer = refused("okta", &[("KEYWAY_SSO_OKTA_CLIENT_ID", "x")]);
        assert!(issuer.contains("sso.okta.issuer"), "{issuer}");
        let tenant = refused("microsoft", &[("KEYWAY_SSO_MICROSOFT_CLIENT_ID", "x")]);
        assert!(tenant.contains("tenant"), "{tenant}");
        assert!(refused("Bad Name", &[]).contains("must be lower-case"));
        assert!(refused("local", &[]).contains("taken"));
        let kind = refused(
            "x",
            &[
                ("KEYWAY_SSO_X_CLIENT_ID", "x"),
                ("KEYWAY_SSO_X_KIND", "saml"),
            ],
        );
        assert!(kind.contains("sso.x.kind"), "{kind}");
        let url = refused(
            "x",
            &[
                ("KEYWAY_SSO_X_CLIENT_ID", "x"),
                ("KEYWAY_SSO_X_ISSUER", "ftp://x"),
            ],
        );
        assert!(url.contains("sso.x.issuer"), "{url}");
    }

    #[test]
    fn mail_to_log_and_readable_database_are_off_unless_chosen() {
        let empty = file_with("");
        let blank = Overrides {
            config: Some(empty.path().to_owned()),
            ..Default::default()
        };
        let c = blank.resolve(&no_env).unwrap();
        assert!(!c.mail.to_log && !c.database.allow_readable_file);
        let f = file_with("mail_to_log = true\nallow_readable_database = true\n");
        let from_file = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = from_file.resolve(&no_env).unwrap();
        assert!(c.mail.to_log && c.database.allow_readable_file);
        let c = Overrides {
            mail_to_log: Some(false),
            allow_readable_database: Some(false),
            ..from_file
        }
        .resolve(&no_env)
        .unwrap();
        assert!(
            !c.mail.to_log && !c.database.allow_readable_file,
            "flags win"
        );
    }

    #[test]
    fn database_url_file_is_read() {
        let url = file_with("sqlite:///tmp/from-file.db\n");
        let c = Overrides {
            config: Some(file_with("").path().to_owned()),
            database_url_file: Some(url.path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(c.database_url.expose_secret(), "sqlite:///tmp/from-file.db");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut c = Config::defaults();
        c.database_url = SecretString::from("postgres://u:hunter2@db/k");
        c.tokens.secret = Some(SecretString::from("x".repeat(40)));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(&"x".repeat(40)),
            "{shown}"
        );
    }

    fn smtp_env(url: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| (k == "KEYWAY_SMTP_URL").then(|| url.into())
    }

    #[test]
    fn mail_defaults() {
        let c = Overrides {
            config: Some(file_with("").path().to_owned()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert!(c.mail.smtp_url.is_none());
        assert_eq!(c.mail.from, "Keyway <no-reply@localhost>");
        assert_eq!(c.mail.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.mail.app_name, "Keyway");
        assert!(c.mail.templates_dir.is_none());
        assert_eq!(c.mail.attempts, 3);
    }

    #[test]
    fn mail_settings_come_from_the_file_and_flags_win() {
        let templates = tempfile::tempdir().unwrap();
        let f = file_with(&format!(
            "mail_from = \"Acme <hello@acme.test>\"\n\
             public_url = \"https://auth.acme.test/\"\n\
             app_name = \"Acme\"\n\
             mail_templates_dir = \"{}\"\n\
             smtp_url = \"smtp://127.0.0.1:2525\"\n",
            templates.path().display()
        ));
        let from_file = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = from_file.resolve(&no_env).unwrap();
        assert_eq!(c.mail.from, "Acme <hello@acme.test>");
        assert_eq!(
            c.mail.public_url, "https://auth.acme.test",
            "trailing slash gone"
        );
        assert_eq!(c.mail.app_name, "Acme");
        assert_eq!(c.mail.templates_dir.as_deref(), Some(templates.path()));
        assert_eq!(
            c.mail.smtp_url.unwrap().expose_secret(),
            "smtp://127.0.0.1:2525"
        );

        let other_templates = tempfile::tempdir().unwrap();
        let flagged = Overrides {
            mail_from: Some("no-reply@example.com".into()),
            public_url: Some("http://localhost:9000".into()),
            app_name: Some("Example".into()),
            mail_templates_dir: Some(other_templates.path().to_owned()),
            ..from_file
        };
        let c = flagged.resolve(&no_env).unwrap();
        assert_eq!(c.mail.from, "no-reply@example.com");
        assert_eq!(c.mail.public_url, "http://localhost:9000");
        assert_eq!(c.mail.app_name, "Example");
        assert_eq!(
            c.mail.templates_dir.as_deref(),
            Some(other_templates.path())
        );
    }

    #[test]
    fn smtp_url_precedence_file_setting_then_environment_then_config_file() {
        let cfg = file_with("smtp_url = \"smtp://127.0.0.1:1001\"\n");
        let o = Overrides {
            config: Some(cfg.path().to_owned()),
            ..Default::default()
        };
        let url = |c: Config| c.mail.smtp_url.unwrap().expose_secret().to_owned();
        assert_eq!(url(o.resolve(&no_env).unwrap()), "smtp://127.0.0.1:1001");
        let env = smtp_env("smtps://u:p@mail.example.com");
        assert_eq!(
            url(o.resolve(&env).unwrap()),
            "smtps://u:p@mail.example.com"
        );

        let secret = file_with("smtp+starttls://apikey:s3cret@smtp.example.com:587\n");
        let with_file = Overrides {
            smtp_url_file: Some(secret.path().to_owned()),
            ..o
        };
        assert_eq!(
            url(with_file.resolve(&env).unwrap()),
            "smtp+starttls://apikey:s3cret@smtp.example.com:587",
            "the *_FILE setting wins, without its trailing newline"
        );
    }

    #[test]
    fn smtp_url_file_can_be_named_in_the_config_file() {
        let secret = file_with("smtp://127.0.0.1:2525\n");
        let cfg = file_with(&format!(
            "smtp_url_file = \"{}\"\n",
            secret.path().display()
        ));
        let c = Overrides {
            config: Some(cfg.path().to_owned()),
            ..Default::default()
        }
        .resolve(&smtp_env("smtp://127.0.0.1:1"))
        .unwrap();
        assert_eq!(
            c.mail.smtp_url.unwrap().expose_secret(),
            "smtp://127.0.0.1:2525"
        );

        let missing = Overrides {
            config: Some(file_with("").path().to_owned()),
            smtp_url_file: Some("/nonexistent/smtp-url".into()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/smtp-url"),
            "{missing}"
        );
    }

    #[test]
    fn empty_smtp_url_means_none() {
        let c = Overrides {
            config: Some(file_with("").path().to_owned()),
            ..Default::default()
        }
        .resolve(&smtp_env(""))
        .unwrap();
        assert!(c.mail.smtp_url.is_none());
    }

    #[test]
    fn bad_mail_settings_stop_start_up() {
        let empty = file_with("");
        let o = || Overrides {
            config: Some(empty.path().to_owned()),
            ..Default::default()
        };
        let err = Overrides {
            public_url: Some("auth.acme.test".into()),
            ..o()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(err.to_string().contains("http:// or https://"), "{err}");

        let err = Overrides {
            mail_from: Some("nobody".into()),
            ..o()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(err.to_string().contains("mail_from"), "{err}");

        let err = Overrides {
            mail_templates_dir: Some("/nonexistent/keyway-mail".into()),
            ..o()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/keyway-mail"),
            "{err}"
        );

        let err = o()
            .resolve(&smtp_env("imap://u:hunter2@mail.example.com"))
            .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("smtp_url") && shown.contains("imap"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn debug_output_hides_the_smtp_password() {
        let mut c = Config::defaults();
        c.mail.smtp_url = Some(SecretString::from("smtps://u:hunter2@mail.example.com"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn lifecycle_settings() {
        let f =
            file_with("reset_code_ttl = \"15m\"\nreset_url = \"https://app.example.com/reset\"\n");
        let c = Overrides {
            config: Some(f.path().to_owned()),
            confirmation_code_ttl: Some("2d".into()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(c.auth.reset_code_ttl, Duration::from_secs(900));
        assert_eq!(c.auth.confirmation_code_ttl, Duration::from_secs(172_800));
        assert_eq!(
            c.auth.reset_url.as_deref(),
            Some("https://app.example.com/reset")
        );
        assert_eq!(c.auth.confirmation_redirect, None);
        let bad = Overrides {
            config: Some(
                file_with("confirmation_redirect = \"javascript:alert(1)\"\n")
                    .path()
                    .to_owned(),
            ),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(bad.to_string().contains("confirmation_redirect"), "{bad}");
    }

    #[test]
    fn page_settings() {
        let f = file_with("base_path = \"login\"\naccent_color = \"#0a7\"\n");
        let c = Overrides {
            config: Some(f.path().to_owned()),
            logo_url: Some("https://cdn.example.com/logo.svg".into()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(c.pages.base_path, "/login/");
        assert_eq!(c.auth.pages_path, "/login/");
        assert_eq!(c.pages.accent_color.as_deref(), Some("#0a7"));
        assert_eq!(
            c.pages.logo_url.as_deref(),
            Some("https://cdn.example.com/logo.svg")
        );
        let refuse = |o: Overrides| o.resolve(&no_env).unwrap_err().to_string();
        let empty = file_with("");
        let blank = || Overrides {
            config: Some(empty.path().to_owned()),
            ..Default::default()
        };
        assert!(
            refuse(Overrides {
                accent_color: Some("red;}".into()),
                ..blank()
            })
            .contains("accent_color")
        );
        assert!(
            refuse(Overrides {
                base_path: Some("/api/x".into()),
                ..blank()
            })
            .contains("base_path")
        );
        assert!(
            refuse(Overrides {
                base_path: Some("/a/../b".into()),
                ..blank()
            })
            .contains("base_path")
        );
        assert!(
            refuse(Overrides {
                logo_url: Some("javascript:x".into()),
                ..blank()
            })
            .contains("logo_url")
        );
    }

    #[test]
    fn pages_templates_dir_is_loaded_and_checked_at_start_up() {
        let good = tempfile::tempdir().unwrap();
        std::fs::write(good.path().join("login.html"), "<p>{{ app_name }}</p>\n").unwrap();
        let f = file_with(&format!(
            "pages_templates_dir = \"{}\"\n",
            good.path().display()
        ));
        let from_file = Overrides {
            config: Some(f.path().to_owned()),
            ..Default::default()
        };
        let c = from_file.clone().resolve(&no_env).unwrap();
        assert_eq!(c.pages.templates_dir.as_deref(), Some(good.path()));
        assert!(Config::defaults().pages.templates_dir.is_none());

        let refuse = |text: &str| {
            let bad = tempfile::tempdir().unwrap();
            std::fs::write(bad.path().join("register.html"), text).unwrap();
            Overrides {
                pages_templates_dir: Some(bad.path().to_owned()),
                ..from_file.clone()
            }
            .resolve(&no_env)
            .unwrap_err()
            .to_string()
        };
        let err = refuse("<h1>\n{% if min_length %}\n");
        assert!(
            err.contains("page template ")
                && err.contains("register.html:")
                && err.contains("syntax error"),
            "{err}"
        );
        let err = refuse("<h1>\n\n<p>{{ min_lenght }}</p>\n");
        assert!(
            err.contains("register.html:3: unknown variable 'min_lenght'"),
            "{err}"
        );
        let err = Overrides {
            pages_templates_dir: Some("/nonexistent/keyway-pages".into()),
            ..from_file
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/keyway-pages"),
            "{err}"
        );
    }

    #[test]
    fn pwned_check_url() {
        let on = Overrides {
            config: Some(
                file_with("pwned_check_url = \"https://api.pwnedpasswords.com/range/\"\n")
                    .path()
                    .to_owned(),
            ),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        let check = on.auth.pwned_check.unwrap();
        assert_eq!(check.range_url, "https://api.pwnedpasswords.com/range");
        assert_eq!(
            check.timeout,
            crate::auth::policy::DEFAULT_BREACH_CHECK_TIMEOUT
        );
        let off = Overrides {
            config: Some(
                file_with("pwned_check_url = \"https://example.com/range\"\n")
                    .path()
                    .to_owned(),
            ),
            pwned_check_url: Some(String::new()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap();
        assert_eq!(off.auth.pwned_check, None, "empty turns it off");
        let bad = Overrides {
            config: Some(file_with("").path().to_owned()),
            pwned_check_url: Some("ftp://example.com/range".into()),
            ..Default::default()
        }
        .resolve(&no_env)
        .unwrap_err();
        assert!(bad.to_string().contains("pwned_check_url"), "{bad}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}

/// The help texts' stated defaults against the values the code uses, so the two cannot drift apart
/// again (`--help` once said the SQLite pool default was 8 while it was 2).
#[cfg(test)]
mod help_defaults {
    use super::*;
    use clap::Args;

    /// Each help text's "(default X" / "(default X," / "(default: X" value, by argument id.
    fn stated_defaults() -> Vec<(String, String)> {
        let cmd = DatabaseArgs::augment_args(Overrides::augment_args(clap::Command::new("keyway")));
        cmd.get_arguments()
            .filter_map(|a| {
                let help = a.get_help()?.to_string().replace('\n', " ");
                let at = help.find("default ")?;
                let rest = &help[at + "default ".len()..];
                let end = rest.find([')', ',', ';']).unwrap_or(rest.len());
                Some((a.get_id().to_string(), rest[..end].trim().to_owned()))
            })
            .collect()
    }

    #[test]
    fn help_texts_state_the_defaults_the_code_uses() {
        let d = Config::defaults();
        let secs = |x: Duration| x;
        // What each stated default must mean; durations are compared parsed, so "60s" and "1m" agree.
        let durations: Vec<(&str, Duration)> = vec![
            ("jwt_ttl", secs(d.tokens.ttl)),
            ("session_idle_ttl", d.sessions.idle_ttl),
            ("session_absolute_ttl", d.sessions.absolute_ttl),
            ("refresh_grace", d.sessions.refresh_grace),
            ("rate_limit_window", d.auth.rate_limits.default.window),
            ("audit_retention", d.auth.audit_retention),
            ("request_timeout", d.request_timeout),
            ("reset_code_ttl", d.auth.reset_code_ttl),
            ("confirmation_code_ttl", d.auth.confirmation_code_ttl),
            ("invalidation_poll", d.invalidation_poll),
            ("header_read_timeout", d.connections.header_read_timeout),
            ("idle_timeout", d.connections.idle_timeout),
            ("database_statement_timeout", d.database.statement_timeout),
        ];
        let words: Vec<(&str, String)> = vec![
            (
                "database_pool_size",
                format!("{} for SQLite", crate::store::SQLITE_POOL_SIZE),
            ),
            ("bind", d.bind.to_string()),
            ("rate_limit_max", d.auth.rate_limits.default.max.to_string()),
            ("ipv6_prefix_len", d.auth.ipv6_prefix_len.to_string()),
            ("password_min_length", d.auth.password_min_chars.to_string()),
            ("argon2_memory_kib", d.hash.m_cost_kib.to_string()),
            ("argon2_iterations", d.hash.t_cost.to_string()),
            ("argon2_parallelism", d.hash.p_cost.to_string()),
            ("max_connections", d.connections.max_connections.to_string()),
            (
                "max_header_bytes",
                d.connections.max_header_bytes.to_string(),
            ),
            (
                "http2_max_streams",
                d.connections.http2_max_streams.to_string(),
            ),
            ("refresh_tokens", d.sessions.refresh_tokens.to_string()),
            ("rate_limit", d.auth.rate_limits.enabled.to_string()),
            ("login_throttle", d.auth.throttle.enabled.to_string()),
            ("allow_register", d.auth.allow_register.to_string()),
            ("default_role", d.auth.default_role.clone()),
            ("email_confirmation", d.auth.email_confirmation.to_string()),
            ("access_log", d.access_log.to_string()),
            (
                "accept_strapi_tokens",
                d.tokens.accept_strapi_tokens.to_string(),
            ),
            ("refresh_cookie_name", d.cookie.name.clone()),
            ("base_path", d.auth.pages_path.clone()),
        ];
        let stated = stated_defaults();
        let mut checked = 0;
        for (id, text) in &stated {
            if let Some((_, want)) = durations.iter().find(|(n, _)| n == id) {
                let said = parse_duration(text)
                    .unwrap_or_else(|e| panic!("--{id}: default '{text}' is no duration: {e}"));
                assert_eq!(said, *want, "--{id} says default {text}");
                checked += 1;
            } else if let Some((_, want)) = words.iter().find(|(n, _)| n == id) {
                assert!(
                    text.starts_with(want.as_str()),
                    "--{id} says default '{text}', the code uses {want}"
                );
                checked += 1;
            }
        }
        // The pool's text is the one that drifted; make sure it is among those compared.
        assert!(
            stated.iter().any(|(id, _)| id == "database_pool_size"),
            "{stated:?}"
        );
        assert!(
            checked >= 25,
            "only {checked} stated defaults compared: {stated:?}"
        );
    }
}
