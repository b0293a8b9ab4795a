//! The `keyway` binary end to end: start-up, shutdown, configuration precedence and the `user` admin
//! commands. Every test runs the compiled binary in its own temporary working directory with an empty
//! environment, so no KEYWAY_* variable from the developer's shell leaks in, and the default
//! `sqlite://keyway.db` lands in that directory.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::helpers::{assert_error, assert_invalid_login, jwt_header};

const DEMO_USER: &str = "appsmith_user";
const DEMO_PASSWORD: &str = "appsmith_password";
const DEMO_EMAIL: &str = "appsmith_user@example.com";

/// Bound on every wait for the binary (start-up, exit, an admin command): generous enough for a
/// loaded two-core machine, short enough that a hang fails the test instead of stalling the suite.
const WAIT: Duration = Duration::from_secs(10);

/// `keyway` in `dir` with nothing but the built-in defaults: no environment at all.
pub fn bare_keyway(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
    cmd.current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        // The guard: whatever happens in the test, dropping the child kills the process.
        .kill_on_drop(true);
    cmd
}

/// `keyway` in `dir` with cheap argon2 settings, so hashing does not dominate the suite, and mail
/// written to the log (there is no SMTP server here; `serve` refuses to start without either).
pub fn keyway(dir: &Path) -> Command {
    let mut cmd = bare_keyway(dir);
    cmd.env("KEYWAY_ARGON2_MEMORY_KIB", "1024")
        .env("KEYWAY_ARGON2_ITERATIONS", "1")
        .env("KEYWAY_MAIL_TO_LOG", "true");
    cmd
}

/// `keyway serve` on a free port, plus `extra` arguments.
pub fn serve(mut cmd: Command, extra: &[&str]) -> Command {
    cmd.args(["serve", "--bind", "127.0.0.1:0"]).args(extra);
    cmd
}

/// Runs a command that is expected to finish (an admin command, or a `serve` that must refuse to
/// start), feeding `stdin` to it.
pub async fn run(mut cmd: Command, stdin: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn keyway");
    let mut input = child.stdin.take().expect("piped stdin");
    // A command that exits before reading (a usage error) closes the pipe: that is not a failure here.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    timeout(WAIT, child.wait_with_output())
        .await
        .expect("keyway finished in time")
        .expect("wait for keyway")
}

/// `keyway user ARGS` in `dir`, with `stdin` as its standard input.
pub async fn user_cmd(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = keyway(dir);
    cmd.arg("user").args(args);
    run(cmd, stdin).await
}

/// Creates an account with the CLI and asserts it worked.
async fn add_user(dir: &Path, username: &str, email: &str, password: &str, extra: &[&str]) {
    let mut args = vec![
        "add",
        "--username",
        username,
        "--email",
        email,
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    let out = user_cmd(dir, &args, &format!("{password}\n")).await;
    assert!(out.status.success(), "user add failed: {}", stderr(&out));
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Usernames in `keyway user list` output (second column of every row between header and footer).
fn listed_usernames(list: &str) -> Vec<String> {
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines.len() >= 2, "unexpected user list output:\n{list}");
    lines[1..lines.len() - 1]
        .iter()
        .map(|row| row.split_whitespace().nth(1).unwrap_or("").to_owned())
        .collect()
}

/// A running `keyway serve`. Its `Child` was spawned with `kill_on_drop`, so a failed assertion
/// anywhere in a test still kills the process.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The database URL as the start line shows it.
    database: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    client: reqwest::Client,
}

impl Server {
    /// Spawns `cmd` and waits for its start line,
    /// `Keyway listening on http://ADDR (database URL)`.
    pub async fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keyway");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (first_tx, first_rx) = oneshot::channel();
        // Both pipes are drained for the whole life of the process: a full pipe would block its logging.
        let readers = vec![
            tokio::spawn(collect(
                child.stdout.take().unwrap(),
                stdout.clone(),
                Some(first_tx),
            )),
            tokio::spawn(collect(child.stderr.take().unwrap(), stderr.clone(), None)),
        ];
        let mut server = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            database: String::new(),
            stdout,
            stderr,
            readers,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        let line = match timeout(WAIT, first_rx).await {
            Ok(Ok(line)) => line,
            _ => {
                let _ = timeout(WAIT, server.child.wait()).await;
                server.drain().await;
                panic!("keyway did not start; stderr:\n{}", server.stderr());
            }
        };
        let rest = line
            .strip_prefix("Keyway listening on http://")
            .unwrap_or_else(|| panic!("unexpected start line: {line}"));
        let (addr, database) = rest
            .strip_suffix(')')
            .and_then(|r| r.split_once(" (database "))
            .unwrap_or_else(|| panic!("unexpected start line: {line}"));
        server.addr = addr.parse().expect("address in the start line");
        server.database = database.to_owned();
        server
    }

    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let req = self.client.post(self.url(path)).json(&body);
        req.send().await.expect("request sent")
    }

    pub async fn login(&self, identifier: &str, password: &str) -> reqwest::Response {
        let body = json!({ "identifier": identifier, "password": password });
        self.post("/api/auth/local", body).await
    }

    /// Logs in, asserts 200, and returns the whole response body.
    pub async fn login_ok(&self, identifier: &str, password: &str) -> Value {
        let res = self.login(identifier, password).await;
        assert_eq!(res.status(), StatusCode::OK, "login as {identifier}");
        let body: Value = res.json().await.expect("JSON body");
        assert!(body["jwt"].is_string(), "no jwt: {body}");
        body
    }

    pub async fn token(&self, identifier: &str, password: &str) -> String {
        let body = self.login_ok(identifier, password).await;
        body["jwt"].as_str().unwrap().to_owned()
    }

    pub async fn me(&self, jwt: &str) -> reqwest::Response {
        let req = self.client.get(self.url("/api/users/me")).bearer_auth(jwt);
        req.send().await.expect("request sent")
    }

    /// Sends `signal` (`TERM`, `INT`) with kill(1) and waits for the process to exit.
    pub async fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().expect("keyway still running");
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        let status = timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("keyway still running {WAIT:?} after SIG{signal}"))
            .expect("wait for keyway");
        self.drain().await;
        status
    }

    /// Stops the server with SIGTERM, asserts a clean exit and returns everything it printed on stdout.
    pub async fn stop(mut self) -> String {
        let status = self.signal_and_wait("TERM").await;
        assert!(status.success(), "exit status {status}: {}", self.stderr());
        self.stdout()
    }

    /// Waits until both pipes hit end of file, so the captured output is complete.
    async fn drain(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = timeout(WAIT, reader).await;
        }
    }
}

