//! The password policy for new passwords — register, change-password, reset-password (API and hosted
//! form); never login: a minimum length, the embedded list of common breached passwords, the account's
//! own username or email, and the optional online range check, here against a loopback stand-in that
//! answers in the Pwned Passwords range format (the public API is not reachable from tests).

use crate::helpers::*;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use keyway::auth::policy::{BreachCheckSettings, MSG_BREACHED, MSG_LIKE_IDENTITY, MSG_TOO_COMMON};
use keyway::auth::sessions::hash_token;
use keyway::store::{Code, CodePurpose, NewCode};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// On the embedded list (rank ~800 of zxcvbn's list).
const COMMON: &str = "password123";

async fn register(app: &TestApp, username: &str, email: &str, password: &str) -> Response {
    app.post(
        "/api/auth/local/register",
        json!({ "username": username, "email": email, "password": password }),
    )
    .await
}

async fn change_password(app: &TestApp, name: &str, new: &str) -> Response {
    let jwt = app.token_for(name).await;
    app.client
        .post(app.url("/api/auth/change-password"))
        .bearer_auth(jwt)
        .json(&json!({
            "currentPassword": password_of(name),
            "password": new,
            "passwordConfirmation": new,
        }))
        .send()
        .await
        .unwrap()
}

async fn reset(app: &TestApp, code: &str, new: &str) -> Response {
    app.post(
        "/api/auth/reset-password",
        json!({ "code": code, "password": new, "passwordConfirmation": new }),
    )
    .await
}

/// A reset code for `name`, stored as the forgot-password mail would have (no SMTP needed here).
pub(crate) async fn reset_code(app: &TestApp, name: &str) -> String {
    let user = app.user(name).await;
    let code = format!("reset-code-for-{name}-0123456789abcdef");
    let hash = hash_token(&code);
    let now = app.auth.now_millis();
    let new = NewCode {
        code: Code::new(&hash, CodePurpose::ResetPassword),
        user_id: user.id,
        created_at: now,
        expires_at: now + 3_600_000,
    };
    app.auth.store().create_code(&new).await.unwrap();
    code
}

/// The validation envelope with exactly one error, on `password`, never echoing the value.
async fn assert_password_refused(res: Response, message: &str) {
    let err = assert_error(res, 400, "ValidationError", message).await;
    assert_eq!(
        err["details"]["errors"],
        json!([{ "path": ["password"], "message": message, "name": "ValidationError" }]),
    );
}

// ---- the offline rules ----

#[tokio::test]
async fn a_common_password_is_refused_at_register_whatever_its_case() {
    let app = TestApp::spawn().await;
    for p in [COMMON, "Password123", "PASSWORD123"] {
        assert_password_refused(
            register(&app, "newcomer", "newcomer@example.com", p).await,
            MSG_TOO_COMMON,
        )
        .await;
    }
    let res = register(&app, "newcomer", "newcomer@example.com", "lilac-teapot-42").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_default_minimum_is_8_characters_of_any_kind() {
    let app = TestApp::spawn().await;
    assert_password_refused(
        register(&app, "shorty", "shorty@example.com", "q7#vLp2").await,
        "password must be at least 8 characters",
    )
    .await;
    // No composition rules: lower-case letters alone, or non-Latin script, are fine when long enough.
    for (i, p) in ["zebrafinchmarmalade", "żółwiożółw", "日本語のパスワード"]
        .into_iter()
        .enumerate()
    {
        let res = register(&app, &format!("user{i}"), &format!("u{i}@example.com"), p).await;
        assert_eq!(res.status(), StatusCode::OK, "{p}");
    }
}

#[tokio::test]
async fn the_username_or_email_as_password_is_refused() {
    let app = TestApp::spawn().await;
    for p in [
        "margaret_smith",
        "Margaret_Smith",
        "Maggie.S@example.com",
        "maggie.s",
    ] {
        assert_password_refused(
            register(&app, "margaret_smith", "Maggie.S@example.com", p).await,
            MSG_LIKE_IDENTITY,
        )
        .await;
    }
}

#[tokio::test]
async fn policy_errors_come_with_the_other_field_errors() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        register(&app, "ok_name", "not-an-email", COMMON).await,
        400,
        "ValidationError",
        "2 errors occurred",
    )
    .await;
    assert_eq!(err["details"]["errors"][0]["path"], json!(["email"]));
    assert_eq!(err["details"]["errors"][1]["path"], json!(["password"]));
    assert_eq!(err["details"]["errors"][1]["message"], MSG_TOO_COMMON);
    assert!(err["details"]["errors"][1].get("value").is_none());
}

