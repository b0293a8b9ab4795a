//! Single sign-on end to end: `GET /api/connect/NAME` → the provider → `GET /api/connect/NAME/callback`
//! → the front-end callback with a one-time code → `GET /api/auth/NAME/callback?code=…` → a session.
//!
//! Each test runs the `keyway` binary (cli.rs `Server`) against providers that are real processes
//! (idp.rs): the certified oidc-provider, a provider that breaks one id_token rule on demand, and a
//! stand-in for GitHub. A [`Browser`] is a reqwest client with its own cookie jar that never follows
//! redirects by itself: every `Location` is followed here, and the provider's own pages are filled in,
//! so each hop can be inspected or tampered with. The database is the one `KEYWAY_TEST_BACKEND` names.

use keyway::auth::sso::{Protocol, ProviderSettings};
use reqwest::StatusCode;
use reqwest::cookie::Jar;
use secrecy::SecretString;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use url::{Position, Url};

use crate::cli::{Server, keyway, run, stderr, stdout, tempdir};
use crate::helpers::{TestApp, assert_error};
use crate::idp::{
    CLIENT_ID, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, GitHubUser, IdpUser, Peer, reserve_port,
};
use crate::testdb::{Backend, PgDatabase};

const NO_SESSION: &str = "OAuth authentication requires a completed provider session";
/// Hops through a provider's pages before a sign-in counts as stuck.
const MAX_HOPS: usize = 10;

// ---- Keyway with providers ----

/// Keyway about to start: its port is chosen first, because providers need its redirect_uri.
struct Setup {
    port: u16,
    providers: Vec<String>,
    env: Vec<(String, String)>,
}