/// Appends every line of `stream` to `into`; the first line also goes to `first`.
async fn collect(
    stream: impl AsyncRead + Unpin,
    into: Arc<Mutex<String>>,
    mut first: Option<oneshot::Sender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut buffer = into.lock().unwrap();
        buffer.push_str(&line);
        buffer.push('\n');
        drop(buffer);
        if let Some(tx) = first.take() {
            let _ = tx.send(line);
        }
    }
}

pub fn tempdir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

// ---- serve --demo ----

#[tokio::test]
async fn demo_account_logs_in_and_the_database_defaults_to_keyway_db() {
    let dir = tempdir();
    // No environment at all: the defaults are what is under test (argon2 included).
    let server = Server::start(serve(bare_keyway(dir.path()), &["--demo"])).await;
    assert_eq!(server.database, "sqlite://keyway.db");

    let body = server.login_ok(DEMO_USER, DEMO_PASSWORD).await;
    let user = &body["user"];
    assert_eq!(user["username"], DEMO_USER, "{body}");
    assert_eq!(user["email"], DEMO_EMAIL, "{body}");
    assert_eq!(user["confirmed"], true, "{body}");
    assert_eq!(user["role"]["type"], "authenticated", "{body}");

    let res = server.me(body["jwt"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], user["id"], "{me}");
    assert_eq!(me["username"], DEMO_USER, "{me}");
    assert_eq!(me["email"], DEMO_EMAIL, "{me}");

    let login_url = server.url("/api/auth/local");
    let printed = server.stop().await;
    assert!(
        printed.contains(&format!("curl -s {login_url}")),
        "no curl hint for {login_url}:\n{printed}"
    );
    assert!(
        dir.path().join("keyway.db").is_file(),
        "keyway.db not created"
    );
}

#[tokio::test]
async fn demo_is_idempotent_across_restarts() {
    let dir = tempdir();
    let first = Server::start(serve(keyway(dir.path()), &["--demo"])).await;
    first.stop().await;
    let second = Server::start(serve(keyway(dir.path()), &["--demo"])).await;
    second.login_ok(DEMO_USER, DEMO_PASSWORD).await;

    let list = user_cmd(dir.path(), &["list"], "").await;
    assert!(list.status.success(), "{}", stderr(&list));
    let names = listed_usernames(&stdout(&list));
    assert_eq!(names, [DEMO_USER], "{}", stdout(&list));
    second.stop().await;
}

#[tokio::test]
async fn without_demo_there_is_no_default_account() {
    let dir = tempdir();
    let server = Server::start(serve(keyway(dir.path()), &[])).await;
    let res = server.login(DEMO_USER, DEMO_PASSWORD).await;
    assert_invalid_login(res).await;
    server.stop().await;
}

// ---- shutdown ----

