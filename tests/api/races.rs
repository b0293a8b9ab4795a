//! What was decided before a change must not outlive it: a login whose password check is still
//! running when the account is blocked or its password reset, and a cache filled from a read that
//! an invalidation overtook.

use crate::account::{app_with_mail, reset, reset_code};
use crate::helpers::*;
use crate::smtp::SmtpSink;
use keyway::auth::password::{HashParams, Hasher};
use keyway::auth::sessions::Caches;
use keyway::store::Invalidation;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// argon2id costs far above the suite's, so one verification takes about a second or more: long
/// enough for a block or a reset to land while it runs.
const SLOW: HashParams = HashParams {
    m_cost_kib: 32 * 1024,
    t_cost: 40,
    p_cost: 1,
};

/// Stores `name`'s password again as an argon2id hash with [`SLOW`] costs, which the login verifies
/// with the costs the hash names.
async fn slow_password_check(app: &TestApp, name: &str) {
    let hasher = Hasher::new(SLOW, 1).await.unwrap();
    let hash = hasher
        .hash(SecretString::from(password_of(name)))
        .await
        .unwrap();
    with_db!(app.db().await, |pool| sqlx::query(
        "UPDATE users SET password_hash = $1 WHERE username = $2"
    )
    .bind(&hash)
    .bind(name)
    .execute(pool)
    .await
    .map(|_| ())
    .unwrap());
}

/// Starts a login of `name` with the right password and returns once its password check runs: the
/// hasher counts a verification when a hashing thread starts it, after the login read the account.
async fn login_in_flight(app: &TestApp, name: &str) -> JoinHandle<Response> {
    let stats = || app.auth.hasher().stats().verifications();
    let before = stats();
    let request = app
        .client
        .post(app.url("/api/auth/local"))
        .json(&json!({ "identifier": name, "password": password_of(name) }));
    let login = tokio::spawn(async move { request.send().await.expect("login sent") });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the login never reached its password check"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    login
}

/// The precondition without which the tests below prove nothing.
fn assert_still_hashing(login: &JoinHandle<Response>) {
    assert!(
        !login.is_finished(),
        "the login finished before the change: its password check was too fast for this test"
    );
}

async fn live_sessions(app: &TestApp, name: &str) -> usize {
    let user = app.user(name).await;
    let now = chrono::Utc::now().timestamp_millis();
    let sessions = app.auth.store().sessions_of_user(user.id).await.unwrap();
    sessions.iter().filter(|s| s.is_live(now)).count()
}

/// The attack: a login whose password check was still running when an administrator blocked the
/// account had read the account before the block. It finished with a session opened after the block
/// had ended every session, and put its unblocked copy of the account back in the cache, so the new
/// token worked on a blocked account.
#[tokio::test]
async fn a_login_still_hashing_when_the_account_is_blocked_opens_no_session() {
    let app = TestApp::spawn().await.with_user("alice").await;
    slow_password_check(&app, "alice").await;

    let login = login_in_flight(&app, "alice").await;
    app.auth.admin().set_blocked("alice", true).await.unwrap();
    assert_still_hashing(&login);

    let res = login.await.unwrap();
    assert_error(
        res,
        400,
        "ApplicationError",
        "Your account has been blocked by an administrator",
    )
    .await;
    assert_eq!(live_sessions(&app, "alice").await, 0);
}

/// The attack: someone who knows the old password starts a login; the owner resets the password
/// while it is being checked (the reset ends every session). The login, which had read the old hash,
/// used to finish with a fresh session for the old password.
#[tokio::test]
async fn a_login_still_hashing_when_the_password_is_reset_opens_no_session() {
    let sink = SmtpSink::start().await;
    // One hashing thread for the slow check, one for the reset's new hash.
    let app = app_with_mail(&sink, |c| c.hash_concurrency = 2)
        .await
        .with_user("alice")
        .await;
    let code = reset_code(&app, &sink, "alice").await;
    slow_password_check(&app, "alice").await;

    let login = login_in_flight(&app, "alice").await;
    let res = reset(&app, &code, "a-whole-new-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_still_hashing(&login);

    assert_invalid_login(login.await.unwrap()).await;
    // The reset's own session is the only one.
    assert_eq!(live_sessions(&app, "alice").await, 1);
}

/// The attack: a request that missed the session cache read the session from the store just before
/// a logout revoked it, and put its copy, still open, in the cache after the revocation had cleared
/// it; the logged-out token then worked for up to a minute. Reproduced step by step on the app's own
/// store, with a cache as the server keeps it, in both orders the revocation can reach the cache.
#[tokio::test]
async fn a_session_read_before_its_revocation_is_not_cached_again() {
    let app = TestApp::spawn().await.with_user("alice").await;
    for invalidation_first in [true, false] {
        let jwt = app.token_for("alice").await;
        let sid = jwt_payload(&jwt)["sid"].as_str().unwrap().to_owned();
        let caches = Caches::new(100);

        let ticket = caches.ticket();
        let stale = app.auth.store().session(&sid).await.unwrap().unwrap();
        let res = app
            .client
            .post(app.url("/api/auth/logout"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let revoked = Invalidation::Session(sid.clone());
        if invalidation_first {
            caches.apply(&revoked);
            caches.put_session(ticket, Arc::new(stale));
        } else {
            caches.put_session(ticket, Arc::new(stale));
            caches.apply(&revoked);
        }
        assert!(
            caches.session(&sid).is_none(),
            "the revoked session came back (invalidation first: {invalidation_first})"
        );
        // A read after the revocation is cached as usual.
        let ticket = caches.ticket();
        let fresh = app.auth.store().session(&sid).await.unwrap().unwrap();
        caches.put_session(ticket, Arc::new(fresh));
        assert!(caches.session(&sid).unwrap().revoked_at.is_some());
    }
}