impl Setup {
    fn new() -> Self {
        Self {
            port: reserve_port(),
            providers: Vec::new(),
            env: Vec::new(),
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the provider `name` sends browsers back to Keyway.
    fn redirect_uri(&self, name: &str) -> String {
        format!("{}/api/connect/{name}/callback", self.origin())
    }

    fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn provider(mut self, name: &str, settings: &[(&str, &str)]) -> Self {
        self.providers.push(name.to_owned());
        let prefix = format!("KEYWAY_SSO_{}_", name.to_uppercase());
        for (key, value) in settings {
            self = self.env(format!("{prefix}{key}"), *value);
        }
        self
    }

    /// An OpenID Connect provider `name` at `issuer` (discovered lazily, so it may be down).
    fn oidc(self, name: &str, issuer: &str) -> Self {
        self.provider(
            name,
            &[
                ("ISSUER", issuer),
                ("CLIENT_ID", CLIENT_ID),
                ("CLIENT_SECRET", crate::idp::CLIENT_SECRET),
            ],
        )
    }

    /// The `github` preset, pointed at the stand-in instead of github.com.
    fn github(self, standin: &Peer) -> Self {
        let auth = standin.url("/login/oauth/authorize");
        let token = standin.url("/login/oauth/access_token");
        self.provider(
            "github",
            &[
                ("CLIENT_ID", GITHUB_CLIENT_ID),
                ("CLIENT_SECRET", GITHUB_CLIENT_SECRET),
                ("AUTH_URL", &auth),
                ("TOKEN_URL", &token),
                ("API_URL", &standin.origin),
            ],
        )
    }

    async fn start(self) -> Keyway {
        let dir = tempdir();
        let (database_url, pg) = match Backend::from_env() {
            Backend::Sqlite => {
                let path = dir.path().join("keyway.db");
                (format!("sqlite://{}", path.display()), None)
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                (db.url_str().to_owned(), Some(db))
            }
        };
        let mut env = vec![
            ("KEYWAY_DATABASE_URL".to_owned(), database_url.clone()),
            ("KEYWAY_PUBLIC_URL".to_owned(), self.origin()),
            ("KEYWAY_SSO_PROVIDERS".to_owned(), self.providers.join(",")),
        ];
        env.extend(self.env);
        let mut cmd = keyway(dir.path());
        cmd.envs(env.clone())
            .args(["serve", "--bind", &format!("127.0.0.1:{}", self.port)]);
        Keyway {
            server: Server::start(cmd).await,
            dir,
            database_url,
            env,
            _pg: pg,
        }
    }
}

/// Where a browser finds Keyway: a `keyway serve` process, or an app in this process (whose clock the
/// test controls).
trait Site {
    fn url(&self, path: &str) -> String;
}

impl Site for Keyway {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

impl Site for TestApp {
    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

/// A running Keyway. Fields drop in order: the server stops before its database goes.
struct Keyway {
    server: Server,
    dir: TempDir,
    database_url: String,
    /// What the server was started with, for a second node.
    env: Vec<(String, String)>,
    _pg: Option<PgDatabase>,
}

impl Keyway {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// A second `keyway serve` on the same database and settings, as behind a load balancer; its
    /// folder must outlive it.
    async fn another_node(&self) -> (Server, TempDir) {
        let dir = tempdir();
        let mut cmd = keyway(dir.path());
        cmd.envs(self.env.clone())
            .args(["serve", "--bind", "127.0.0.1:0"]);
        (Server::start(cmd).await, dir)
    }

    /// The hosted page a provider's sign-ins end on unless `?callback=` chose another.
    fn hosted_callback(&self, provider: &str) -> String {
        self.url(&format!("/connect/{provider}/redirect"))
    }

    /// `keyway user ARGS` on this server's database.
    async fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = keyway(self.dir.path());
        cmd.env("KEYWAY_DATABASE_URL", &self.database_url)
            .arg("user")
            .args(args);
        run(cmd, stdin).await
    }

    async fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args, "").await;
        assert!(
            out.status.success(),
            "keyway user {args:?}: {}",
            stderr(&out)
        );
        stdout(&out)
    }

    /// How many accounts exist (the footer of `keyway user list`, `N user(s)`).
    async fn user_count(&self) -> usize {
        let list = self.cli_ok(&["list"]).await;
        list.lines()
            .last()
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in `keyway user list`:\n{list}"))
    }

    /// A confirmed local account, made with the CLI.
    async fn add_local_user(&self, username: &str, email: &str, password: &str) {
        let args = [
            "add",
            "--username",
            username,
            "--email",
            email,
            "--password-stdin",
            "--confirmed",
        ];
        let out = self.cli(&args, &format!("{password}\n")).await;
        assert!(out.status.success(), "user add: {}", stderr(&out));
    }

    /// The one-time code Keyway put on the front-end callback `callback`; panics with the error
    /// Keyway sent instead.
    fn code_at(&self, front: &Url, callback: &str) -> String {
        match outcome(front, callback) {
            Ok(code) => code,
            Err((error, description)) => panic!(
                "sign-in failed at the provider callback: error={error} ({description})\n\
                 --- keyway stderr ---\n{}",
                self.server.stderr()
            ),
        }
    }

    fn code(&self, front: &Url, provider: &str) -> String {
        self.code_at(front, &self.hosted_callback(provider))
    }

    /// The `error` Keyway put on the hosted callback; panics if it sent a code instead.
    fn error(&self, front: &Url, provider: &str) -> String {
        self.refusal(front, provider).0
    }

    /// The `error` and `error_description` Keyway put on the hosted callback; panics if it sent a
    /// code instead.
    fn refusal(&self, front: &Url, provider: &str) -> (String, String) {
        match outcome(front, &self.hosted_callback(provider)) {
            Ok(_) => panic!("Keyway accepted the sign-in: {front}"),
            Err(refusal) => refusal,
        }
    }
}

/// What the browser lands on when the state is unknown, spent or expired.
const STATE_GONE: (&str, &str) = ("invalid_state", "The sign-in expired or was already used");

/// Where Keyway sent the browser after the provider: it must be `callback` with either a `code`
/// (Ok) or an `error` and its description (Err), never both.
fn outcome(front: &Url, callback: &str) -> Result<String, (String, String)> {
    assert_eq!(
        &front[..Position::AfterPath],
        callback,
        "sent to the wrong front end: {front}"
    );
    let q = query(front);
    match (q.get("code"), q.get("error")) {
        (Some(code), None) if !code.is_empty() => Ok(code.clone()),
        (None, Some(error)) if !error.is_empty() => Err((
            error.clone(),
            q.get("error_description").cloned().unwrap_or_default(),
        )),
        _ => panic!("neither a code nor an error, or both: {front}"),
    }
}

/// Keyway with the real OpenID Connect provider as `test`, knowing `users`.
async fn with_idp(users: &[IdpUser], change: impl FnOnce(Setup) -> Setup) -> (Keyway, Peer) {
    let setup = Setup::new();
    let idp = Peer::idp(&[setup.redirect_uri("test")], users).await;
    let keyway = change(setup.oidc("test", &idp.origin)).start().await;
    (keyway, idp)
}

// ---- a browser ----

/// What the person in front of the browser does on the provider's pages.
#[derive(Clone, Copy)]
enum AtProvider<'a> {
    /// Signs in on the IdP's login form (skipped when the IdP still has a session).
    SignIn(&'a IdpUser),
    /// Authorizes the app on GitHub's page; the rogue provider asks nothing.
    Approve,
    /// Cancels on the provider's page.
    Cancel,
}

/// One browser: its own cookies, redirects followed by the test.
struct Browser {
    client: reqwest::Client,
}

impl Browser {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::new(Jar::default()))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Self { client }
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// `GET /api/connect/NAME[?callback=…]`, as the "Continue with" link does.
    async fn connect(
        &self,
        keyway: &impl Site,
        provider: &str,
        callback: Option<&str>,
    ) -> reqwest::Response {
        let mut url = Url::parse(&keyway.url(&format!("/api/connect/{provider}"))).unwrap();
        if let Some(callback) = callback {
            url.query_pairs_mut().append_pair("callback", callback);
        }
        self.get(url.as_str()).await
    }

    /// Starts a sign-in and returns the provider URL Keyway redirects to.
    async fn start(&self, keyway: &impl Site, provider: &str, callback: Option<&str>) -> Url {
        let res = self.connect(keyway, provider, callback).await;
        assert_eq!(
            res.status(),
            StatusCode::FOUND,
            "GET /api/connect/{provider}: {}",
            res.text().await.unwrap_or_default()
        );
        location(&res)
    }