/// Stops a server with `signal` while a client still holds an idle keep-alive connection, which a
/// graceful shutdown must not wait on forever.
async fn assert_clean_stop(signal: &str) {
    let dir = tempdir();
    let mut server = Server::start(serve(keyway(dir.path()), &[])).await;
    let res = server.login("nobody", "whatever").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let status = server.signal_and_wait(signal).await;
    assert_eq!(status.code(), Some(0), "SIG{signal}: {}", server.stderr());
    assert!(
        server.stderr().contains("no SMTP server configured"),
        "serve warns that mail goes to the log: {}",
        server.stderr()
    );
    let printed = server.stdout();
    assert!(
        printed.trim_end().ends_with("Keyway stopped"),
        "SIG{signal}, stdout:\n{printed}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    assert_clean_stop("TERM").await;
}

#[tokio::test]
async fn sigint_stops_the_server_cleanly() {
    assert_clean_stop("INT").await;
}

// ---- signing keys ----

#[tokio::test]
async fn a_short_jwt_secret_stops_start_up() {
    let dir = tempdir();
    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env("KEYWAY_JWT_SECRET", "short");
    let out = run(cmd, "").await;
    assert!(!out.status.success(), "started with a 5-byte secret");
    assert!(stderr(&out).contains("at least 32"), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("Keyway listening"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn a_configured_secret_signs_hs256_otherwise_eddsa() {
    let dir = tempdir();
    let mut cmd = serve(keyway(dir.path()), &["--demo"]);
    cmd.env(
        "KEYWAY_JWT_SECRET",
        "0123456789abcdefghij0123456789abcdefghij",
    );
    let server = Server::start(cmd).await;
    let header = jwt_header(&server.token(DEMO_USER, DEMO_PASSWORD).await);
    assert_eq!(header["alg"], "HS256", "{header}");
    server.stop().await;

    let server = Server::start(serve(keyway(dir.path()), &["--demo"])).await;
    let header = jwt_header(&server.token(DEMO_USER, DEMO_PASSWORD).await);
    assert_eq!(header["alg"], "EdDSA", "{header}");
    let kid = header["kid"].as_str().unwrap_or("");
    assert!(!kid.is_empty(), "no kid: {header}");
    server.stop().await;
}

#[tokio::test]
async fn tokens_survive_a_restart() {
    let dir = tempdir();
    let server = Server::start(serve(keyway(dir.path()), &["--demo"])).await;
    let jwt = server.token(DEMO_USER, DEMO_PASSWORD).await;
    server.stop().await;

    // No secret configured: the Ed25519 key the first server generated must come from the database.
    let server = Server::start(serve(keyway(dir.path()), &[])).await;
    let res = server.me(&jwt).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["username"], DEMO_USER, "{me}");
    server.stop().await;
}

// ---- secrets stay out of output ----

#[tokio::test]
async fn secrets_never_reach_the_start_line_or_the_logs() {
    const PASSWORD: &str = "Quokka-Parsnip-4417-zebra";
    const SECRET: &str = "jwt-secret-Wombat-Turnip-0123456789-abcdef";
    const LOG: &str = "debug,tower_http=trace,sqlx=trace";
    let dir = tempdir();
    migrate(dir.path(), None).await;

    let mut add = keyway(dir.path());
    add.env("KEYWAY_LOG", LOG).args([
        "user",
        "add",
        "--username",
        "carol",
        "--email",
        "carol@example.com",
        "--password-stdin",
        "--confirmed",
    ]);
    let out = run(add, &format!("{PASSWORD}\n")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let add_output = stdout(&out) + &stderr(&out);

    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env("KEYWAY_JWT_SECRET", SECRET).env("KEYWAY_LOG", LOG);
    let mut server = Server::start(cmd).await;
    let jwt = server.token("carol", PASSWORD).await;
    assert_eq!(server.me(&jwt).await.status(), StatusCode::OK);
    // The signature alone: a log that kept only part of the token would still leak it.
    let signature = jwt.rsplit('.').next().unwrap().to_owned();
    assert!(server.signal_and_wait("TERM").await.success());
    let logs = server.stdout() + &server.stderr();

    // Proof that the verbose logging really ran, or the checks below would pass vacuously.
    assert!(logs.contains("/api/users/me"), "no request logs:\n{logs}");
    for (what, text) in [("user add", &add_output), ("serve", &logs)] {
        assert!(!text.contains(PASSWORD), "{what} printed the password");
        assert!(!text.contains(SECRET), "{what} printed the JWT secret");
        assert!(!text.contains("$argon2id$"), "{what} printed a hash");
        assert!(!text.contains(&signature), "{what} printed the token");
    }
}

// ---- user add ----

#[tokio::test]
async fn user_add_creates_accounts_that_can_log_in() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    let out = user_cmd(
        dir.path(),
        &[
            "add",
            "--username",
            "alice",
            "--email",
            "Alice@Example.com",
            "--password-stdin",
            "--confirmed",
        ],
        "alice-secret-pw\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created"), "{}", stdout(&out));
    add_user(
        dir.path(),
        "bob",
        "bob@example.com",
        "bob-secret-pw",
        &["--confirmed", "--role", "public"],
    )
    .await;

    let list = stdout(&user_cmd(dir.path(), &["list"], "").await);
    assert_eq!(listed_usernames(&list), ["alice", "bob"], "{list}");
    assert!(list.contains("alice@example.com"), "{list}");

    let server = Server::start(serve(keyway(dir.path()), &[])).await;
    let alice = server.login_ok("alice", "alice-secret-pw").await;
    assert_eq!(alice["user"]["email"], "alice@example.com", "{alice}");
    assert_eq!(alice["user"]["role"]["type"], "authenticated", "{alice}");
    let bob = server.login_ok("bob", "bob-secret-pw").await;
    assert_eq!(bob["user"]["role"]["type"], "public", "{bob}");
    server.stop().await;
}

#[tokio::test]
async fn user_add_refuses_bad_requests() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    let add = |name: &'static str, flags: &'static [&'static str]| {
        let mut args = vec!["add", "--username", name, "--email", "dup@example.com"];
        args.extend_from_slice(flags);
        args
    };

    // The password may only come from standard input: leaving the flag out is a usage error.
    let out = user_cmd(dir.path(), &add("dave", &[]), "dave-secret-pw\n").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );

    let out = user_cmd(dir.path(), &add("dave", &["--password-stdin"]), "1234567\n").await;
    assert!(!out.status.success(), "a 7-character password was accepted");
    assert!(
        stderr(&out).contains("password must be at least 8 characters"),
        "{}",
        stderr(&out)
    );

    let out = user_cmd(
        dir.path(),
        &add("dave", &["--password-stdin"]),
        "dave-secret-pw\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = user_cmd(
        dir.path(),
        &add("erin", &["--password-stdin"]),
        "erin-secret-pw\n",
    )
    .await;
    assert!(!out.status.success(), "a duplicate email was accepted");
    assert!(
        stderr(&out).contains("Email or Username are already taken"),
        "{}",
        stderr(&out)
    );

    let list = stdout(&user_cmd(dir.path(), &["list"], "").await);
    assert_eq!(listed_usernames(&list), ["dave"], "{list}");
}

