//! Keyway: a Strapi-compatible authentication API in one binary.
//!
//! Layers, arrows pointing down only: [`http`] (axum handlers, extractors, the error envelope) →
//! [`auth`] (the core: passwords, tokens, sessions) → [`store`] (persistence behind one trait).
//! [`App::build`] wires them from a [`Config`] and a pre-bound listener, so tests can bind port 0.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod serve;
pub mod store;

pub use config::Config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use auth::mail::Mailer;
use auth::password::Hasher;
use auth::tokens::Keys;
use auth::{Auth, Clock, SystemClock};
use http::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Setup(#[from] error::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Who is building the core: a serving process adopts the configured signing algorithm (a changed
/// `jwt_algorithm` generates a new key at start); an admin command never changes which key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Admin,
}

/// Builds the authentication core from configuration: opens (and migrates) the database, loads or
/// creates the signing key, prepares the hasher and the mailer.
pub async fn build_auth(config: &Config, role: Role) -> Result<Arc<Auth>, StartError> {
    build_auth_with_clock(config, Arc::new(SystemClock), role).await
}

pub async fn build_auth_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
    role: Role,
) -> Result<Arc<Auth>, StartError> {
    let store = store::connect(&config.database_url, &config.database).await?;
    let keys = Keys::load(
        store.as_ref(),
        config.tokens.clone(),
        clock.now_millis(),
        role == Role::Server,
    )
    .await?;
    let hasher = Hasher::new(config.hash, config.hash_concurrency).await?;
    let mailer = Mailer::new(config.mail.clone())
        .map_err(|e| error::Error::internal(format!("mail settings: {e}")))?;
    Ok(Arc::new(Auth::new(
        store,
        hasher,
        keys,
        mailer,
        config.auth.clone(),
        config.sessions.clone(),
        clock,
    )))
}

/// How often a server looks for changes other processes made (a CLI `user block`, another node):
/// the longest a revocation made elsewhere takes to reach this server's caches.
const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// How often ended sessions and old invalidations are deleted, and retired keys unloaded.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// A ready-to-run server: state built, listener bound.
pub struct App {
    listener: TcpListener,
    state: AppState,
    body_limit_bytes: usize,
    connections: serve::ConnectionLimits,
}

impl App {
    pub async fn build(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        let auth = build_auth(&config, Role::Server).await?;
        Ok(Self::with_auth(auth, &config, listener))
    }

    pub fn with_auth(auth: Arc<Auth>, config: &Config, listener: TcpListener) -> Self {
        Self {
            listener,
            state: AppState {
                auth,
                cookie: Arc::new(config.cookie.clone()),
                pages: Arc::new(config.pages.clone()),
                trusted_proxies: Arc::new(config.trusted_proxies.clone()),
                cors_origins: Arc::new(config.cors_origins.clone()),
                request_timeout: config.request_timeout,
            },
            body_limit_bytes: config.body_limit_bytes,
            connections: config.connections,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.state.auth
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let maintenance = tokio::spawn(maintain(self.state.auth.clone()));
        let router = http::router(self.state, self.body_limit_bytes);
        let served = serve::serve(self.listener, router, self.connections, shutdown).await;
        maintenance.abort();
        served
    }
}

/// Background upkeep of a serving process: applies invalidations recorded by other processes, and
/// now and then deletes what can no longer matter.
async fn maintain(auth: Arc<Auth>) {
    let mut seen = match auth.store().last_invalidation().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the invalidation log");
            0
        }
    };
    let mut sync = tokio::time::interval(SYNC_INTERVAL);
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = sync.tick() => seen = auth.sync_invalidations(seen).await,
            _ = prune.tick() => {
                // Keys whose tokens have all expired leave the verifiers and the JWKS.
                if let Err(e) = auth.keys().reload(auth.store().as_ref(), auth.now_millis()).await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
                // Ended sessions are kept a day (reuse detection, and a trail for whoever looks).
                let now = auth.now_millis();
                let day_ago = now - 86_400_000;
                if let Err(e) = auth.store().prune(day_ago, day_ago).await {
                    tracing::warn!(error = %e, "pruning failed");
                }
                let retention = auth.settings().audit_retention.as_millis() as i64;
                if let Err(e) = auth.store().prune_audit(now - retention).await {
                    tracing::warn!(error = %e, "pruning the audit trail failed");
                }
            }
        }
    }
}
