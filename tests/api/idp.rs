//! The identity providers the SSO tests sign in with, as real processes: `e2e/sso/idp.mjs` (panva's
//! certified oidc-provider), `e2e/sso/rogue-idp.mjs` (a provider that breaks one id_token rule on
//! demand) and `e2e/sso/github-standin.mjs` (GitHub's OAuth endpoints, which tests cannot reach).
//!
//! Each runs under `node` from the PATH with the packages `npm ci --prefix e2e` installs, announces
//! itself with one stdout line `… listening on http://127.0.0.1:PORT`, and is killed when dropped.
//! A provider must know Keyway's redirect_uri before Keyway starts, so tests take Keyway's port from
//! [`reserve_port`] first.

use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// Start-up of a peer includes generating RSA keys: generous for a loaded two-core machine.
const START: Duration = Duration::from_secs(20);

/// The client Keyway is registered as at the OIDC providers.
pub const CLIENT_ID: &str = "keyway-test-client";
pub const CLIENT_SECRET: &str = "keyway-test-client-secret";
/// The OAuth app Keyway is registered as at the GitHub stand-in.
pub const GITHUB_CLIENT_ID: &str = "keyway-github-client";
pub const GITHUB_CLIENT_SECRET: &str = "keyway-github-client-secret";

/// Environment variables the peers fall back on; cleared so a developer's shell cannot change them.
const PEER_ENV: &[&str] = &[
    "IDP_PORT",
    "IDP_CLIENT_ID",
    "IDP_CLIENT_SECRET",
    "IDP_REDIRECT_URIS",
    "IDP_TOKEN_AUTH_METHOD",
    "IDP_USERS",
    "GITHUB_PORT",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "GITHUB_REDIRECT_URIS",
    "GITHUB_USER",
];

/// A free port on 127.0.0.1 for Keyway. Bound and released, so another process could take it before
/// Keyway binds it; Keyway then fails to start and the test says so, which is rare enough on a test
/// machine to accept for a port the provider has to know in advance.
pub fn reserve_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// A user of the OIDC providers (`idp.mjs`, and the claims of `rogue-idp.mjs`).
#[derive(Debug, Clone, Serialize)]
pub struct IdpUser {
    pub sub: String,
    pub login: String,
    pub password: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

impl IdpUser {
    /// `login` with subject `<login>-sub`, password `<login>-idp-pw`, verified email `<login>@example.org`.
    pub fn new(login: &str) -> Self {
        Self {
            sub: format!("{login}-sub"),
            login: login.to_owned(),
            password: format!("{login}-idp-pw"),
            email: format!("{login}@example.org"),
            email_verified: true,
            name: format!("{login} from the IdP"),
        }
    }

    /// The claims `rogue-idp.mjs` takes on `POST /_user`.
    pub fn claims(&self) -> Value {
        json!({
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "preferred_username": self.login,
            "name": self.name,
        })
    }
}

/// A GitHub account as the stand-in serves it on `/user` and `/user/emails`.
#[derive(Debug, Clone, Serialize)]
pub struct GitHubUser {
    pub login: String,
    pub id: u64,
    pub name: String,
    pub emails: Vec<GitHubEmail>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GitHubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
    pub visibility: Option<String>,
}

impl GitHubUser {
    /// `login` with one email, `<login>@example.net`, primary and private (so `/user` shows no email
    /// and the address is only found through `/user/emails`).
    pub fn new(login: &str, id: u64, verified: bool) -> Self {
        Self {
            login: login.to_owned(),
            id,
            name: format!("{login} from GitHub"),
            emails: vec![GitHubEmail {
                email: format!("{login}@example.net"),
                primary: true,
                verified,
                visibility: None,
            }],
        }
    }
}

/// One of the `e2e/sso` peers, running. Killed on drop.
pub struct Peer {
    _child: Child,
    /// `http://127.0.0.1:PORT`: the issuer of the OIDC providers, every URL of the GitHub stand-in.
    pub origin: String,
    stderr: Arc<Mutex<String>>,
    client: reqwest::Client,
}

impl Peer {
    /// The real OpenID Connect provider, with Keyway's client allowed to come back to `redirect_uris`.
    pub async fn idp(redirect_uris: &[String], users: &[IdpUser]) -> Self {
        let mut args = client_args(CLIENT_ID, CLIENT_SECRET, redirect_uris);
        for user in users {
            args.push("--user".into());
            args.push(serde_json::to_string(user).unwrap());
        }
        Self::start("idp.mjs", &args).await
    }

