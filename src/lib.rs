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
pub mod outbound;
pub mod serve;
pub mod settings;
pub mod store;
pub mod templates;

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
use store::{FeedEvent, FeedStatus, InvalidationFeed};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Setup(#[from] error::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("page template {0}")]
    PageTemplate(#[from] templates::TemplateError),
}

/// Who is building the core: a serving process adopts the configured signing algorithm (a changed
/// `jwt_algorithm` generates a new key at start); an admin command never changes which key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    Server,
    Admin,
}

/// Builds the authentication core from configuration: opens (and migrates) the database, loads or
/// creates the signing key, prepares the hasher and the mailer.
pub async fn build_auth(config: &Config, role: ServerRole) -> Result<Arc<Auth>, StartError> {
    build_auth_with_clock(config, Arc::new(SystemClock), role).await
}

pub async fn build_auth_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
    role: ServerRole,
) -> Result<Arc<Auth>, StartError> {
    let store = store::connect(&config.database_url, &config.database).await?;
    let keys = Keys::load(
        store.as_ref(),
        config.tokens.clone(),
        clock.now_millis(),
        role == ServerRole::Server,
    )
    .await?;
    let hasher = Hasher::new(config.hash, config.hash_concurrency).await?;
    let mailer = Mailer::new(config.mail.clone())
        .map_err(|e| error::Error::internal(format!("mail settings: {e}")))?;
    let sso = auth::sso::Sso::new(config.sso.clone()).map_err(error::Error::internal)?;
    Ok(Arc::new(
        Auth::new(
            store,
            hasher,
            keys,
            mailer,
            config.auth.clone(),
            config.sessions.clone(),
            clock,
        )
        .with_sso(sso),
    ))
}

/// How often a feed that could not be opened (database down at start) is tried again.
const RESUBSCRIBE_INTERVAL: Duration = Duration::from_secs(5);

/// The database's push feed of invalidations, if it has one.
struct Feed {
    feed: Option<Box<dyn InvalidationFeed>>,
    /// Opening it failed: try again now and then.
    failed: bool,
}

impl Feed {
    fn new() -> Self {
        Self {
            feed: None,
            failed: false,
        }
    }

    async fn subscribe(&mut self, auth: &Auth, status: &FeedStatus) {
        match auth.store().subscribe().await {
            Ok(feed) => {
                self.failed = false;
                if feed.is_some() && self.feed.is_none() {
                    // Anything recorded before the feed opened came through no feed.
                    auth.sessions().forget_everything().await;
                }
                match feed {
                    Some(_) => status.listening(),
                    None => status.none(),
                }
                self.feed = feed;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for invalidations; polling only");
                self.failed = true;
            }
        }
    }

    async fn next(&mut self) -> FeedEvent {
        match &mut self.feed {
            Some(feed) => feed.next().await,
            None => std::future::pending().await,
        }
    }
}
/// How often ended sessions and old invalidations are deleted, and retired keys unloaded.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// A ready-to-run server: state built, listener bound.
pub struct App {
    listener: TcpListener,
    state: AppState,
    body_limit_bytes: usize,
    connections: config::ConnectionLimits,
    invalidation_poll: Duration,
    prune_interval: Duration,
    extra_routes: axum::Router<http::AppState>,
}

impl App {
    pub async fn build(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        let auth = build_auth(&config, ServerRole::Server).await?;
        Self::with_auth(auth, &config, listener)
    }

    /// Fails only on a page template override that does not load (the configuration checked it, but
    /// a test or an embedder may build a `Config` by hand).
    pub fn with_auth(
        auth: Arc<Auth>,
        config: &Config,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        let page_templates =
            templates::pages::PageTemplates::load(config.pages.templates_dir.as_deref())?;
        let public = url::Url::parse(&config.mail.public_url).ok();
        let cookie = config::CookieSettings {
            public_https: public.as_ref().is_some_and(|u| u.scheme() == "https"),
            ..config.cookie.clone()
        };
        // The origins whose pages may use the cookie routes (http/csrf.rs): this server's public
        // one and the front ends the operator listed.
        let trusted_origins = public
            .map(|u| u.origin().ascii_serialization())
            .into_iter()
            .chain(config.transport.cors_origins.iter().cloned())
            .collect();
        Ok(Self {
            listener,
            state: AppState::new(http::Shared {
                auth,
                cookie: Arc::new(cookie),
                pages: Arc::new(config.pages.clone()),
                page_templates: Arc::new(page_templates),
                proxies: Arc::new(http::client_addr::Proxies {
                    trusted: config.transport.trusted_proxies.clone(),
                    header: config.transport.forwarded_header,
                }),
                cors_origins: Arc::new(config.transport.cors_origins.clone()),
                trusted_origins: Arc::new(trusted_origins),
                request_timeout: config.transport.request_timeout,
                access_log: config.transport.access_log,
                openapi_json: Default::default(),
                feed: Default::default(),
            }),
            body_limit_bytes: config.body_limit_bytes,
            connections: config.transport.connections,
            invalidation_poll: config.invalidation_poll,
            prune_interval: PRUNE_INTERVAL,
            extra_routes: axum::Router::new(),
        })
    }

    /// Serves `routes` beside the API's, inside the same layers: for an embedder's own endpoints,
    /// and for tests that need a route the API has not (a handler that panics).
    pub fn with_routes(mut self, routes: axum::Router<http::AppState>) -> Self {
        self.extra_routes = self.extra_routes.merge(routes);
        self
    }

    /// Prunes (ended sessions, old audit events, expired keys) every `every` instead of every ten
    /// minutes, so a test can watch the running server do it.
    pub fn with_prune_interval(mut self, every: Duration) -> Self {
        self.prune_interval = every;
        self
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
        let maintenance = tokio::spawn(maintain(
            self.state.auth.clone(),
            self.state.feed.clone(),
            self.invalidation_poll,
            self.prune_interval,
        ));
        let router = http::router(self.state, self.body_limit_bytes, self.extra_routes);
        let served = serve::serve(self.listener, router, self.connections, shutdown).await;
        maintenance.abort();
        served
    }
}

/// Background upkeep of a serving process: applies invalidations recorded by other processes (pushed
/// by the database where it can, polled every `poll` regardless), and now and then deletes what can
/// no longer matter.
async fn maintain(auth: Arc<Auth>, status: Arc<FeedStatus>, poll: Duration, prune_every: Duration) {
    let mut seen = match auth.store().last_invalidation().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the invalidation log");
            0
        }
    };
    let mut feed = Feed::new();
    feed.subscribe(&auth, &status).await;
    let mut sync = tokio::time::interval(poll);
    let mut resubscribe = tokio::time::interval(RESUBSCRIBE_INTERVAL);
    let mut prune = tokio::time::interval(prune_every);
    loop {
        tokio::select! {
            _ = sync.tick() => seen = auth.sessions().sync_invalidations(seen).await,
            event = feed.next() => {
                match event {
                    FeedEvent::Changed => {}
                    FeedEvent::Lost => status.listening(),
                    FeedEvent::Down => status.connecting(),
                }
                if event != FeedEvent::Changed {
                    // Notices may have been missed while the connection was down.
                    auth.sessions().forget_everything().await;
                }
                seen = auth.sessions().sync_invalidations(seen).await;
            }
            _ = resubscribe.tick(), if feed.failed => feed.subscribe(&auth, &status).await,
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