    /// From the provider's authorization URL until the provider sends the browser back to Keyway:
    /// returns that URL (Keyway's provider callback), not yet visited.
    async fn through_provider(
        &self,
        keyway: &impl Site,
        authorize: Url,
        act: AtProvider<'_>,
    ) -> Url {
        let keyway_origin = Url::parse(&keyway.url("/")).unwrap().origin();
        let mut url = authorize;
        let mut form: Option<String> = None;
        for _ in 0..MAX_HOPS {
            if url.origin() == keyway_origin {
                return url;
            }
            let res = match form.take() {
                None => self.get(url.as_str()).await,
                Some(body) => self
                    .client
                    .post(url.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST {url}: {e}")),
            };
            if res.status().is_redirection() {
                url = location(&res);
                continue;
            }
            let status = res.status();
            let html = res.text().await.unwrap_or_default();
            assert_eq!(status, StatusCode::OK, "the provider at {url}:\n{html}");
            let (action, body) = answer_page(&html, act);
            url = url.join(&action).unwrap();
            form = Some(body);
        }
        panic!("still at the provider after {MAX_HOPS} hops: {url}");
    }

    /// Visits Keyway's provider callback; returns the front-end URL Keyway redirects to.
    async fn back_at_keyway(&self, callback: &Url) -> Url {
        let res = self.get(callback.as_str()).await;
        assert_eq!(
            res.status(),
            StatusCode::FOUND,
            "GET {callback}: {}",
            res.text().await.unwrap_or_default()
        );
        location(&res)
    }

    /// From the start to the provider's redirect back: Keyway's provider callback, not yet visited.
    async fn to_callback(&self, keyway: &impl Site, provider: &str, act: AtProvider<'_>) -> Url {
        let authorize = self.start(keyway, provider, None).await;
        self.through_provider(keyway, authorize, act).await
    }

    /// Everything up to the front-end callback, with the default callback.
    async fn through(&self, keyway: &impl Site, provider: &str, act: AtProvider<'_>) -> Url {
        let callback = self.to_callback(keyway, provider, act).await;
        self.back_at_keyway(&callback).await
    }

    /// The front end's last step: `GET /api/auth/NAME/callback?code=…`.
    fn exchange_request(
        &self,
        keyway: &impl Site,
        provider: &str,
        code: &str,
    ) -> reqwest::RequestBuilder {
        let mut url = Url::parse(&keyway.url(&format!("/api/auth/{provider}/callback"))).unwrap();
        url.query_pairs_mut().append_pair("code", code);
        self.client.get(url)
    }

    async fn exchange(&self, keyway: &impl Site, provider: &str, code: &str) -> reqwest::Response {
        let req = self.exchange_request(keyway, provider, code);
        req.send().await.expect("request sent")
    }

    /// A whole sign-in the provider completes; returns the answer to the last step.
    async fn sign_in(
        &self,
        keyway: &Keyway,
        provider: &str,
        act: AtProvider<'_>,
    ) -> reqwest::Response {
        let front = self.through(keyway, provider, act).await;
        let code = keyway.code(&front, provider);
        self.exchange(keyway, provider, &code).await
    }

    /// A whole sign-in that must succeed; returns `{jwt, user, refreshToken}`.
    async fn sign_in_ok(&self, keyway: &Keyway, provider: &str, act: AtProvider<'_>) -> Value {
        session(keyway, self.sign_in(keyway, provider, act).await).await
    }
}

/// Asserts a successful sign-in answer and returns its body.
async fn session(keyway: &Keyway, res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(
        status,
        StatusCode::OK,
        "{body}\n--- keyway stderr ---\n{}",
        keyway.server.stderr()
    );
    assert!(body["jwt"].is_string(), "no jwt: {body}");
    assert!(body["user"]["id"].is_number(), "no user: {body}");
    body
}

/// How the browser answers one of the e2e/sso pages: the form's target and its body.
fn answer_page(html: &str, act: AtProvider<'_>) -> (String, String) {
    let attr = |marker: &str, name: &str| {
        attribute(html, marker, name).unwrap_or_else(|| panic!("no {name} at {marker}:\n{html}"))
    };
    if html.contains("id=\"error\"") {
        panic!("the provider shows an error:\n{html}");
    }
    if html.contains("id=\"login-form\"") {
        return match act {
            AtProvider::SignIn(user) => (
                attr("id=\"login-form\"", "action"),
                serde_urlencoded::to_string([("login", &user.login), ("password", &user.password)])
                    .unwrap(),
            ),
            AtProvider::Cancel => (attr("id=\"cancel\"", "formaction"), String::new()),
            AtProvider::Approve => panic!("the IdP asks for a login:\n{html}"),
        };
    }
    if html.contains("id=\"authorize-form\"") {
        let decision = match act {
            AtProvider::Approve => "decision=allow",
            AtProvider::Cancel => "decision=deny",
            AtProvider::SignIn(_) => panic!("GitHub asks to authorize, not to sign in:\n{html}"),
        };
        return (attr("id=\"authorize-form\"", "action"), decision.to_owned());
    }
    panic!("a provider page this suite does not know:\n{html}");
}

/// The value of `name="…"` in the tag that carries `marker`.
fn attribute(html: &str, marker: &str, name: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(tag[from..from + len].to_owned())
}

/// The redirect's target, resolved against the request URL.
fn location(res: &reqwest::Response) -> Url {
    assert!(
        res.status().is_redirection(),
        "{} answered {} instead of redirecting",
        res.url(),
        res.status()
    );
    let to = res.headers()["location"].to_str().expect("ASCII Location");
    res.url().join(to).expect("a valid Location")
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn own((error, description): (&str, &str)) -> (String, String) {
    (error.to_owned(), description.to_owned())
}

/// `url` with the query parameter `name` replaced.
fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

/// The `Set-Cookie` header that sets `name`.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Whether `text` has `word` as a whole token (not inside an email or a longer name).
fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .any(|w| w == word)
}

// ---- the OpenID Connect flow ----

#[tokio::test]
async fn oidc_sign_in_creates_an_account_that_the_next_sign_in_finds() {
    let alice = IdpUser::new("alice");
    let (keyway, idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let browser = Browser::new();

    // The authorization request: code flow with PKCE (S256) and a nonce, back to Keyway's callback,
    // the flow bound to this browser by a cookie scripts cannot read.
    let res = browser.connect(&keyway, "test", None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let cookie = set_cookie(&res, "keyway_sso").expect("a keyway_sso cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/api"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let authorize = location(&res);
    assert_eq!(
        &authorize[..Position::AfterPath],
        idp.url("/auth"),
        "{authorize}"
    );
    let q = query(&authorize);
    assert_eq!(q["response_type"], "code", "{authorize}");
    assert_eq!(q["client_id"], CLIENT_ID, "{authorize}");
    assert_eq!(q["redirect_uri"], keyway.url("/api/connect/test/callback"));
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for scope in ["openid", "email", "profile"] {
        assert!(
            scopes.contains(&scope),
            "scope {scope} missing: {authorize}"
        );
    }
    assert_eq!(q["code_challenge_method"], "S256", "{authorize}");
    assert_eq!(
        q["code_challenge"].len(),
        43,
        "base64url SHA-256: {authorize}"
    );
    assert!(q["state"].len() >= 16, "an unguessable state: {authorize}");
    assert!(q["nonce"].len() >= 16, "an unguessable nonce: {authorize}");

    let callback = browser
        .through_provider(&keyway, authorize, AtProvider::SignIn(&alice))
        .await;
    let front = browser.back_at_keyway(&callback).await;
    let code = keyway.code(&front, "test");
    let first = session(&keyway, browser.exchange(&keyway, "test", &code).await).await;
    let user = &first["user"];
    assert_eq!(user["provider"], "test", "{first}");
    assert_eq!(user["email"], alice.email, "{first}");
    assert!(first["refreshToken"].is_string(), "{first}");
    let res = keyway.server.me(first["jwt"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], user["id"], "{me}");

    // The same identity from another browser (so through the IdP's login form again) is the same account.
    let again = Browser::new()
        .sign_in_ok(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    assert_eq!(again["user"]["id"], user["id"], "{again}");
    // And from the first browser, where the IdP remembers the login and asks nothing.
    let third = browser
        .sign_in_ok(&keyway, "test", AtProvider::Approve)
        .await;
    assert_eq!(third["user"]["id"], user["id"], "{third}");
    assert_eq!(keyway.user_count().await, 1);

    let shown = keyway
        .cli_ok(&["show", user["username"].as_str().unwrap()])
        .await;
    assert!(has_word(&shown, "test"), "no provider in:\n{shown}");
    assert!(has_word(&shown, &alice.sub), "no subject in:\n{shown}");
}

#[tokio::test]
async fn the_refresh_cookie_header_moves_the_sso_refresh_token_into_a_cookie() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let browser = Browser::new();
    let front = browser
        .through(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let code = keyway.code(&front, "test");
    let res = browser
        .exchange_request(&keyway, "test", &code)
        .header("x-strapi-refresh-cookie", "httpOnly")
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&res, "strapi_up_refresh").expect("the refresh cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let body = session(&keyway, res).await;
    assert!(body.get("refreshToken").is_none(), "{body}");
}

#[tokio::test]
async fn a_tampered_state_is_refused_and_the_genuine_one_still_works() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let browser = Browser::new();
    let callback = browser
        .to_callback(&keyway, "test", AtProvider::SignIn(&alice))
        .await;

    let state = query(&callback)["state"].clone();
    let mut forged = state.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let front = browser
        .back_at_keyway(&with_param(&callback, "state", &forged))
        .await;
    assert_eq!(keyway.refusal(&front, "test"), own(STATE_GONE));
    assert_eq!(keyway.user_count().await, 0);

    // The refusal was the state's doing: the untouched callback goes through.
    let front = browser.back_at_keyway(&callback).await;
    keyway.code(&front, "test");
}

#[tokio::test]
async fn a_sign_in_started_on_one_node_finishes_on_another() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let (other, _other_dir) = keyway.another_node().await;
    let browser = Browser::new();
    let mut callback = browser
        .to_callback(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    // The load balancer sends the provider's redirect to the other node (cookies ignore the port).
    callback.set_port(Some(other.addr.port())).unwrap();
    let front = browser.back_at_keyway(&callback).await;
    // Back to the front end at the public URL, with a code the first node honours.
    let code = keyway.code(&front, "test");
    let body = session(&keyway, browser.exchange(&keyway, "test", &code).await).await;
    assert_eq!(body["user"]["provider"], "test", "{body}");
}

#[tokio::test]
async fn a_replayed_provider_callback_is_refused() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let browser = Browser::new();
    let callback = browser
        .to_callback(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let front = browser.back_at_keyway(&callback).await;
    keyway.code(&front, "test");

    let front = browser.back_at_keyway(&callback).await;
    assert_eq!(keyway.refusal(&front, "test"), own(STATE_GONE));
}

#[tokio::test]
async fn a_provider_callback_opened_in_another_browser_is_refused() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let victim = Browser::new();
    let callback = victim
        .to_callback(&keyway, "test", AtProvider::SignIn(&alice))
        .await;

    // Login CSRF: a callback URL made in one browser, planted in another that has its own flow.
    let other = Browser::new();
    other.start(&keyway, "test", None).await;
    let front = other.back_at_keyway(&callback).await;
    assert_eq!(
        keyway.refusal(&front, "test"),
        own((
            "invalid_state",
            "The sign-in was started in another browser"
        ))
    );
    assert_eq!(keyway.user_count().await, 0);
}

#[tokio::test]
async fn an_authorization_code_reused_in_a_second_flow_is_refused() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let browser = Browser::new();
    let first = browser
        .to_callback(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let front = browser.back_at_keyway(&first).await;
    keyway.code(&front, "test");

    // A new flow's state with the first flow's (spent) authorization code.
    let second = browser.start(&keyway, "test", None).await;
    let state = query(&second)["state"].clone();
    let replay = with_param(&first, "state", &state);
    let front = browser.back_at_keyway(&replay).await;
    // The state is genuine: the provider is the one that refuses the spent code.
    assert_eq!(
        keyway.refusal(&front, "test"),
        own((
            "oauth_error",
            "The sign-in provider did not accept the sign-in"
        ))
    );
}

#[tokio::test]
async fn the_one_time_code_works_once_and_only_in_the_browser_that_signed_in() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let browser = Browser::new();
    let front = browser
        .through(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let stolen = keyway.code(&front, "test");

    // Another browser with a sign-in of its own (so a keyway_sso cookie, just not this one).
    let other = Browser::new();
    other.start(&keyway, "test", None).await;
    let res = other.exchange(&keyway, "test", &stolen).await;
    assert_error(res, 400, "ApplicationError", NO_SESSION).await;
    // A client without any cookie.
    let res = Browser::new().exchange(&keyway, "test", &stolen).await;
    assert_error(res, 400, "ApplicationError", NO_SESSION).await;
    // A code that was never issued, and none at all.
    let res = browser.exchange(&keyway, "test", "never-issued").await;
    assert_error(res, 400, "ApplicationError", NO_SESSION).await;
    let res = browser.get(&keyway.url("/api/auth/test/callback")).await;
    assert_error(res, 400, "ApplicationError", NO_SESSION).await;

    let front = browser
        .through(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let code = keyway.code(&front, "test");
    session(&keyway, browser.exchange(&keyway, "test", &code).await).await;
    let res = browser.exchange(&keyway, "test", &code).await;
    assert_error(res, 400, "ApplicationError", NO_SESSION).await;
}

#[tokio::test]
async fn the_callback_must_be_the_hosted_page_or_on_the_allow_list() {
    const ALLOWED: &str = "http://127.0.0.1:9/app/sso-done";
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| {
        s.env("KEYWAY_SSO_CALLBACK_ALLOWLIST", ALLOWED)
    })
    .await;
    let browser = Browser::new();

    for foreign in [
        "https://evil.example/app/sso-done",
        "http://127.0.0.1:10/app/sso-done",
        "http://127.0.0.1:9/app/other",
    ] {
        let res = browser.connect(&keyway, "test", Some(foreign)).await;
        let error =
            assert_error(res, 400, "ValidationError", "Invalid callback URL provided").await;
        assert_eq!(error["details"]["callback"], foreign, "{error}");
    }

    let hosted = keyway.hosted_callback("test");
    browser.start(&keyway, "test", Some(&hosted)).await;

    let authorize = browser.start(&keyway, "test", Some(ALLOWED)).await;
    let callback = browser
        .through_provider(&keyway, authorize, AtProvider::SignIn(&alice))
        .await;
    let front = browser.back_at_keyway(&callback).await;
    let code = keyway.code_at(&front, ALLOWED);
    session(&keyway, browser.exchange(&keyway, "test", &code).await).await;
}

#[tokio::test]
async fn an_unknown_provider_is_disabled() {
    // Discovery is lazy, so a provider whose issuer is down does not stop Keyway from starting.
    let keyway = Setup::new()
        .oidc("test", "http://127.0.0.1:9")
        .start()
        .await;
    let res = Browser::new().connect(&keyway, "nope", None).await;
    assert_error(res, 400, "ApplicationError", "This provider is disabled").await;
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_sends_the_browser_back_with_an_error() {
    let keyway = Setup::new()
        .oidc("test", "http://127.0.0.1:9")
        .start()
        .await;
    let res = Browser::new().connect(&keyway, "test", None).await;
    assert_eq!(res.status(), 302);
    let front = location(&res);
    assert_eq!(
        keyway.refusal(&front, "test"),
        own(("oauth_error", "The sign-in provider could not be reached"))
    );
}

/// Strapi's own test (auth-oauth-callback.test.api.js): the front-end leg without a completed
/// provider session is refused with this message, whatever the provider, configured or not.
#[tokio::test]
async fn the_front_end_leg_without_a_provider_session_is_refused_as_in_strapi() {
    let keyway = Setup::new()
        .oidc("test", "http://127.0.0.1:9")
        .start()
        .await;
    for provider in ["cognito", "google", "test"] {
        let res = Browser::new()
            .client
            .get(keyway.url(&format!("/api/auth/{provider}/callback")))
            .send()
            .await
            .expect("request sent");
        let message = "OAuth authentication requires a completed provider session";
        assert_error(res, 400, "ApplicationError", message).await;
    }
}

#[tokio::test]
async fn cancelling_at_the_provider_comes_back_as_its_oauth_error() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let front = Browser::new()
        .through(&keyway, "test", AtProvider::Cancel)
        .await;
    assert_eq!(keyway.error(&front, "test"), "access_denied");
    assert_eq!(keyway.user_count().await, 0);
}

#[tokio::test]
async fn id_tokens_that_break_a_rule_are_refused() {
    let setup = Setup::new();
    let rogue = Peer::rogue(&[setup.redirect_uri("rogue")]).await;
    let keyway = setup.oidc("rogue", &rogue.origin).start().await;
    let mallory = IdpUser::new("mallory");
    rogue.set_user(&mallory).await;

    for fault in [
        "wrong-key",
        "expired",
        "wrong-nonce",
        "wrong-aud",
        "wrong-iss",
    ] {
        rogue.set_fault(fault).await;
        let front = Browser::new()
            .through(&keyway, "rogue", AtProvider::Approve)
            .await;
        match outcome(&front, &keyway.hosted_callback("rogue")) {
            Ok(code) => {
                let res = Browser::new().exchange(&keyway, "rogue", &code).await;
                panic!(
                    "an id_token with fault {fault} was accepted (code {code}, exchange {})\n\
                     --- rogue stderr ---\n{}",
                    res.status(),
                    rogue.stderr()
                );
            }
            // Refused by the id_token check itself, not by anything before it (the exchange).
            Err(refusal) => assert_eq!(
                refusal,
                own((
                    "oauth_error",
                    "The sign-in provider's answer could not be verified"
                )),
                "fault {fault}"
            ),
        }
    }
    assert_eq!(keyway.user_count().await, 0);

    // The same provider without a fault is accepted: the refusals above were the tokens' doing.
    rogue.set_fault("none").await;
    let body = Browser::new()
        .sign_in_ok(&keyway, "rogue", AtProvider::Approve)
        .await;
    assert_eq!(body["user"]["provider"], "rogue", "{body}");
    assert_eq!(body["user"]["email"], mallory.email, "{body}");
}

// ---- lifetimes, in process on the test clock ----

/// README: the state is single use and lives 10 minutes; the one-time code the front end exchanges
/// lives 2 (src/auth/sso.rs).
const STATE_TTL: Duration = Duration::from_secs(10 * 60);
const CODE_TTL: Duration = Duration::from_secs(2 * 60);
const MS: Duration = Duration::from_millis(1);

/// Keyway in this process, so its clock can be moved, with the GitHub stand-in as `github`. Its
/// listener is bound first on port 0 and kept: the stand-in learns the redirect URI from it.
async fn github_in_process(user: &GitHubUser) -> (TestApp, Peer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let github = Peer::github(&format!("{origin}/api/connect/github/callback"), user).await;
    let app = TestApp::spawn_listening(listener, |c| {
        c.sso.public_url = origin.clone();
        c.sso.providers = vec![ProviderSettings {
            name: "github".into(),
            display_name: "GitHub".into(),
            protocol: Protocol::GitHub {
                auth_url: github.url("/login/oauth/authorize"),
                token_url: github.url("/login/oauth/access_token"),
                api_url: github.origin.clone(),
            },
            client_id: GITHUB_CLIENT_ID.into(),
            client_secret: Some(SecretString::from(GITHUB_CLIENT_SECRET)),
            scopes: vec!["read:user".into(), "user:email".into()],
            callback: Url::parse(&format!("{origin}/connect/github/redirect")).unwrap(),
        }];
    })
    .await;
    app.clock.freeze();
    (app, github)
}

/// Each sign-in leg used a millisecond before its lifetime ends works; at its end it is refused
/// with what the browser (the state) or the front end (the code) is told.
#[tokio::test]
async fn the_state_and_the_one_time_code_work_until_their_last_millisecond() {
    let octo = GitHubUser::new("octo", 583_231, true);
    let (app, _github) = github_in_process(&octo).await;
    let hosted = app.url("/connect/github/redirect");
    // Three sign-ins through the provider, started at the same frozen instant.
    let (a, b, late) = (Browser::new(), Browser::new(), Browser::new());
    let mut callbacks = Vec::new();
    for browser in [&a, &b, &late] {
        callbacks.push(
            browser
                .to_callback(&app, "github", AtProvider::Approve)
                .await,
        );
    }

    app.clock.advance(STATE_TTL - MS);
    let code = |front: &Url| outcome(front, &hosted).expect("a code");
    let code_a = code(&a.back_at_keyway(&callbacks[0]).await);
    let code_b = code(&b.back_at_keyway(&callbacks[1]).await);
    app.clock.advance(MS);
    let front = late.back_at_keyway(&callbacks[2]).await;
    assert_eq!(outcome(&front, &hosted), Err(own(STATE_GONE)));

    // Both codes were issued a millisecond before the state's end, which is now.
    app.clock.advance(CODE_TTL - 2 * MS);
    let res = a.exchange(&app, "github", &code_a).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["provider"], "github", "{body}");
    app.clock.advance(MS);
    let res = b.exchange(&app, "github", &code_b).await;
    assert_error(res, 400, "ApplicationError", NO_SESSION).await;
}

// ---- accounts ----

#[tokio::test]
async fn with_registration_off_a_new_identity_gets_no_account() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| {
        s.env("KEYWAY_ALLOW_REGISTER", "false")
    })
    .await;
    let res = Browser::new()
        .sign_in(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let message = "Register action is actually not available.";
    assert_error(res, 400, "ApplicationError", message).await;
    assert_eq!(keyway.user_count().await, 0);
}

#[tokio::test]
async fn an_email_of_a_local_account_is_taken_when_linking_is_off() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    keyway
        .add_local_user("alice_local", &alice.email, "alice-local-pw")
        .await;

