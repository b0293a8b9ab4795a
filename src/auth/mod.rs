//! The authentication core: logins, registration, token checks and account administration. Plain Rust,
//! no HTTP types: the `http` layer extracts and translates, this module decides. Logins and token
//! checks are [`Auth`]'s own methods; the rest are its services (see [`Auth`]), one file each.

pub mod account;
pub mod admin;
pub mod audit;
pub mod mail;
pub mod password;
pub mod policy;
mod register;
pub mod sessions;
pub mod settings;
pub mod sso;
pub mod throttle;
pub mod tokens;

use crate::error::OrInternal;
use secrecy::SecretString;
use std::net::IpAddr;
use std::sync::Arc;

use crate::domain::{LoginIdentifier, LoginPassword};
use crate::error::{Error, Result};
use crate::store::{HashUpgrade, Invalidation, Millis, Store, User};
use mail::Mailer;
use password::{Hasher, PasswordCheck};
use sessions::{Caches, SessionSettings};
use tokens::Keys;

/// Where the current time comes from. A trait so tests can move time without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Who is calling, as far as the HTTP layer could tell; recorded on the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub allow_register: bool,
    /// `type` (or name) of the role new accounts get.
    pub default_role: String,
    pub email_confirmation: bool,
    pub password_min_chars: usize,
    /// How long a password-reset code works.
    pub reset_code_ttl: std::time::Duration,
    /// How long an email-confirmation code works.
    pub confirmation_code_ttl: std::time::Duration,
    /// The page reset links open, `?code=` appended (Strapi's `email_reset_password`); `None` is the
    /// hosted page, `<public_url>/reset-password`.
    pub reset_url: Option<String>,
    /// Where a confirmation link lands (Strapi's `email_confirmation_redirection`); `None` is the
    /// hosted page, `<public_url>/email-confirmed`.
    pub confirmation_redirect: Option<String>,
    /// The path of the hosted pages (`/` or `/x/`), for the links in mail.
    pub pages_path: String,
    /// The online breached-password check (`pwned_check_url`); `None` is off.
    pub pwned_check: Option<policy::BreachCheckSettings>,
    pub rate_limits: throttle::RateLimitSettings,
    pub throttle: throttle::ThrottleSettings,
    /// How long audit events are kept.
    pub audit_retention: std::time::Duration,
    /// IPv6 clients are limited (route limits, the login throttle's own bucket for a known client) per
    /// network of this many leading bits: one subscriber usually gets a whole /64 to rotate through.
    pub ipv6_prefix_len: u8,
}

/// Per /64: what ISPs and clouds hand a single subscriber or machine (RFC 6177).
pub const DEFAULT_IPV6_PREFIX_LEN: u8 = 64;

/// The address a client is limited by: an IPv4 address itself, an IPv6 address's network of
/// `ipv6_prefix_len` bits (an IPv4-mapped IPv6 address is its IPv4 address).
pub fn limit_key(ip: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, ipv6_prefix_len)
            .map_or(IpAddr::V6(v6), |net| IpAddr::V6(net.network())),
        v4 => v4,
    }
}

/// What a successful login or registration hands back. `jwt` is `None` when the account must confirm
/// its email first; `refresh_token` is set in refresh mode.
#[derive(Debug)]
pub struct Issued {
    pub jwt: Option<String>,
    pub refresh_token: Option<String>,
    pub user: User,
}

/// The caller behind a verified access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: Arc<User>,
    /// The session the token belongs to; `None` for a Strapi-issued token.
    pub session_id: Option<String>,
}

pub const MSG_INVALID_LOGIN: &str = "Invalid identifier or password";
pub const MSG_TAKEN: &str = "Email or Username are already taken";
pub const MSG_NOT_CONFIRMED: &str = "Your account email is not confirmed";
pub const MSG_BLOCKED: &str = "Your account has been blocked by an administrator";
pub const MSG_REGISTER_DISABLED: &str = "Register action is currently disabled";
pub const MSG_CURRENT_PASSWORD_INVALID: &str = "The provided current password is invalid";
pub const MSG_PASSWORD_UNCHANGED: &str =
    "Your new password must be different than your current password";