#[tokio::test]
async fn change_password_applies_the_policy_and_keeps_the_old_password() {
    let app = TestApp::spawn().await.with_user("carol").await;
    assert_password_refused(change_password(&app, "carol", COMMON).await, MSG_TOO_COMMON).await;
    assert_password_refused(
        change_password(&app, "carol", "carol@example.com").await,
        MSG_LIKE_IDENTITY,
    )
    .await;
    assert_password_refused(
        change_password(&app, "carol", "short").await,
        "password must be at least 8 characters",
    )
    .await;
    // Nothing changed: the old password still works.
    assert_eq!(
        app.login("carol", &password_of("carol")).await.status(),
        StatusCode::OK
    );
    let res = change_password(&app, "carol", "carols-brand-new-phrase").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn reset_password_applies_the_policy_and_the_code_survives_a_refusal() {
    let app = TestApp::spawn().await.with_user("rosa").await;
    let code = reset_code(&app, "rosa").await;
    assert_password_refused(reset(&app, &code, COMMON).await, MSG_TOO_COMMON).await;
    // The account's own name is known only from the code: the core checks it.
    assert_password_refused(
        reset(&app, &code, "ROSA@example.com").await,
        MSG_LIKE_IDENTITY,
    )
    .await;
    assert_password_refused(
        reset(&app, &code, "Rosa").await,
        "password must be at least 8 characters",
    )
    .await;
    // A refused password did not use the code up.
    let res = reset(&app, &code, "rosas-second-try-ok").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.login("rosa", "rosas-second-try-ok").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_hosted_reset_form_explains_the_policy() {
    let app = TestApp::spawn().await.with_user("hana").await;
    let code = reset_code(&app, "hana").await;
    let submit = |password: &'static str| {
        let app = &app;
        let code = code.clone();
        async move {
            let form = serde_urlencoded::to_string([
                ("code", code.as_str()),
                ("password", password),
                ("passwordConfirmation", password),
            ])
            .unwrap();
            app.client
                .post(app.url("/reset-password"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap()
        }
    };
    let res = submit(COMMON).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("Password is too common"));
    let res = submit("hana@example.com").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Password must not be the same as the username or email.")
    );
    let res = submit("hanas-garden-gate").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_is_not_subject_to_the_policy() {
    // An account whose password predates the policy keeps working.
    let app = TestApp::spawn().await.with_user("olga").await;
    let user = app.user("olga").await;
    let hash = app
        .auth
        .hasher()
        .hash(SecretString::from(COMMON))
        .await
        .unwrap();
    app.auth
        .store()
        .set_password_hash(user.id, &hash, app.auth.now_millis())
        .await
        .unwrap();
    assert_eq!(app.login("olga", COMMON).await.status(), StatusCode::OK);
}

// ---- the online range check, against a loopback stand-in ----

/// A stand-in for the Pwned Passwords range API: `GET /range/{5 hex}` answers `SUFFIX:COUNT` lines
/// (CRLF, upper-case hex) for the listed passwords under that prefix, padded with zero-count lines as
/// the real API does with `Add-Padding: true`. It records what it was asked.
struct RangeApi {
    addr: SocketAddr,
    seen: Requests,
}

/// Each request the stand-in answered: the path, and the `Add-Padding` header if any.
type Requests = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Clone)]
struct RangeState {
    listed: Arc<Vec<String>>,
    padded: Arc<Vec<String>>,
    seen: Requests,
}

fn sha1_hex(p: &str) -> String {
    hex::encode_upper(Sha1::digest(p.as_bytes()))
}