// ---- block, unblock, delete ----

#[tokio::test]
async fn block_unblock_and_delete_act_on_a_running_server() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    let password = "alice-secret-pw";
    add_user(
        dir.path(),
        "alice",
        "alice@example.com",
        password,
        &["--confirmed"],
    )
    .await;
    let server = Server::start(serve(keyway(dir.path()), &[])).await;
    let jwt = server.token("alice", password).await;

    // The CLI and the server share the SQLite file. Logins read the database, so they see the block
    // at once; the server's caches learn of it from the invalidation log within its sync interval
    // (half a second), so the old token is given a bounded time to die.
    let out = user_cmd(dir.path(), &["block", "alice"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let res = server.login("alice", password).await;
    let blocked = "Your account has been blocked by an administrator";
    assert_error(res, 400, "ApplicationError", blocked).await;
    let res = until_refused(&server, &jwt).await;
    assert_error(res, 401, "UnauthorizedError", "Invalid credentials").await;

    let out = user_cmd(dir.path(), &["unblock", "alice"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let jwt = server.token("alice", password).await;
    assert_eq!(server.me(&jwt).await.status(), StatusCode::OK);

    let out = user_cmd(dir.path(), &["delete", "alice"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let res = until_refused(&server, &jwt).await;
    assert_error(res, 401, "UnauthorizedError", "Invalid credentials").await;
    let res = server.login("alice", password).await;
    assert_invalid_login(res).await;
    server.stop().await;
}

/// Calls `/api/users/me` until the token is refused, for at most two seconds (four sync intervals).
async fn until_refused(server: &Server, jwt: &str) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let res = server.me(jwt).await;
        if res.status() != StatusCode::OK || tokio::time::Instant::now() > deadline {
            return res;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admin_commands_report_unknown_users() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    for action in ["block", "unblock", "delete"] {
        let out = user_cmd(dir.path(), &[action, "ghost"], "").await;
        assert!(!out.status.success(), "{action} of an unknown user");
        assert!(
            stderr(&out).contains("no user with username, email or id"),
            "{}",
            stderr(&out)
        );
    }
}

// ---- configuration ----

#[tokio::test]
async fn bind_precedence_is_flag_then_environment_then_file() {
    let dir = tempdir();
    // Port 1 is privileged, so normally unusable; when the suite runs as root it can be bound, so the
    // checks below look at the port the server reports rather than only at whether it started.
    std::fs::write(dir.path().join("keyway.toml"), "bind = \"127.0.0.1:1\"\n").unwrap();

    let mut cmd = keyway(dir.path());
    cmd.env("KEYWAY_BIND", "127.0.0.1:0").arg("serve");
    let server = Server::start(cmd).await;
    assert_ne!(
        server.addr.port(),
        1,
        "the file's bind won over KEYWAY_BIND"
    );
    server.stop().await;

    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env("KEYWAY_BIND", "127.0.0.1:1");
    let server = Server::start(cmd).await;
    assert_ne!(server.addr.port(), 1, "KEYWAY_BIND won over --bind");
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_key_in_keyway_toml_is_refused() {
    let dir = tempdir();
    std::fs::write(dir.path().join("keyway.toml"), "alow_register = false\n").unwrap();
    let out = run(serve(keyway(dir.path()), &[]), "").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("alow_register"), "{}", stderr(&out));
}

/// A refused value names its setting and where it came from: the file, the variable or the flag.
#[tokio::test]
async fn a_refused_setting_names_its_source() {
    let dir = tempdir();
    std::fs::write(dir.path().join("keyway.toml"), "rate_limit_max = 0\n").unwrap();
    let refused = |cmd: Command, said: &'static str| async move {
        let out = run(cmd, "").await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
    };
    refused(
        serve(keyway(dir.path()), &[]),
        "rate_limit_max (from keyway.toml)",
    )
    .await;
    // The flag mends the file's value; the variable's is refused next.
    let mut cmd = serve(keyway(dir.path()), &["--rate-limit-max", "5"]);
    cmd.env("KEYWAY_JWT_TTL", "soon");
    refused(cmd, "jwt_ttl (from KEYWAY_JWT_TTL)").await;
    let cmd = serve(
        keyway(dir.path()),
        &["--rate-limit-max", "5", "--idle-timeout", "0"],
    );
    refused(cmd, "idle_timeout (from --idle-timeout)").await;
}

#[tokio::test]
async fn allow_register_false_in_keyway_toml_disables_register() {
    let dir = tempdir();
    std::fs::write(dir.path().join("keyway.toml"), "allow_register = false\n").unwrap();
    let server = Server::start(serve(keyway(dir.path()), &[])).await;
    let body = json!({ "username": "frank", "email": "frank@example.com", "password": "frank-pw" });
    let res = server.post("/api/auth/local/register", body).await;
    let disabled = "Register action is currently disabled";
    assert_error(res, 400, "ApplicationError", disabled).await;
    server.stop().await;
}

#[tokio::test]
async fn database_url_chooses_the_database_file() {
    let dir = tempdir();
    let other = dir.path().join("other.db");
    let url = format!("sqlite://{}", other.display());
    let server = Server::start(serve(keyway(dir.path()), &["--database-url", &url])).await;
    assert_eq!(server.database, url);
    server.stop().await;
    assert!(other.is_file(), "{} not created", other.display());

    // A bare path is taken as a SQLite file.
    let bare = dir.path().join("bare.db");
    let bare = bare.to_str().unwrap();
    let server = Server::start(serve(keyway(dir.path()), &["--database-url", bare])).await;
    assert_eq!(server.database, bare);
    server.stop().await;
    assert!(Path::new(bare).is_file(), "{bare} not created");
    assert!(
        !dir.path().join("keyway.db").exists(),
        "the default database was created too"
    );
}

#[tokio::test]
async fn user_add_applies_the_password_policy() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    let add = |name: &'static str| {
        vec![
            "add",
            "--username",
            name,
            "--email",
            "gwen@example.com",
            "--password-stdin",
        ]
    };
    for (password, message) in [
        (
            "password123\n",
            "password is too common: choose one that is not on lists of breached passwords",
        ),
        (
            "gwendolyn\n",
            "password must not be the same as the username or email",
        ),
        (
            "GWEN@example.com\n",
            "password must not be the same as the username or email",
        ),
    ] {
        let out = user_cmd(dir.path(), &add("gwendolyn"), password).await;
        assert!(!out.status.success(), "{password:?} was accepted");
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
    let out = user_cmd(dir.path(), &add("gwendolyn"), "gwens-quiet-harbour\n").await;
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---- migrate ----

/// What `keyway migrate` should report for a fresh database of `engine`: one line per file in
/// `migrations/<engine>/` (`0001_init.sql` → `applied 0001 init`), so new migrations need no edit here.
fn expected_migrations(engine: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut lines: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| {
            let stem = name.strip_suffix(".sql")?;
            let (version, description) = stem.split_once('_')?;
            Some(format!(
                "applied {version} {}",
                description.replace('_', " ")
            ))
        })
        .collect();
    lines.sort();
    assert!(!lines.is_empty(), "no migrations in {}", dir.display());
    lines
}

/// `keyway [--database-url URL] migrate`, which must finish (it never serves) and succeed.
async fn migrate(dir: &Path, url: Option<&str>) -> String {
    let mut cmd = keyway(dir);
    if let Some(url) = url {
        cmd.args(["--database-url", url]);
    }
    cmd.arg("migrate");
    let out = run(cmd, "").await;
    assert!(out.status.success(), "keyway migrate: {}", stderr(&out));
    stdout(&out)
}

async fn assert_migrates_once(dir: &Path, url: Option<&str>, engine: &str, shown: &str) {
    let first = migrate(dir, url).await;
    let expected = expected_migrations(engine);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[..lines.len() - 1], expected, "{first}");
    assert_eq!(
        lines[lines.len() - 1],
        format!("{} migration(s) applied to {shown}", expected.len())
    );
    let second = migrate(dir, url).await;
    assert_eq!(
        second.trim(),
        format!("database {shown} is up to date: nothing to apply")
    );

    // The schema is in place: the admin commands work on it, and there is nobody yet.
    let mut list = keyway(dir);
    if let Some(url) = url {
        list.args(["--database-url", url]);
    }
    list.args(["user", "list"]);
    let out = run(list, "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("0 user(s)\n"), "{}", stdout(&out));
}

#[tokio::test]
async fn migrate_applies_the_sqlite_schema_once_without_serving() {
    let dir = tempdir();
    assert_migrates_once(dir.path(), None, "sqlite", "sqlite://keyway.db").await;
    assert!(dir.path().join("keyway.db").is_file(), "keyway.db created");
}

#[tokio::test]
async fn migrate_applies_the_postgres_schema_once_and_serve_uses_it() {
    let dir = tempdir();
    let db = crate::testdb::PgDatabase::create().await;
    let url = db.url_str();
    assert_migrates_once(dir.path(), Some(url), "postgres", url).await;

    add_user(
        dir.path(),
        "alice",
        "alice@example.com",
        "alice-secret-pw",
        &["--database-url", url],
    )
    .await;
    let server = Server::start(serve(keyway(dir.path()), &["--database-url", url])).await;
    assert_eq!(server.database, url);
    server.login_ok("alice", "alice-secret-pw").await;
    server.stop().await;
    assert!(
        !dir.path().join("keyway.db").exists(),
        "no SQLite file on the side"
    );
}

// ---- failing fast ----

/// The wrong-directory mistake: `keyway user list` where there is no database used to create an
/// empty `keyway.db` there and answer `0 user(s)`, as if every account were gone. Every command but
/// `serve` and `migrate` must stop, name the file it looked for, and leave nothing behind.
#[tokio::test]
async fn admin_commands_on_a_missing_database_fail_without_creating_it() {
    let dir = tempdir();
    let commands: [&[&str]; 4] = [
        &["user", "list"],
        &["user", "show", "alice"],
        &["audit"],
        &["role", "list"],
    ];
    for args in commands {
        let mut cmd = keyway(dir.path());
        cmd.args(args);
        let out = run(cmd, "").await;
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            stdout(&out)
        );
        assert!(err.contains("keyway.db"), "{args:?} names no file: {err}");
        assert!(
            !dir.path().join("keyway.db").exists(),
            "{args:?} created keyway.db"
        );
    }
    // A path in a directory that does not exist: the message names it too.
    let mut cmd = keyway(dir.path());
    cmd.args([
        "--database-url",
        "sqlite://nowhere/at/all.db",
        "user",
        "list",
    ]);
    let out = run(cmd, "").await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nowhere/at/all.db"),
        "{}",
        stderr(&out)
    );
}

/// A `[rate_limit_routes]` key that names no limited route (here the Strapi v3 path, which Keyway
/// does not limit under that name) used to be accepted and ignored, leaving the route at the default
/// the operator meant to change. Start-up must stop, naming the key and the routes that exist.
#[tokio::test]
async fn an_unknown_rate_limit_route_stops_start_up() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("keyway.toml"),
        "[rate_limit_routes]\n\"/api/auth/login\" = { max = 100, window = \"60s\" }\n",
    )
    .unwrap();
    let out = run(serve(keyway(dir.path()), &[]), "").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("/api/auth/login"), "{err}");
    assert!(
        err.contains("/api/auth/local"),
        "the valid routes are listed: {err}"
    );

    // A real route is still accepted.
    std::fs::write(
        dir.path().join("keyway.toml"),
        "[rate_limit_routes]\n\"/api/auth/local\" = { max = 100, window = \"60s\" }\n",
    )
    .unwrap();
    let server = Server::start(serve(keyway(dir.path()), &[])).await;
    drop(server);
}