/// The core. Its own public surface is small: construction, the hot path (`login`, `authenticate`)
/// and a few getters for the HTTP layer, the CLI and the tests. Everything else is a service handed
/// out as a borrowed view, one per group of callers, so each group sees only its operations:
/// [`Auth::sessions`] (refresh, logout, a caller's sessions, revocation), [`Auth::accounts`]
/// (registration, mailed codes, password changes), [`Auth::single_sign_on`] (the three legs of a
/// provider sign-in) and [`Auth::admin`] (the operator's commands).
pub struct Auth {
    store: Arc<dyn Store>,
    hasher: Hasher,
    keys: Keys,
    mailer: Mailer,
    settings: AuthSettings,
    session_settings: SessionSettings,
    caches: Caches,
    policy: policy::PasswordPolicy,
    limiter: throttle::RateLimiter,
    throttle: throttle::AccountThrottle,
    refusals: moka::sync::Cache<String, crate::store::Millis>,
    sso: sso::Sso,
    clock: Arc<dyn Clock>,
}

impl Auth {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Hasher,
        keys: Keys,
        mailer: Mailer,
        settings: AuthSettings,
        sessions: SessionSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let shared = store.shared_by_nodes().then(|| store.clone());
        Self {
            caches: Caches::new(sessions.cache_capacity),
            policy: policy::PasswordPolicy::new(
                settings.password_min_chars,
                settings.pwned_check.as_ref(),
            ),
            limiter: throttle::RateLimiter::with_store(
                settings.rate_limits.clone(),
                shared.clone(),
            ),
            throttle: throttle::AccountThrottle::with_store(settings.throttle.clone(), shared),
            refusals: audit::refusal_dedup(),
            sso: sso::Sso::disabled(),
            store,
            hasher,
            keys,
            mailer,
            settings,
            session_settings: sessions,
            clock,
        }
    }

    /// The same core with single sign-on through `sso`'s providers.
    pub fn with_sso(self, sso: sso::Sso) -> Self {
        Self { sso, ..self }
    }

    /// The route limiter (the HTTP layer asks it about every limited request).
    pub(crate) fn limiter(&self) -> &throttle::RateLimiter {
        &self.limiter
    }

    /// The signing keys: the JWKS the HTTP layer serves and the upkeep loop reloads; public for the
    /// benchmarks and the tests, which issue and reload with them.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The mailer: public for `keyway serve`, which warns when no SMTP server is configured, and
    /// for the tests, which wait for background mail.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// The product name shown on pages and in mail.
    pub(crate) fn app_name(&self) -> &str {
        self.mailer.app_name()
    }

    /// Drops a user from the cache after a change made here.
    fn forget_user(&self, user_id: i64) {
        self.caches.apply(&Invalidation::User(user_id));
    }

    /// Now, by the core's clock (a test's clock moves when the test says): public for the CLI
    /// (`keyway audit --since 24h`), the tests and the benchmarks.
    pub fn now_millis(&self) -> Millis {
        self.clock.now_millis()
    }

    /// The accounts' settings: the pages read what they show (registration open, the password's
    /// length), the upkeep loop the audit retention.
    pub(crate) fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The password hasher: public for the tests, which count its verifications.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The store behind the core: the serving process's upkeep (pruning, the invalidation feed) and
    /// the health check use it; public for the tests, which read rows no service returns.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// `POST /api/auth/local`. The password is checked before anything about the account is revealed:
    /// an unknown identifier and a wrong password give the same error after the same amount of work.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        identifier: &LoginIdentifier,
        password: LoginPassword,
        device_id: Option<String>,
        client: ClientInfo,
    ) -> Result<Issued> {
        let ticket = self.caches.ticket();
        let identifier = identifier.as_str();
        let found = self
            .store
            .local_credentials(&identifier.to_lowercase(), identifier)
            .await
            .or_internal()?;
        let account = throttle_key(found.as_ref().map(|c| &c.user), identifier);
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        let ip = ip.map(|ip| limit_key(ip, self.settings.ipv6_prefix_len));
        let now = self.clock.now_millis();
        let user_id = found.as_ref().map(|c| c.user.id);
        // Counted before the hash, so guesses sent at once cannot all pass on the same count.
        let attempt = match self.throttle.attempt(&account, ip, now).await {
            Ok(attempt) => attempt,
            Err(wait) => {
                self.audit_refusal(account.as_str(), user_id, &client, "login throttled")
                    .await;
                return Err(Error::RateLimited(wait));
            }
        };
        let stored_hash = found.as_ref().and_then(|c| c.password_hash.clone());
        let secret = SecretString::from(password.expose());
        let verdict = self.hasher.verify(secret.clone(), stored_hash).await?;
        let (Some(creds), PasswordCheck::Match { rehash }) = (found, verdict) else {
            let detail = if user_id.is_some() {
                "wrong password"
            } else {
                "unknown identifier"
            };
            self.audit("login_failure", user_id, &client, Some(detail))
                .await;
            return Err(Error::Validation(MSG_INVALID_LOGIN.into()));
        };
        self.throttle.succeeded(&account, ip, attempt).await;
        let user = creds.user;
        // Refused after the right password: recorded as single sign-on records a blocked account,
        // a `login_failure` naming the account and why (the answer reveals it anyway).
        let refusal = if self.settings.email_confirmation && !user.confirmed {
            Some(("unconfirmed", MSG_NOT_CONFIRMED))
        } else if user.blocked {
            Some(("blocked", MSG_BLOCKED))
        } else {
            None
        };
        if let Some((detail, message)) = refusal {
            self.audit("login_failure", Some(user.id), &client, Some(detail))
                .await;
            return Err(Error::Application(message.into()));
        }
        if let (true, Some(old)) = (rehash, creds.password_hash) {
            self.upgrade_hash(user.id, old, secret);
        }
        // Audited once the session exists: a login overtaken by a block or a password change is
        // refused (and audited as a failure) by `start_session`.
        let (jwt, refresh_token) = self
            .start_session(&user, ticket, device_id, client.clone())
            .await?;
        self.audit("login_success", Some(user.id), &client, None)
            .await;
        Ok(Issued {
            jwt: Some(jwt),
            refresh_token,
            user,
        })
    }

    /// Replaces an outdated hash (bcrypt from Strapi, or argon2 with old parameters) without making the
    /// user wait for a second hash; a failure only means the upgrade is retried at the next login.
    /// Only where the hash is still `old`: a password change or reset that lands while the new hash
    /// is computed wins, instead of being silently undone by the upgrade.
    fn upgrade_hash(&self, user_id: i64, old: String, password: SecretString) {
        let hasher = self.hasher.clone();
        let store = self.store.clone();
        let now = self.clock.now_millis();
        tokio::spawn(async move {
            let result = async {
                let hash = hasher.hash(password).await?;
                let upgrade = HashUpgrade {
                    user_id,
                    old: &old,
                    new: &hash,
                    at: now,
                };
                store.replace_password_hash(&upgrade).await.or_internal()
            }
            .await;
            match result {
                Ok(true) => tracing::info!(user_id, "password hash upgraded to argon2id"),
                Ok(false) => tracing::info!(user_id, "password changed meanwhile; upgrade dropped"),
                Err(e) => tracing::warn!(user_id, error = %e, "password hash upgrade failed"),
            }
        });
    }

    /// Resolves a bearer token to its caller: signature and claims first, then the user (deleted or
    /// blocked → "Invalid credentials"), then the session (gone, revoked or expired → refused). On the
    /// hot path both lookups are served from the caches, with no database round trip.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let verified = self.keys.verify(token)?;
        let user = self
            .user(verified.user_id)
            .await?
            .ok_or(Error::INVALID_USER)?;
        if !self.may_act(&user) {
            return Err(Error::INVALID_USER);
        }
        // A Strapi-issued token has no session for a password change to end: it ends by its age.
        if verified.session_id.is_none()
            && !issued_after(verified.issued_at, user.password_changed_at)
        {
            return Err(Error::INVALID_TOKEN);
        }
        if let Some(sid) = &verified.session_id {
            let now = self.clock.now_millis();
            match self.session(sid).await? {
                Some(s) if s.user_id == user.id && s.is_live(now) => {}
                _ => return Err(Error::INVALID_TOKEN),
            }
        }
        Ok(Principal {
            user,
            session_id: verified.session_id,
        })
    }

    /// Whether the account may use its tokens: not blocked, and confirmed when confirmation is on.
    fn may_act(&self, user: &User) -> bool {
        !user.blocked && (user.confirmed || !self.settings.email_confirmation)
    }
}