async fn range(
    State(state): State<RangeState>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
) -> String {
    let padding = headers
        .get("add-padding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.seen.lock().unwrap().push((prefix.clone(), padding));
    let mut lines = Vec::new();
    for (hashes, count) in [(&state.listed, 3730471), (&state.padded, 0)] {
        for hash in hashes.iter().filter(|h| h.starts_with(&prefix)) {
            lines.push(format!("{}:{count}", &hash[5..]));
        }
    }
    // Other suffixes under the prefix, as a real answer has hundreds.
    lines.push("0018A45C4D1DEF81644B54AB7F969B88D65:1".into());
    lines.push("00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2".into());
    lines.join("\r\n")
}

impl RangeApi {
    /// Lists `listed`; `padded` appear with a count of 0 (padding), which must not count.
    async fn start(listed: &[&str], padded: &[&str]) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = RangeState {
            listed: Arc::new(listed.iter().map(|p| sha1_hex(p)).collect()),
            padded: Arc::new(padded.iter().map(|p| sha1_hex(p)).collect()),
            seen: seen.clone(),
        };
        let router = axum::Router::new()
            .route("/range/{prefix}", axum::routing::get(range))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/range", self.addr)
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn app_checking(range_url: String, timeout: Duration) -> TestApp {
    TestApp::spawn_with(move |c| {
        c.auth.pwned_check = Some(BreachCheckSettings { range_url, timeout });
    })
    .await
}

/// Long and not on the embedded list, so only the online check can refuse them.
const LISTED: &str = "correct-horse-battery-staple";
const UNLISTED: &str = "mauve-kettle-umbrella-1987";

#[tokio::test]
async fn a_password_the_range_api_lists_is_refused() {
    let api = RangeApi::start(&[LISTED], &[]).await;
    let app = app_checking(api.url(), Duration::from_secs(5))
        .await
        .with_user("bea")
        .await;
    // Creating bea's account checked her password too.
    assert_eq!(api.seen().len(), 1);
    api.seen.lock().unwrap().clear();
    assert_password_refused(
        register(&app, "newbie", "newbie@example.com", LISTED).await,
        MSG_BREACHED,
    )
    .await;
    // k-anonymity: only the first 5 hex digits of the SHA-1 left the server, with padding asked for.
    let hash = sha1_hex(LISTED);
    assert_eq!(api.seen(), [(hash[..5].to_owned(), Some("true".into()))]);
    // The same check guards change and reset.
    assert_password_refused(change_password(&app, "bea", LISTED).await, MSG_BREACHED).await;
    let code = reset_code(&app, "bea").await;
    assert_password_refused(reset(&app, &code, LISTED).await, MSG_BREACHED).await;
    assert_eq!(api.seen().len(), 3);
}

#[tokio::test]
async fn a_password_the_range_api_does_not_list_is_accepted() {
    // The unlisted password's suffix is in the answer as padding (count 0): still not listed.
    let api = RangeApi::start(&[LISTED], &[UNLISTED]).await;
    let app = app_checking(api.url(), Duration::from_secs(5)).await;
    let res = register(&app, "newbie", "newbie@example.com", UNLISTED).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.seen().len(), 1, "the range API was asked");
    // Offline rules speak first: a common password never reaches the network.
    assert_password_refused(
        register(&app, "other", "other@example.com", COMMON).await,
        MSG_TOO_COMMON,
    )
    .await;
    assert_eq!(api.seen().len(), 1);
}

#[tokio::test]
async fn a_range_api_that_is_down_fails_open() {
    // Connections are refused.
    let (_held, port) = refused_port();
    let app = app_checking(
        format!("http://127.0.0.1:{port}/range"),
        Duration::from_secs(5),
    )
    .await;
    let res = register(&app, "newbie", "newbie@example.com", LISTED).await;
    assert_eq!(res.status(), StatusCode::OK, "accepted without the check");
}

#[tokio::test]
async fn a_range_api_that_never_answers_fails_open_after_the_timeout() {
    // Accepts connections and reads, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = app_checking(format!("http://{addr}/range"), Duration::from_millis(300)).await;
    let started = Instant::now();
    let res = register(&app, "newbie", "newbie@example.com", LISTED).await;
    assert_eq!(res.status(), StatusCode::OK, "accepted without the check");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout bounded the wait: {:?}",
        started.elapsed()
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "newbie");
    hold.abort();
}