/// An unreachable PostgreSQL used to be 30 s of silence (sqlx's pool retrying a refused connection
/// until its acquire timeout, then reporting only the timeout). The first connection must fail
/// within seconds, with the cause and the (redacted) URL it tried.
#[tokio::test]
async fn an_unreachable_postgres_fails_fast_with_the_cause() {
    let dir = tempdir();
    let url = "postgres://keyway:s3cret@127.0.0.1:1/keyway";
    for args in [&["migrate"][..], &["user", "list"][..]] {
        let mut cmd = keyway(dir.path());
        cmd.args(["--database-url", url]).args(args);
        let started = std::time::Instant::now();
        // `run` allows 10 s; a refused connection must be reported well within sqlx's 30 s.
        let out = run(cmd, "").await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.to_lowercase().contains("refused"), "{args:?}: {err}");
        assert!(
            err.contains("127.0.0.1:1"),
            "{args:?} names the server: {err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
}

/// `user show` and `audit --user` used to take only a username: an operator holding an email (a
/// support request) or an id (a token's `sub`, a log line) could not look the account up.
#[tokio::test]
async fn user_show_and_audit_find_accounts_by_username_email_or_id() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    add_user(
        dir.path(),
        "alice",
        "Alice@Example.com",
        "alice-long-password",
        &[],
    )
    .await;
    add_user(
        dir.path(),
        "bob",
        "bob@example.com",
        "bob-long-password",
        &[],
    )
    .await;
    let id = user_id(dir.path(), "alice").await;
    for who in [
        "alice",
        "alice@example.com",
        "ALICE@example.com",
        id.as_str(),
    ] {
        let out = user_cmd(dir.path(), &["show", who], "").await;
        assert!(out.status.success(), "show {who}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("username:   alice"),
            "show {who}: {}",
            stdout(&out)
        );
    }
    // Blocking leaves an event on alice's trail, found by each name.
    let out = user_cmd(dir.path(), &["block", "alice@example.com"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    for who in ["alice", "alice@example.com", id.as_str()] {
        let trail = audit(dir.path(), who).await;
        assert!(
            trail.contains("user_blocked"),
            "audit --user {who}: {trail}"
        );
        assert!(trail.contains("1 event(s)"), "only alice's: {trail}");
    }
}

/// `audit --user alice` failed once alice was deleted, though her events remain: the trail of a
/// deleted account is exactly what an investigation needs. Her id still finds it.
#[tokio::test]
async fn audit_finds_a_deleted_accounts_events_by_its_id() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    add_user(
        dir.path(),
        "alice",
        "alice@example.com",
        "alice-long-password",
        &[],
    )
    .await;
    let id = user_id(dir.path(), "alice").await;
    let out = user_cmd(dir.path(), &["block", "alice"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = user_cmd(dir.path(), &["delete", "alice"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));

    let trail = audit(dir.path(), &id).await;
    assert!(trail.contains("user_blocked"), "{trail}");
    assert!(trail.contains("user_deleted"), "{trail}");
    // Her name no longer names anyone (it may be a new account's by now): the refusal says how to
    // find her events.
    let mut cmd = keyway(dir.path());
    cmd.args(["audit", "--user", "alice"]);
    let out = run(cmd, "").await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("by its id"), "{}", stderr(&out));
}

/// The id `user show` prints for an account.
async fn user_id(dir: &Path, who: &str) -> String {
    let out = user_cmd(dir, &["show", who], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().to_owned())
        .expect("an id line")
}

/// `keyway audit --user WHO`, which must succeed; its output.
async fn audit(dir: &Path, who: &str) -> String {
    let mut cmd = keyway(dir);
    cmd.args(["audit", "--user", who]);
    let out = run(cmd, "").await;
    assert!(out.status.success(), "audit --user {who}: {}", stderr(&out));
    stdout(&out)
}

// ---- roles ----

/// `keyway role …` on the database `url` (the working directory's keyway.db when `None`).
async fn role_cmd(dir: &Path, url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = keyway(dir);
    if let Some(url) = url {
        cmd.args(["--database-url", url]);
    }
    cmd.arg("role").args(args);
    run(cmd, "").await
}

/// Roles could not be created at all outside the Strapi import (`user add --role admin` said `No
/// role named 'admin'`). The whole life of a role through the CLI, on `url`'s engine: types unique,
/// the built-in and default roles kept, a role in use kept, accounts moved with `user update`.
async fn roles_through_the_cli(dir: &Path, url: Option<&str>) {
    let ok = |out: &Output, what: &str| {
        assert!(out.status.success(), "{what}: {}", stderr(out));
        stdout(out)
    };
    let refused = |out: &Output, what: &str, says: &str| {
        assert!(!out.status.success(), "{what} succeeded: {}", stdout(out));
        assert!(stderr(out).contains(says), "{what}: {}", stderr(out));
    };
    let with_url = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = url
            .map(|u| vec!["--database-url".to_owned(), u.to_owned()])
            .unwrap_or_default();
        v.extend(args.iter().map(|a| a.to_string()));
        v
    };
    let user = |args: &[&str], stdin: &'static str| {
        let args = with_url(args);
        async move {
            let mut cmd = keyway(dir);
            cmd.args(&args[..]);
            run(cmd, stdin).await
        }
    };

    ok(
        &role_cmd(dir, url, &["add", "Admin"]).await,
        "role add Admin",
    );
    refused(
        &role_cmd(dir, url, &["add", "Admins", "--type", "admin"]).await,
        "same type",
        "type 'admin'",
    );
    refused(
        &role_cmd(dir, url, &["add", "admin"]).await,
        "same name",
        "already",
    );
    let list = ok(&role_cmd(dir, url, &["list"]).await, "role list");
    assert!(
        list.contains("Admin") && list.contains("3 role(s)"),
        "{list}"
    );

    let out = user(
        &[
            "user",
            "add",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--password-stdin",
            "--role",
            "admin",
        ],
        "root-long-password\n",
    )
    .await;
    ok(&out, "user add --role admin");
    refused(
        &role_cmd(dir, url, &["remove", "admin"]).await,
        "remove in use",
        "1 account(s)",
    );
    ok(
        &role_cmd(dir, url, &["rename", "admin", "Administrators"]).await,
        "rename",
    );
    let shown = ok(&user(&["user", "show", "root"], "").await, "show");
    assert!(shown.contains("role:       Administrators"), "{shown}");

    ok(
        &user(&["user", "update", "root", "--role", "authenticated"], "").await,
        "update --role",
    );
    refused(
        &user(&["user", "update", "root", "--role", "ghost"], "").await,
        "unknown role",
        "no role named 'ghost'",
    );
    ok(
        &role_cmd(dir, url, &["remove", "Administrators"]).await,
        "remove unused",
    );
    refused(
        &role_cmd(dir, url, &["remove", "public"]).await,
        "remove public",
        "built-in",
    );
    refused(
        &role_cmd(dir, url, &["remove", "authenticated"]).await,
        "remove authenticated",
        "built-in",
    );
    let list = ok(&role_cmd(dir, url, &["list"]).await, "role list");
    assert!(list.contains("2 role(s)"), "{list}");
}

