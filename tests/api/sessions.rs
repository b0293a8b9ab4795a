//! Sessions that can be ended: Strapi 5's refresh, logout and session calls (the contract's tests §5 B,
//! C and the change-password half of G, adapted to Keyway, where refresh mode is always on), plus
//! rotation with reuse detection and session lifetimes.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const MAC_CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const COOKIE_MODE: (&str, &str) = ("x-strapi-refresh-cookie", "httpOnly");

/// `{jwt, refreshToken}` of a fresh login.
async fn login_pair(app: &TestApp, name: &str) -> (String, String) {
    let body: Value = app
        .login(name, &password_of(name))
        .await
        .json()
        .await
        .unwrap();
    (
        body["jwt"].as_str().unwrap().to_owned(),
        body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/api/auth/refresh", json!({ "refreshToken": token }))
        .await
}

async fn refreshed_pair(app: &TestApp, token: &str) -> (String, String) {
    let res = refresh(app, token).await;
    assert_eq!(res.status(), StatusCode::OK, "refresh should succeed");
    let body: Value = res.json().await.unwrap();
    (
        body["jwt"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

async fn assert_refresh_refused(app: &TestApp, token: &str) {
    assert_error(
        refresh(app, token).await,
        401,
        "UnauthorizedError",
        "Invalid refresh token",
    )
    .await;
}

const INVALID_TOKEN: &str = "Missing or invalid credentials";

async fn assert_token_dead(app: &TestApp, jwt: &str) {
    assert_error(app.me(jwt).await, 401, "UnauthorizedError", INVALID_TOKEN).await;
    let res = app
        .client
        .get(app.url("/api/auth/verify"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "UnauthorizedError", INVALID_TOKEN).await;
}

async fn post_auth(app: &TestApp, path: &str, jwt: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The value of the refresh cookie in a `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("strapi_up_refresh=")
        .expect("the refresh cookie")
        .to_owned()
}

// ---- §5 B: tokens and cookie delivery ----

#[tokio::test]
async fn login_returns_a_refresh_token_in_the_body_and_no_cookie() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let res = app.login("alice", "alice-password").await;
    assert!(set_cookie(&res).is_none());
    let body: Value = res.json().await.unwrap();
    assert!(body["jwt"].is_string());
    let refresh = body["refreshToken"].as_str().unwrap();
    assert!(refresh.len() >= 43, "≥256 bits of randomness: {refresh}");
    assert_eq!(refresh.split('.').count(), 1, "opaque, not a JWT");
}

#[tokio::test]
async fn the_cookie_header_moves_the_refresh_token_into_an_httponly_cookie() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/local"))
        .header(COOKIE_MODE.0, COOKIE_MODE.1)
        .json(&json!({"identifier": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&res).expect("Set-Cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain-http development on 127.0.0.1: {cookie}"
    );
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refreshToken").is_none(), "{body}");
    assert!(body["jwt"].is_string());
}

#[tokio::test]
async fn cookie_mode_by_configuration_and_cookie_based_refresh() {
    let app = TestApp::spawn_with(|c| c.cookie.always = true)
        .await
        .with_user("alice")
        .await;
    let res = app.login("alice", "alice-password").await;
    let cookie = set_cookie(&res).expect("always a cookie");
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refreshToken").is_none());

    // The cookie alone, with an empty body, refreshes (Strapi issue #24669).
    let res = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", cookie.split(';').next().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rotated = set_cookie(&res).expect("a rotated cookie");
    assert_ne!(cookie_value(&rotated), cookie_value(&cookie));
    let body: Value = res.json().await.unwrap();
    assert!(body["jwt"].is_string());
    assert!(body.get("refreshToken").is_none());
}

#[tokio::test]
async fn register_returns_a_refresh_token_in_the_body_even_in_cookie_mode() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/api/auth/local/register"))
        .header(COOKIE_MODE.0, COOKIE_MODE.1)
        .json(&json!({"username": "newbie", "email": "newbie@example.com", "password": "newbie-pass"}))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&res).is_none());
    let body: Value = res.json().await.unwrap();
    let refresh = body["refreshToken"].as_str().unwrap();
    assert_eq!(refresh_status(&app, refresh).await, 200);
}

async fn refresh_status(app: &TestApp, token: &str) -> u16 {
    refresh(app, token).await.status().as_u16()
}

#[tokio::test]
async fn without_refresh_tokens_login_returns_only_the_jwt() {
    let app = TestApp::spawn_with(|c| c.sessions.refresh_tokens = false)
        .await
        .with_user("alice")
        .await;
    let body: Value = app
        .login("alice", "alice-password")
        .await
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["jwt", "user"], "Strapi's legacy shape");
}

// ---- §5 B: refresh ----

#[tokio::test]
async fn refresh_without_a_token_is_400() {
    let app = TestApp::spawn().await;
    for body in [
        json!({}),
        json!({"refreshToken": ""}),
        json!({"refreshToken": 42}),
    ] {
        assert_error(
            app.post("/api/auth/refresh", body).await,
            400,
            "BadRequestError",
            "Missing refresh token",
        )
        .await;
    }
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let app = TestApp::spawn().await;
    assert_refresh_refused(&app, "not-a-refresh-token").await;
}

#[tokio::test]
async fn refresh_rotates_and_returns_a_working_jwt() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, first) = login_pair(&app, "alice").await;
    let (new_jwt, second) = refreshed_pair(&app, &first).await;
    assert_ne!(first, second, "rotated");
    assert_eq!(app.me(&new_jwt).await.status(), StatusCode::OK);
    assert_eq!(app.me(&jwt).await.status(), StatusCode::OK, "same session");
    assert_eq!(
        jwt_payload(&new_jwt)["sid"],
        jwt_payload(&jwt)["sid"],
        "a refresh continues the session"
    );
    let (_, third) = refreshed_pair(&app, &second).await;
    assert_ne!(third, second);
}

#[tokio::test]
async fn refresh_with_the_cookie_header_answers_with_a_cookie() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (_, token) = login_pair(&app, "alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header(COOKIE_MODE.0, COOKIE_MODE.1)
        .json(&json!({ "refreshToken": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookie(&res).unwrap().starts_with("strapi_up_refresh="));
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refreshToken").is_none());
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (_, first) = login_pair(&app, "alice").await;
    let (_, second) = refreshed_pair(&app, &first).await;
    let db = app.db().await;
    let hashes: Vec<String> = with_db!(db, |db| {
        sqlx::query_scalar("SELECT hash FROM refresh_tokens")
            .fetch_all(db)
            .await
            .unwrap()
    });
    assert_eq!(hashes.len(), 2);
    for token in [&first, &second] {
        assert!(!hashes.contains(token), "plain token stored");
        assert!(hashes.contains(&keyway::auth::sessions::hash_token(token)));
    }
    // Nothing else in the database holds a token either.
    let dump: Vec<String> = with_db!(db, |db| {
        sqlx::query_scalar(
            "SELECT COALESCE(device_id,'') || COALESCE(user_agent,'') || id FROM sessions",
        )
        .fetch_all(db)
        .await
        .unwrap()
    });
    assert!(
        dump.iter()
            .all(|row| !row.contains(&first) && !row.contains(&second))
    );
}

// ---- rotation and reuse detection ----

/// The documented defaults (README): each lifetime test stands one millisecond either side of these
/// on a frozen clock, so a lifetime changed by any amount fails one side.
const GRACE: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(14 * 86_400);
const ABSOLUTE: Duration = Duration::from_secs(30 * 86_400);
const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn a_replay_inside_the_grace_window_gets_the_same_successor() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.clock.freeze();
    let (_, first) = login_pair(&app, "alice").await;
    let (_, from_tab_a) = refreshed_pair(&app, &first).await;
    // The last moment of the window.
    app.clock.advance(GRACE);
    let (jwt_b, from_tab_b) = refreshed_pair(&app, &first).await;
    assert_eq!(from_tab_a, from_tab_b, "two tabs, one successor");
    assert_eq!(app.me(&jwt_b).await.status(), StatusCode::OK);
    let (_, next) = refreshed_pair(&app, &from_tab_a).await;
    assert_ne!(next, from_tab_a, "the family goes on");
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_agree() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (_, first) = login_pair(&app, "alice").await;
    let (a, b) = tokio::join!(refresh(&app, &first), refresh(&app, &first));
    let a: Value = a.json().await.unwrap();
    let b: Value = b.json().await.unwrap();
    assert!(a["refreshToken"].is_string(), "{a}");
    assert_eq!(a["refreshToken"], b["refreshToken"]);
}

#[tokio::test]
async fn a_replay_after_the_grace_window_ends_the_whole_session() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.clock.freeze();
    let (jwt, first) = login_pair(&app, "alice").await;
    let (new_jwt, second) = refreshed_pair(&app, &first).await;
    let (other_jwt, _) = login_pair(&app, "alice").await;

    // One millisecond past the window.
    app.clock.advance(GRACE + MS);
    assert_refresh_refused(&app, &first).await;

    // The thief's replay ended the family: the legitimate holder's newer tokens die too.
    assert_refresh_refused(&app, &second).await;
    assert_token_dead(&app, &jwt).await;
    assert_token_dead(&app, &new_jwt).await;
    assert_eq!(
        app.me(&other_jwt).await.status(),
        StatusCode::OK,
        "other sessions are untouched"
    );
    let reason: String = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT revoked_reason FROM sessions WHERE id = $1"
    )
    .bind(jwt_payload(&jwt)["sid"].as_str().unwrap())
    .fetch_one(db)
    .await
    .unwrap());
    assert_eq!(reason, "refresh_token_reuse");
}

#[tokio::test]
async fn the_grace_window_is_configurable() {
    let app = TestApp::spawn_with(|c| c.sessions.refresh_grace = Duration::from_secs(60))
        .await
        .with_user("alice")
        .await;
    let (_, first) = login_pair(&app, "alice").await;
    refreshed_pair(&app, &first).await;
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(refresh_status(&app, &first).await, 200);
}

// ---- lifetimes ----

#[tokio::test]
async fn an_idle_session_cannot_be_refreshed_and_activity_keeps_it_alive() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.clock.freeze();
    // Two sessions with the same history, so one can stand either side of the same instant.
    let (_, first) = login_pair(&app, "alice").await;
    let (_, second) = login_pair(&app, "alice").await;
    // Refreshed a millisecond before the idle window closes, both live on…
    app.clock.advance(IDLE - MS);
    let (_, first) = refreshed_pair(&app, &first).await;
    let (_, second) = refreshed_pair(&app, &second).await;
    // …in a window counted from that refresh: almost twice the idle lifetime after login (and
    // before the absolute one) the first is refreshed a millisecond before its end…
    app.clock.advance(IDLE - MS);
    refreshed_pair(&app, &first).await;
    // …and the second, silent a full idle lifetime, is over.
    app.clock.advance(MS);
    assert_refresh_refused(&app, &second).await;
}

#[tokio::test]
async fn the_absolute_lifetime_ends_the_session_whatever_happens() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.clock.freeze();
    let (jwt, mut token) = login_pair(&app, "alice").await;
    // Refreshed every 10 days, the idle window never closes; the last refresh is a millisecond
    // before the absolute end, and still works.
    for _ in 0..2 {
        app.clock.advance(Duration::from_secs(10 * 86_400));
        token = refreshed_pair(&app, &token).await.1;
    }
    app.clock
        .advance(ABSOLUTE - Duration::from_secs(20 * 86_400) - MS);
    let (last_jwt, token) = refreshed_pair(&app, &token).await;
    assert_eq!(app.me(&last_jwt).await.status(), StatusCode::OK);
    // Thirty days after login, to the millisecond, it is over.
    app.clock.advance(MS);
    assert_refresh_refused(&app, &token).await;
    assert_token_dead(&app, &jwt).await;
    assert_token_dead(&app, &last_jwt).await;
}

#[tokio::test]
async fn access_tokens_never_outlive_their_session() {
    let app = TestApp::spawn_with(|c| c.sessions.absolute_ttl = Duration::from_secs(3600))
        .await
        .with_user("alice")
        .await;
    let claims = jwt_payload(&app.token_for("alice").await);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((3599..=3600).contains(&lifetime), "{lifetime}");
}

// ---- §5 B: logout ----

#[tokio::test]
async fn logout_requires_some_credential() {
    let app = TestApp::spawn().await;
    assert_error(
        app.post("/api/auth/logout", json!({})).await,
        403,
        "ForbiddenError",
        "Forbidden",
    )
    .await;
}

#[tokio::test]
async fn logout_ends_the_current_session_and_its_tokens() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, refresh_token) = login_pair(&app, "alice").await;
    let (other_jwt, other_refresh) = login_pair(&app, "alice").await;
    let res = post_auth(&app, "/api/auth/logout", &jwt, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"ok": true}));
    assert_token_dead(&app, &jwt).await;
    assert_refresh_refused(&app, &refresh_token).await;
    assert_eq!(app.me(&other_jwt).await.status(), StatusCode::OK);
    assert_eq!(refresh_status(&app, &other_refresh).await, 200);
}

#[tokio::test]
async fn logout_clears_the_cookie_when_asked() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, _) = login_pair(&app, "alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&jwt)
        .header(COOKIE_MODE.0, COOKIE_MODE.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cleared = set_cookie(&res).expect("Set-Cookie");
    assert!(cleared.starts_with("strapi_up_refresh=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn logout_with_only_the_refresh_cookie_ends_that_session() {
    // A client whose access token expired can still log out.
    let app = TestApp::spawn_with(|c| c.cookie.always = true)
        .await
        .with_user("alice")
        .await;
    let res = app.login("alice", "alice-password").await;
    let cookie = set_cookie(&res).unwrap();
    let jwt = res.json::<Value>().await.unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .header("cookie", cookie.split(';').next().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookie(&res).unwrap().starts_with("strapi_up_refresh=;"));
    assert_token_dead(&app, &jwt).await;
    assert_refresh_refused(&app, &cookie_value(&cookie)).await;
}

#[tokio::test]
async fn logout_with_a_refresh_token_in_the_body_ends_that_session() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, refresh_token) = login_pair(&app, "alice").await;
    let res = app
        .post("/api/auth/logout", json!({ "refreshToken": refresh_token }))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_token_dead(&app, &jwt).await;
    assert_refresh_refused(&app, &refresh_token).await;
}

#[tokio::test]
async fn logout_scope_all_ends_every_session() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.create_user("bob", |_| {}).await;
    let sessions = [
        login_pair(&app, "alice").await,
        login_pair(&app, "alice").await,
    ];
    let (bob_jwt, _) = login_pair(&app, "bob").await;
    let res = post_auth(
        &app,
        "/api/auth/logout",
        &sessions[0].0,
        json!({"scope": "all"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    for (jwt, refresh_token) in &sessions {
        assert_token_dead(&app, jwt).await;
        assert_refresh_refused(&app, refresh_token).await;
    }
    assert_eq!(app.me(&bob_jwt).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_by_device_ends_that_device_only() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let login_on = |device: &'static str| {
        let app = &app;
        async move {
            let body: Value = app
                .post(
                    "/api/auth/local",
                    json!({"identifier": "alice", "password": "alice-password", "deviceId": device}),
                )
                .await
                .json()
                .await
                .unwrap();
            body["jwt"].as_str().unwrap().to_owned()
        }
    };
    let laptop = [login_on("laptop").await, login_on("laptop").await];
    let phone = login_on("phone").await;
    let res = post_auth(
        &app,
        "/api/auth/logout",
        &phone,
        json!({"deviceId": "laptop"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    for jwt in &laptop {
        assert_token_dead(&app, jwt).await;
    }
    assert_eq!(app.me(&phone).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_by_a_device_id_longer_than_kept_still_ends_that_device() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let long = "d".repeat(300);
    let body: Value = app
        .post(
            "/api/auth/local",
            json!({"identifier": "alice", "password": "alice-password", "deviceId": long}),
        )
        .await
        .json()
        .await
        .unwrap();
    let jwt = body["jwt"].as_str().unwrap();
    let res = post_auth(&app, "/api/auth/logout", jwt, json!({"deviceId": long})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_token_dead(&app, jwt).await;
}

/// Reproduces the logout that did the opposite of its body: sent with session A's access token and
/// session B's refresh token, it ended A and left B working. The body names B, so B ends, and A,
/// which only carried the request, keeps working.
#[tokio::test]
async fn logout_ends_the_session_of_the_refresh_token_in_the_body_not_the_callers() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (a_jwt, a_refresh) = login_pair(&app, "alice").await;
    let (b_jwt, b_refresh) = login_pair(&app, "alice").await;
    let res = post_auth(
        &app,
        "/api/auth/logout",
        &a_jwt,
        json!({ "refreshToken": b_refresh }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"ok": true}));
    assert_token_dead(&app, &b_jwt).await;
    assert_refresh_refused(&app, &b_refresh).await;
    assert_eq!(app.me(&a_jwt).await.status(), StatusCode::OK);
    assert_eq!(refresh_status(&app, &a_refresh).await, 200);
}

/// Reproduces a logout with one user's access token and another user's refresh token: it answered
/// `{ok:true}` and ended the caller's own session instead. A refresh token that is not the caller's
/// (or names no session at all) is refused with 403, and no session ends, neither the caller's nor
/// the other user's.
#[tokio::test]
async fn a_refresh_token_of_another_user_is_forbidden_and_ends_nothing() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.create_user("bob", |_| {}).await;
    let (alice_jwt, alice_refresh) = login_pair(&app, "alice").await;
    let (bob_jwt, bob_refresh) = login_pair(&app, "bob").await;
    for named in [bob_refresh.as_str(), "no-such-refresh-token"] {
        let res = post_auth(
            &app,
            "/api/auth/logout",
            &alice_jwt,
            json!({ "refreshToken": named }),
        )
        .await;
        assert_error(res, 403, "ForbiddenError", "Forbidden").await;
    }
    assert_eq!(app.me(&alice_jwt).await.status(), StatusCode::OK);
    assert_eq!(app.me(&bob_jwt).await.status(), StatusCode::OK);
    assert_eq!(refresh_status(&app, &bob_refresh).await, 200);
    assert_eq!(refresh_status(&app, &alice_refresh).await, 200);
}

// ---- §5 C: the session list ----

#[tokio::test]
async fn sessions_require_authentication() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/auth/sessions"))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "ForbiddenError", "Forbidden").await;
}

async fn list_sessions(app: &TestApp, jwt: &str) -> Vec<Value> {
    let res = app
        .client
        .get(app.url("/api/auth/sessions"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn sessions_are_listed_current_first_with_device_names() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (first, _) = login_pair(&app, "alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/local"))
        .header("user-agent", MAC_CHROME)
        .json(&json!({"identifier": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let from_mac: Value = res.json().await.unwrap();
    let list = list_sessions(&app, &first).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["id"], jwt_payload(&first)["sid"]);
    assert_eq!(list[1]["current"], false);
    assert_eq!(list[1]["deviceName"], "Chrome on macOS");
    assert_eq!(
        list[1]["id"],
        jwt_payload(from_mac["jwt"].as_str().unwrap())["sid"]
    );
    for s in &list {
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "deviceId",
                "deviceName",
                "current",
                "loginAt",
                "lastActiveAt"
            ]
        );
        assert!(s["loginAt"].as_str().unwrap().ends_with('Z'));
    }
}

#[tokio::test]
async fn ending_a_session_from_the_list() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (mine, _) = login_pair(&app, "alice").await;
    let (stolen_jwt, stolen_refresh) = login_pair(&app, "alice").await;
    let stolen_sid = jwt_payload(&stolen_jwt)["sid"].as_str().unwrap().to_owned();
    let res = app
        .client
        .delete(app.url(&format!("/api/auth/sessions/{stolen_sid}")))
        .bearer_auth(&mine)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"data": {}}));
    assert_token_dead(&app, &stolen_jwt).await;
    assert_refresh_refused(&app, &stolen_refresh).await;
    let list = list_sessions(&app, &mine).await;
    assert!(list.iter().all(|s| s["id"] != stolen_sid.as_str()));
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn unknown_and_other_users_sessions_are_not_found() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.create_user("bob", |_| {}).await;
    let (alice, _) = login_pair(&app, "alice").await;
    let (bob_jwt, bob_refresh) = login_pair(&app, "bob").await;
    let bob_sid = jwt_payload(&bob_jwt)["sid"].as_str().unwrap().to_owned();
    for id in ["no-such-session", bob_sid.as_str()] {
        let res = app
            .client
            .delete(app.url(&format!("/api/auth/sessions/{id}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_error(res, 404, "NotFoundError", "Session not found").await;
    }
    assert_eq!(
        refresh_status(&app, &bob_refresh).await,
        200,
        "bob is untouched"
    );
}

// ---- §5 B and G: change-password ends every older session ----

#[tokio::test]
async fn change_password_requires_authentication() {
    let app = TestApp::spawn().await;
    assert_error(
        app.post("/api/auth/change-password", json!({})).await,
        403,
        "ForbiddenError",
        "Forbidden",
    )
    .await;
}

#[tokio::test]
async fn change_password_refusals_use_strapis_messages() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, _) = login_pair(&app, "alice").await;
    let cases = [
        (
            json!({"currentPassword": "alice-password", "password": "new-password-1", "passwordConfirmation": "new-password-2"}),
            "Passwords do not match",
        ),
        (
            json!({"currentPassword": "wrong-password", "password": "new-password-1", "passwordConfirmation": "new-password-1"}),
            "The provided current password is invalid",
        ),
        (
            json!({"currentPassword": "alice-password", "password": "alice-password", "passwordConfirmation": "alice-password"}),
            "Your new password must be different than your current password",
        ),
        (
            json!({"currentPassword": "alice-password", "password": "new-password-1", "passwordConfirmation": "new-password-1", "url": "x"}),
            "this field has unspecified keys: url",
        ),
    ];
    for (body, message) in cases {
        assert_error(
            post_auth(&app, "/api/auth/change-password", &jwt, body).await,
            400,
            "ValidationError",
            message,
        )
        .await;
    }
    assert_eq!(
        app.me(&jwt).await.status(),
        StatusCode::OK,
        "nothing changed"
    );
}

#[tokio::test]
async fn change_password_ends_every_session_and_returns_a_new_one() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt_a, refresh_a) = login_pair(&app, "alice").await;
    let (jwt_b, refresh_b) = login_pair(&app, "alice").await;
    // Both sessions have refreshed before the change (§5 G).
    let (jwt_a, refresh_a) = {
        let _ = jwt_a;
        refreshed_pair(&app, &refresh_a).await
    };
    let (_, refresh_b) = refreshed_pair(&app, &refresh_b).await;

    let res = post_auth(
        &app,
        "/api/auth/change-password",
        &jwt_a,
        json!({"currentPassword": "alice-password", "password": "brand-new-pass", "passwordConfirmation": "brand-new-pass"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    let new_jwt = body["jwt"].as_str().unwrap();
    let new_refresh = body["refreshToken"].as_str().unwrap();

    assert_eq!(app.me(new_jwt).await.status(), StatusCode::OK);
    assert_eq!(refresh_status(&app, new_refresh).await, 200);
    for old in [&refresh_a, &refresh_b] {
        assert_refresh_refused(&app, old).await;
    }
    assert_token_dead(&app, &jwt_a).await;
    assert_token_dead(&app, &jwt_b).await;

    let res = app.login("alice", "brand-new-pass").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert!(body["jwt"].is_string() && body["refreshToken"].is_string());
    assert_invalid_login(app.login("alice", "alice-password").await).await;
}

// ---- revocation by administration ----

#[tokio::test]
async fn blocking_ends_sessions_and_unblocking_does_not_revive_them() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, refresh_token) = login_pair(&app, "alice").await;
    app.auth.admin().set_blocked("alice", true).await.unwrap();
    assert_refresh_refused(&app, &refresh_token).await;
    app.auth.admin().set_blocked("alice", false).await.unwrap();
    assert_refresh_refused(&app, &refresh_token).await;
    assert_token_dead(&app, &jwt).await;
}

#[tokio::test]
async fn deleting_a_user_ends_their_refresh_tokens() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (_, refresh_token) = login_pair(&app, "alice").await;
    app.auth.admin().delete_user("alice").await.unwrap();
    assert_refresh_refused(&app, &refresh_token).await;
}

// ---- the forward-auth check ----

#[tokio::test]
async fn verify_answers_like_a_secure_query_and_dies_with_the_session() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, _) = login_pair(&app, "alice").await;
    let res = app
        .client
        .get(app.url("/api/auth/verify"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-keyway-username"], "alice");
    assert_eq!(res.headers()["x-keyway-user-id"], "1");
    assert_eq!(res.headers()["x-keyway-email"], "alice@example.com");
    assert_eq!(res.headers()["x-keyway-role"], "authenticated");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "200 OK");
    assert_eq!(body["user"]["username"], "alice");

    let res = app
        .client
        .get(app.url("/api/auth/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "no token is 401 for a forward-auth proxy"
    );
    assert!(res.headers().contains_key("www-authenticate"));

    post_auth(&app, "/api/auth/logout", &jwt, json!({})).await;
    assert_token_dead(&app, &jwt).await;
}

// ---- the hot path ----

#[tokio::test]
async fn a_warm_token_check_does_not_read_the_database() {
    // Changed behind the server's back (no invalidation recorded), the database says the session is
    // over; a warm cache still answers, which shows the check never went to the database. A restart
    // (cold caches) reads it and refuses.
    let app = TestApp::spawn().await.with_user("alice").await;
    let (jwt, _) = login_pair(&app, "alice").await;
    assert_eq!(app.me(&jwt).await.status(), StatusCode::OK);
    with_db!(app.db().await, |db| {
        sqlx::query("UPDATE sessions SET revoked_at = 1")
            .execute(db)
            .await
            .unwrap();
    });
    for _ in 0..3 {
        assert_eq!(app.me(&jwt).await.status(), StatusCode::OK);
    }
    let app = app.restart().await;
    assert_error(app.me(&jwt).await, 401, "UnauthorizedError", INVALID_TOKEN).await;
}

#[tokio::test]
async fn the_caches_stay_within_their_bound_and_what_falls_out_is_read_again() {
    // 24 sessions of 12 users through caches of 8 entries each: the bound holds, every token still
    // answers (an evicted entry is read from the store again), and a revocation still ends its session.
    const CAPACITY: u64 = 8;
    let app = TestApp::spawn_with(|c| c.sessions.cache_capacity = CAPACITY).await;
    let mut tokens = Vec::new();
    for i in 0..12 {
        let name = format!("user{i}");
        app.create_user(&name, |_| {}).await;
        for _ in 0..2 {
            tokens.push(login_pair(&app, &name).await.0);
        }
    }
    for round in 0..2 {
        for jwt in &tokens {
            assert_eq!(app.me(jwt).await.status(), StatusCode::OK, "round {round}");
        }
    }
    let (sessions, users) = app.auth.sessions().cached_entries();
    assert!(
        sessions <= CAPACITY && users <= CAPACITY,
        "cached {sessions} sessions and {users} users with a bound of {CAPACITY}"
    );
    assert!(sessions > 0 && users > 0, "the caches are in use");
    post_auth(&app, "/api/auth/logout", &tokens[0], json!({})).await;
    assert_token_dead(&app, &tokens[0]).await;
    for jwt in &tokens[1..] {
        assert_eq!(app.me(jwt).await.status(), StatusCode::OK);
    }
}
