//! Fixtures that read like prose: `TestApp::spawn().await.with_user("alice")`.
//!
//! Every app gets a fresh database on the engine `KEYWAY_TEST_BACKEND` names (see `testdb.rs`):
//! a SQLite file in its temporary directory by default, its own PostgreSQL database with `postgres`.

use keyway::auth::Clock;
use keyway::auth::admin::AdminNewUser;
use keyway::auth::password::HashParams;
use keyway::domain::{Email, Password, Username};
use keyway::{App, Config};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::testdb::{Backend, PgDatabase};

/// A secret long enough for HS256, for tests that need to mint their own tokens.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// argon2id parameters small enough for a fast suite. Production defaults are covered by unit tests.
pub fn cheap_hash() -> HashParams {
    HashParams {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    }
}

/// Polls `done` until it holds, failing after a generous deadline: for work the server does beside
/// the request (its maintenance loop, a password hash upgrade), on its own schedule.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the running server never {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real time plus an offset the test controls, so lifetimes can pass without sleeping.
#[derive(Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
    /// The real time the clock stopped at, or 0 while it runs.
    frozen_at_ms: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Sets the clock back: what is issued now looks issued `by` ago to checks that read the real
    /// time (an access token's `exp` is checked against the system clock, not this one).
    pub fn rewind(&self, by: Duration) {
        self.offset_ms
            .fetch_sub(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Stops the clock, so a boundary test can stand one millisecond either side of a lifetime
    /// however slowly a loaded machine answers; only `advance` and `rewind` move it from then on.
    pub fn freeze(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        let _ = self
            .frozen_at_ms
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_millis(&self) -> i64 {
        let base = match self.frozen_at_ms.load(Ordering::SeqCst) {
            0 => chrono::Utc::now().timestamp_millis(),
            frozen => frozen,
        };
        base + self.offset_ms.load(Ordering::SeqCst)
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub clock: Arc<TestClock>,
    pub client: reqwest::Client,
    pub dir: Arc<TempDir>,
    /// The PostgreSQL database when the suite runs on PostgreSQL; kept (and dropped) with the app.
    pg: Option<Arc<PgDatabase>>,
    pub config: Config,
    pub auth: Arc<keyway::auth::Auth>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Applied to the `App` before it runs, at every start (extra routes, a shorter prune interval).
    tune: Tune,
}

/// What [`TestApp::spawn_tuned`] does to the `App`, kept for restarts.
pub type Tune = Arc<dyn Fn(App) -> App + Send + Sync>;

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a fresh database and the given configuration changes.
    pub async fn spawn_with(change: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on("127.0.0.1:0", change).await
    }

    /// Spawns listening on `bind` (`[::]:0` for a dual-stack socket, where IPv4 peers show up as
    /// `::ffff:a.b.c.d`); `addr` is then the port on the IPv4 loopback.
    pub async fn spawn_on(bind: &str, change: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        Self::spawn_full(listener, change, Arc::new(|app| app)).await
    }

    /// Spawns on a listener the test bound first, so the configuration can name the port (single
    /// sign-on's redirect URI, which the provider must know before the app starts).
    pub async fn spawn_listening(
        listener: tokio::net::TcpListener,
        change: impl FnOnce(&mut Config),
    ) -> Self {
        Self::spawn_full(listener, change, Arc::new(|app| app)).await
    }

    /// Spawns with the given configuration changes and `tune` applied to the `App` before it runs
    /// (`App::with_routes`, `App::with_prune_interval`), here and at each restart.
    pub async fn spawn_tuned(
        change: impl FnOnce(&mut Config),
        tune: impl Fn(App) -> App + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        Self::spawn_full(listener, change, Arc::new(tune)).await
    }

    async fn spawn_full(
        listener: tokio::net::TcpListener,
        change: impl FnOnce(&mut Config),
        tune: Tune,
    ) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = Config::defaults();
        let pg = match Backend::from_env() {
            Backend::Sqlite => {
                config.database_url = SecretString::from(format!(
                    "sqlite://{}",
                    dir.path().join("keyway.db").display()
                ));
                None
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                config.database_url = db.url();
                Some(Arc::new(db))
            }
        };
        config.hash = cheap_hash();
        // Most tests log in far more often than a person would; the defences have their own tests.
        config.auth.rate_limits.enabled = false;
        config.auth.throttle.enabled = false;
        change(&mut config);
        Self::start_on(listener, config, dir, pg, tune).await
    }

    /// Starts another server on the same database and directory (a restart, or a second node).
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        Self::start(
            self.config.clone(),
            self.dir.clone(),
            self.pg.clone(),
            self.tune.clone(),
        )
        .await
    }

    /// Restarts on the same database with a changed configuration.
    pub async fn restart_with(mut self, config: Config) -> Self {
        self.stop().await;
        Self::start(config, self.dir.clone(), self.pg.clone(), self.tune.clone()).await
    }

    async fn start(
        config: Config,
        dir: Arc<TempDir>,
        pg: Option<Arc<PgDatabase>>,
        tune: Tune,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        Self::start_on(listener, config, dir, pg, tune).await
    }

    async fn start_on(
        listener: tokio::net::TcpListener,
        config: Config,
        dir: Arc<TempDir>,
        pg: Option<Arc<PgDatabase>>,
        tune: Tune,
    ) -> Self {
        let clock = Arc::new(TestClock::default());
        let auth =
            keyway::build_auth_with_clock(&config, clock.clone(), keyway::ServerRole::Server)
                .await
                .expect("app builds");
        let app = tune(App::with_auth(auth, &config, listener).expect("app builds"));
        let port = app.local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let auth = app.auth().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            clock,
            client: reqwest::Client::new(),
            dir,
            pg,
            config,
            auth,
            shutdown: Some(tx),
            server: Some(server),
            tune,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a confirmed account `name` with email `name@example.com` and password
    /// [`password_of`]`(name)`.
    pub async fn with_user(self, name: &str) -> Self {
        self.create_user(name, |_| {}).await;
        self
    }

    pub async fn create_user(&self, name: &str, change: impl FnOnce(&mut AdminNewUser)) {
        let mut new = AdminNewUser {
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            password: Password::parse(&password_of(name)).unwrap(),
            role: None,
            confirmed: true,
            blocked: false,
        };
        change(&mut new);
        self.auth
            .admin()
            .create_user(new)
            .await
            .expect("user created");
    }

    /// The account named `name`, as the store has it now (it must exist).
    pub async fn user(&self, name: &str) -> keyway::store::User {
        let found = self.auth.admin().find_by_username(name).await.unwrap();
        found.unwrap_or_else(|| panic!("no account named {name}"))
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn login(&self, identifier: &str, password: &str) -> Response {
        self.post(
            "/api/auth/local",
            json!({ "identifier": identifier, "password": password }),
        )
        .await
    }

    /// Logs in as `name` (created by `with_user`) and returns the jwt.
    pub async fn token_for(&self, name: &str) -> String {
        self.token_for_password(name, &password_of(name)).await
    }

    pub async fn token_for_password(&self, name: &str, password: &str) -> String {
        let res = self.login(name, password).await;
        assert_eq!(res.status(), StatusCode::OK, "login of {name} failed");
        let body: Value = res.json().await.unwrap();
        body["jwt"]
            .as_str()
            .expect("jwt in login response")
            .to_owned()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.client
            .get(self.url("/api/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// A direct connection to the app's database, for checks and tampering the API does not allow.
    /// Use it through [`with_db!`], so the same statement runs on either engine.
    pub async fn db(&self) -> TestDb {
        use secrecy::ExposeSecret;
        let url = self.config.database_url.expose_secret();
        match &self.pg {
            None => TestDb::Sqlite(
                sqlx::SqlitePool::connect(url)
                    .await
                    .expect("open test database"),
            ),
            Some(_) => TestDb::Postgres(
                sqlx::PgPool::connect(url)
                    .await
                    .expect("open test database"),
            ),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A pool on the app's database, of whichever engine the suite runs on.
pub enum TestDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// `with_db!(app.db().await, |pool| sqlx::query(…).execute(pool).await)`: runs the body with `pool`
/// bound to a reference to the test database's pool. The body is compiled once per engine, so one
/// statement serves both — write placeholders as `$1`, which SQLite accepts too.
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db {
            $crate::helpers::TestDb::Sqlite($pool) => $body,
            $crate::helpers::TestDb::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// A port on 127.0.0.1 that refuses every connection for as long as the returned socket lives:
/// bound, so no other process can take it, and never listening. (A port bound and released is only
/// free until someone else binds it.)
pub fn refused_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind port 0");
    let port = socket.local_addr().expect("bound address").port();
    (socket, port)
}

pub fn password_of(name: &str) -> String {
    format!("{name}-password")
}

/// Asserts a Strapi error envelope and returns its `error` object.
pub async fn assert_error(res: Response, status: u16, name: &str, message: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let body: Value = res.json().await.expect("JSON error body");
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["error"]["status"], status, "{body}");
    assert_eq!(body["error"]["name"], name, "{body}");
    assert_eq!(body["error"]["message"], message, "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
    body["error"].clone()
}

/// Asserts the one answer a failed login gets, whatever failed (unknown name, wrong password, an
/// account without a password): no message may tell them apart.
pub async fn assert_invalid_login(res: Response) {
    assert_error(
        res,
        400,
        "ValidationError",
        "Invalid identifier or password",
    )
    .await;
}

/// Decodes a JWT's payload without verifying it (tests inspect what the server issued).
pub fn jwt_payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("three-part JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

pub fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