#[tokio::test]
async fn roles_are_managed_from_the_cli_on_sqlite() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    roles_through_the_cli(dir.path(), None).await;
}

#[tokio::test]
async fn roles_are_managed_from_the_cli_on_postgres() {
    let db = crate::testdb::PgDatabase::create().await;
    let dir = tempdir();
    migrate(dir.path(), Some(db.url_str())).await;
    roles_through_the_cli(dir.path(), Some(db.url_str())).await;
}

// ---- doctor ----

/// `keyway doctor` on a deployment that can serve: every line ok or warn, exit 0.
#[tokio::test]
async fn doctor_passes_a_healthy_setup() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    let mut cmd = keyway(dir.path());
    cmd.arg("doctor");
    let out = run(cmd, "").await;
    let said = stdout(&out);
    assert!(out.status.success(), "{said}{}", stderr(&out));
    for check in [
        "database",
        "signing keys",
        "mail",
        "public_url",
        "proxies",
        "cors",
    ] {
        assert!(
            said.lines().any(|l| l.contains(check)),
            "no {check} line: {said}"
        );
    }
    assert!(!said.contains("fail"), "{said}");
}

/// Relay clients get a far larger route-limit allowance than anyone else, so the check-up names them
/// (and says so when rate limits are off and the setting does nothing); without any, no line.
#[tokio::test]
async fn doctor_names_the_relay_clients() {
    let dir = tempdir();
    migrate(dir.path(), None).await;
    let mut cmd = keyway(dir.path());
    cmd.arg("doctor");
    let out = run(cmd, "").await;
    assert!(!stdout(&out).contains("relay clients"), "{}", stdout(&out));

    let mut cmd = keyway(dir.path());
    cmd.args(["doctor", "--relay-clients", "::ffff:172.18.0.5,10.1.0.0/16"]);
    let out = run(cmd, "").await;
    let said = stdout(&out);
    assert!(out.status.success(), "{said}{}", stderr(&out));
    let line = said
        .lines()
        .find(|l| l.contains("relay clients"))
        .unwrap_or_else(|| panic!("no relay clients line: {said}"));
    assert!(line.contains("172.18.0.5/32, 10.1.0.0/16"), "{line}");
    assert!(line.contains("at most 600"), "{line}");

    let mut cmd = keyway(dir.path());
    cmd.args([
        "doctor",
        "--relay-clients",
        "10.1.0.0/16",
        "--rate-limit",
        "false",
    ]);
    let said = stdout(&run(cmd, "").await);
    assert!(said.contains("rate limits are off"), "{said}");
}