/// Whether a token issued at `iat` (whole seconds) comes after a password change at `changed_at`
/// (milliseconds). A token from the very second of the change is refused, since `iat` cannot say on
/// which side of it it was issued; so is one without `iat` once the password has changed.
fn issued_after(iat: Option<i64>, changed_at: Option<Millis>) -> bool {
    match (iat, changed_at) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(iat), Some(changed)) => iat > changed.div_euclid(1000),
    }
}

/// The throttle key of a login: the account's username lower-cased when the identifier found one,
/// else the identifier lower-cased. Usernames match exactly, so `ALICE` finds no account `alice`; were
/// an account's key its id, five failures as `ALICE` (counted for the name `alice`) followed by a try
/// as `alice` would be refused only when no `alice` exists. With this key every spelling of a name,
/// and an account's email, counts where the account's own attempts do, whether it exists or not; an
/// unknown email counts under itself. (Two accounts whose usernames differ only in case share a key.)
fn throttle_key(user: Option<&User>, identifier: &str) -> throttle::Key {
    let name = user.map_or(identifier, |u| u.username.as_str());
    throttle::Key::account(&name.to_lowercase())
}

/// A random identifier of `bytes` bytes of entropy, URL-safe.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    password::base64_url(&buf)
}

/// Strapi 5's `documentId` shape: 24 lower-case alphanumerics.
pub(crate) fn document_id() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn truncate(mut s: String, max_bytes: usize) -> String {
    if s.len() > max_bytes {
        let mut cut = max_bytes;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_per_network_and_ipv4_per_address() {
        let key = |s: &str, len| limit_key(s.parse().unwrap(), len).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:1:2:3", 64), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:3::1", 64), "2001:db8:1:3::");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 128), "2001:db8:1:2:aaaa::1");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::");
        assert_eq!(key("198.51.100.7", 64), "198.51.100.7");
        assert_eq!(key("::ffff:198.51.100.7", 64), "198.51.100.7");
    }

    #[test]
    fn document_ids_look_like_strapis() {
        let id = document_id();
        assert_eq!(id.len(), 24);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(document_id(), id);
    }

    #[test]
    fn random_ids_carry_the_requested_entropy() {
        // 16 bytes = 128 bits = 22 base64url characters.
        assert_eq!(random_id(16).len(), 22);
        assert_ne!(random_id(16), random_id(16));
    }

    #[test]
    fn tokens_from_the_second_of_a_password_change_or_before_are_refused() {
        let changed = 1_800_000_000_250; // 250 ms into second 1_800_000_000
        assert!(issued_after(Some(1_799_999_999), None), "never changed");
        assert!(!issued_after(Some(1_799_999_999), Some(changed)));
        assert!(
            !issued_after(Some(1_800_000_000), Some(changed)),
            "same second"
        );
        assert!(issued_after(Some(1_800_000_001), Some(changed)));
        assert!(!issued_after(None, Some(changed)), "no iat once changed");
        assert!(issued_after(None, None));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("hello".into(), 10), "hello");
    }
}