    let res = Browser::new()
        .sign_in(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    assert_error(res, 400, "ApplicationError", "Email is already taken.").await;
    assert_eq!(keyway.user_count().await, 1);
    keyway
        .server
        .login_ok("alice_local", "alice-local-pw")
        .await;
}

#[tokio::test]
async fn linking_joins_a_verified_email_to_the_local_account() {
    let alice = IdpUser::new("alice");
    // With confirmation on, the local account's "confirmed" says its address was proven here too.
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| {
        s.env("KEYWAY_SSO_LINK_VERIFIED_EMAIL", "true")
            .env("KEYWAY_EMAIL_CONFIRMATION", "true")
    })
    .await;
    keyway
        .add_local_user("alice_local", &alice.email, "alice-local-pw")
        .await;
    let local = keyway
        .server
        .login_ok("alice_local", "alice-local-pw")
        .await;

    let linked = Browser::new()
        .sign_in_ok(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    assert_eq!(linked["user"]["id"], local["user"]["id"], "{linked}");
    assert_eq!(linked["user"]["provider"], "local", "{linked}");
    assert_eq!(keyway.user_count().await, 1);
    // The password still works, and the identity is now the account's.
    keyway
        .server
        .login_ok("alice_local", "alice-local-pw")
        .await;
    let shown = keyway.cli_ok(&["show", "alice_local"]).await;
    assert!(has_word(&shown, &alice.sub), "no subject in:\n{shown}");
}

#[tokio::test]
async fn linking_refuses_an_email_the_provider_has_not_verified() {
    let setup = Setup::new()
        .env("KEYWAY_SSO_LINK_VERIFIED_EMAIL", "true")
        .env("KEYWAY_EMAIL_CONFIRMATION", "true");
    let rogue = Peer::rogue(&[setup.redirect_uri("rogue")]).await;
    let keyway = setup.oidc("rogue", &rogue.origin).start().await;
    let alice = IdpUser::new("alice");
    rogue.set_user(&alice).await;
    keyway
        .add_local_user("alice_local", &alice.email, "alice-local-pw")
        .await;

    rogue.set_fault("unverified-email").await;
    let res = Browser::new()
        .sign_in(&keyway, "rogue", AtProvider::Approve)
        .await;
    assert_error(res, 400, "ApplicationError", "Email was not available.").await;
    assert_eq!(keyway.user_count().await, 1);

    // The same identity with the email verified is linked: the refusal was the verification's doing.
    rogue.set_fault("none").await;
    let linked = Browser::new()
        .sign_in_ok(&keyway, "rogue", AtProvider::Approve)
        .await;
    assert_eq!(linked["user"]["username"], "alice_local", "{linked}");
}

/// The attack: someone signs in at a provider that does not verify addresses (or with an address
/// the provider marks unverified) as the victim's email. Keyway made a confirmed account from it, so
/// the address was squatted and the account would be the attacker's whenever the victim used it.
#[tokio::test]
async fn an_unverified_email_makes_no_account() {
    let eve = IdpUser {
        email_verified: false,
        ..IdpUser::new("eve")
    };
    let (keyway, _idp) = with_idp(std::slice::from_ref(&eve), |s| s).await;
    let res = Browser::new()
        .sign_in(&keyway, "test", AtProvider::SignIn(&eve))
        .await;
    assert_error(res, 400, "ApplicationError", "Email was not available.").await;
    assert_eq!(keyway.user_count().await, 0);
}

/// The attack (pre-hijack): a squatter registers a local account with the victim's address, which
/// nobody proves. When the victim later signs in with single sign-on and linking is on, Keyway linked
/// the identity to the squatter's account and marked it confirmed: victim and squatter shared one
/// account, and the squatter's password kept working. Now the link is refused, with confirmation on
/// (the account stays unconfirmed) and off (where every account counts as "confirmed").
#[tokio::test]
async fn linking_refuses_an_account_whose_address_was_never_proven() {
    for confirmation in ["true", "false"] {
        let alice = IdpUser::new("alice");
        let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| {
            s.env("KEYWAY_SSO_LINK_VERIFIED_EMAIL", "true")
                .env("KEYWAY_EMAIL_CONFIRMATION", confirmation)
        })
        .await;
        let squatter = keyway
            .server
            .post(
                "/api/auth/local/register",
                serde_json::json!({
                    "username": "squatter",
                    "email": alice.email,
                    "password": "squatter-secret-pw",
                }),
            )
            .await;
        assert_eq!(
            squatter.status(),
            StatusCode::OK,
            "confirmation {confirmation}"
        );

        let res = Browser::new()
            .sign_in(&keyway, "test", AtProvider::SignIn(&alice))
            .await;
        assert_error(res, 400, "ApplicationError", "Email is already taken.").await;
        assert_eq!(keyway.user_count().await, 1);
        let shown = keyway.cli_ok(&["show", "squatter"]).await;
        assert!(
            !has_word(&shown, &alice.sub),
            "confirmation {confirmation}: the identity was linked:\n{shown}"
        );
        let login = keyway.server.login("squatter", "squatter-secret-pw").await;
        if confirmation == "true" {
            // Still unconfirmed: the sign-in did not vouch for the squatter's address.
            let msg = "Your account email is not confirmed";
            assert_error(login, 400, "ApplicationError", msg).await;
        } else {
            assert_eq!(login.status(), StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn a_blocked_account_cannot_sign_in_with_sso() {
    let alice = IdpUser::new("alice");
    let (keyway, _idp) = with_idp(std::slice::from_ref(&alice), |s| s).await;
    let body = Browser::new()
        .sign_in_ok(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    keyway
        .cli_ok(&["block", body["user"]["username"].as_str().unwrap()])
        .await;

    let res = Browser::new()
        .sign_in(&keyway, "test", AtProvider::SignIn(&alice))
        .await;
    let blocked = "Your account has been blocked by an administrator";
    assert_error(res, 400, "ApplicationError", blocked).await;
}

// ---- GitHub ----

#[tokio::test]
async fn github_sign_in_takes_the_verified_primary_email() {
    let setup = Setup::new();
    let octo = GitHubUser::new("octo", 583_231, true);
    let github = Peer::github(&setup.redirect_uri("github"), &octo).await;
    let keyway = setup.github(&github).start().await;
    let browser = Browser::new();

    let authorize = browser.start(&keyway, "github", None).await;
    assert_eq!(
        &authorize[..Position::AfterPath],
        github.url("/login/oauth/authorize")
    );
    let q = query(&authorize);
    assert_eq!(q["client_id"], GITHUB_CLIENT_ID, "{authorize}");
    assert_eq!(
        q["redirect_uri"],
        keyway.url("/api/connect/github/callback")
    );
    let scopes: Vec<&str> = q["scope"].split([' ', ',']).collect();
    assert!(scopes.contains(&"user:email"), "{authorize}");
    assert_eq!(q["code_challenge_method"], "S256", "{authorize}");

    let callback = browser
        .through_provider(&keyway, authorize, AtProvider::Approve)
        .await;
    let front = browser.back_at_keyway(&callback).await;
    let code = keyway.code(&front, "github");
    let body = session(&keyway, browser.exchange(&keyway, "github", &code).await).await;
    assert_eq!(body["user"]["provider"], "github", "{body}");
    assert_eq!(body["user"]["email"], octo.emails[0].email, "{body}");
    let res = keyway.server.me(body["jwt"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);

    let shown = keyway
        .cli_ok(&["show", body["user"]["username"].as_str().unwrap()])
        .await;
    assert!(has_word(&shown, "github"), "no provider in:\n{shown}");
    assert!(has_word(&shown, "583231"), "no subject in:\n{shown}");
}

#[tokio::test]
async fn github_user_without_a_verified_email_is_refused() {
    let setup = Setup::new();
    let octo = GitHubUser::new("octo", 583_231, false);
    let github = Peer::github(&setup.redirect_uri("github"), &octo).await;
    let keyway = setup.github(&github).start().await;

    let res = Browser::new()
        .sign_in(&keyway, "github", AtProvider::Approve)
        .await;
    assert_error(res, 400, "ApplicationError", "Email was not available.").await;
    assert_eq!(keyway.user_count().await, 0);
}