/// On a broken setup (no database where configured, no mail, a public_url on another port than the
/// bind) each problem gets its line and the exit status says it failed, before anything serves.
#[tokio::test]
async fn doctor_reports_a_broken_setup() {
    let dir = tempdir();
    let mut cmd = bare_keyway(dir.path());
    cmd.args([
        "--database-url",
        "sqlite://missing.db",
        "doctor",
        "--bind",
        "0.0.0.0:9000",
        "--public-url",
        "http://127.0.0.1:8080",
    ]);
    let out = run(cmd, "").await;
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}{}", stderr(&out));
    let line = |check: &str| {
        said.lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check} line: {said}"))
            .to_owned()
    };
    assert!(
        line("database").starts_with("fail") && line("database").contains("missing.db"),
        "{said}"
    );
    assert!(line("mail").starts_with("fail"), "{said}");
    assert!(line("public_url").starts_with("warn"), "{said}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "doctor created the database"
    );
}

// ---- help ----

/// Every serve flag used to be global, so each subcommand's `--help` ran to over 300 lines with its
/// own options (`--username`) buried among them. A command's help shows its own options plus the
/// configuration file and database ones; `serve` keeps every setting.
#[tokio::test]
async fn each_commands_help_shows_its_own_options_and_the_database_ones() {
    let dir = tempdir();
    let help = |args: &'static [&'static str]| {
        let mut cmd = bare_keyway(dir.path());
        cmd.args(args).arg("--help");
        async move {
            let out = run(cmd, "").await;
            assert!(out.status.success(), "{args:?} --help: {}", stderr(&out));
            stdout(&out)
        }
    };
    let add = help(&["user", "add"]).await;
    for own in [
        "--username",
        "--email",
        "--password-stdin",
        "--role",
        "--config",
        "--database-url",
    ] {
        assert!(add.contains(own), "user add --help lacks {own}:\n{add}");
    }
    for serve_only in ["--bind", "--jwt-ttl", "--smtp-url-file", "--rate-limit-max"] {
        assert!(
            !add.contains(serve_only),
            "user add --help shows {serve_only}"
        );
    }
    assert!(
        add.lines().count() < 100,
        "{} lines:\n{add}",
        add.lines().count()
    );
    let serve = help(&["serve"]).await;
    for flag in [
        "--bind",
        "--jwt-ttl",
        "--rate-limit-max",
        "--database-url",
        "--demo",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}");
    }
}

/// Reset links pointed at `127.0.0.1:8080` when Keyway listened elsewhere, with no warning. `serve`
/// now warns when `public_url` cannot be the address it listens on and no proxy is configured to
/// explain the difference; behind a trusted proxy the public address is the proxy's, so it is quiet.
#[tokio::test]
async fn serve_warns_when_public_url_misses_its_listener() {
    let dir = tempdir();
    let mut server = Server::start(serve(
        keyway(dir.path()),
        &["--public-url", "http://127.0.0.1:1"],
    ))
    .await;
    server.signal_and_wait("TERM").await;
    let log = server.stderr();
    assert!(log.contains("public_url http://127.0.0.1:1"), "{log}");

    let mut server = Server::start(serve(
        keyway(dir.path()),
        &[
            "--public-url",
            "https://auth.example.com",
            "--trusted-proxies",
            "127.0.0.1",
        ],
    ))
    .await;
    server.signal_and_wait("TERM").await;
    let log = server.stderr();
    assert!(!log.contains("public_url"), "{log}");
}