    /// The fault-injecting provider; its fault starts as `none`.
    pub async fn rogue(redirect_uris: &[String]) -> Self {
        Self::start(
            "rogue-idp.mjs",
            &client_args(CLIENT_ID, CLIENT_SECRET, redirect_uris),
        )
        .await
    }

    /// The GitHub stand-in, signed in as `user`.
    pub async fn github(redirect_uri: &str, user: &GitHubUser) -> Self {
        let mut args = client_args(
            GITHUB_CLIENT_ID,
            GITHUB_CLIENT_SECRET,
            &[redirect_uri.to_owned()],
        );
        args.push("--user".into());
        args.push(serde_json::to_string(user).unwrap());
        Self::start("github-standin.mjs", &args).await
    }

    async fn start(script: &str, args: &[String]) -> Self {
        let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
        assert!(
            e2e.join("node_modules/oidc-provider").is_dir()
                && e2e.join("node_modules/jose").is_dir(),
            "{} lacks the SSO peers' packages: run `npm ci --prefix e2e` (scripts/test.sh does)",
            e2e.join("node_modules").display()
        );
        let path: PathBuf = e2e.join("sso").join(script);
        let mut cmd = Command::new("node");
        cmd.arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in PEER_ENV {
            cmd.env_remove(name);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run `node {}` ({e}): Node.js 20+ must be on the PATH",
                path.display()
            )
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        tokio::spawn(drain(child.stderr.take().unwrap(), stderr.clone()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = timeout(START, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            _ => {
                let _ = child.start_kill();
                let _ = timeout(START, child.wait()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "{script} did not say where it listens within {START:?}; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let origin = line
            .split_once(" listening on ")
            .map(|(_, origin)| origin.trim().to_owned())
            .unwrap_or_else(|| panic!("unexpected first line from {script}: {line}"));
        // The rest of stdout is drained too: a full pipe would block the peer.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            origin,
            stderr,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// What the peer logged, for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// rogue-idp.mjs only: the rule the next id_tokens break (`none`, `wrong-key`, `expired`,
    /// `wrong-nonce`, `wrong-aud`, `wrong-iss`, `unverified-email`).
    pub async fn set_fault(&self, fault: &str) {
        self.control("/_fault", json!({ "fault": fault })).await;
    }

    /// rogue-idp.mjs only: the user the next tokens are issued for.
    pub async fn set_user(&self, user: &IdpUser) {
        self.control("/_user", user.claims()).await;
    }

    async fn control(&self, path: &str, body: Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(
            res.status().is_success(),
            "POST {path} {body}: {}",
            res.status()
        );
    }
}

fn client_args(id: &str, secret: &str, redirect_uris: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["--port", "0", "--client-id", id, "--client-secret", secret]
        .map(String::from)
        .into();
    for uri in redirect_uris {
        args.push("--redirect-uri".into());
        args.push(uri.clone());
    }
    args
}

/// Keeps the last 16 KiB of `stream` in `into`.
async fn drain(stream: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut buffer = into.lock().unwrap();
        buffer.push_str(&line);
        buffer.push('\n');
        if buffer.len() > 16 * 1024 {
            let cut = buffer.len() - 16 * 1024;
            let cut = (cut..buffer.len())
                .find(|&i| buffer.is_char_boundary(i))
                .unwrap_or(0);
            buffer.drain(..cut);
        }
    }
}
