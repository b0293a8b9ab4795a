//! Relay clients (`relay_clients`): an Appsmith, Retool or backend-for-frontend server sends every end
//! user's requests from its one address. Its route limits count per user under a cap per address, so
//! the app serves more than ten users a minute, while one user's guesses, the relay as a whole, and
//! every other client stay as limited as before.

use crate::cli::{Server, keyway, serve};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const LIMIT_MESSAGE: &str = "Too many requests, please try again later.";

/// Rate limits and the account throttle on; the loopback (where the tests connect from) is a relay.
async fn relay_app(change: impl FnOnce(&mut keyway::Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth.rate_limits.enabled = true;
        c.auth.throttle.enabled = true;
        c.auth.rate_limits.relay_clients = vec!["127.0.0.1/32".parse().unwrap()];
        change(c);
    })
    .await
}

async fn with_users(app: TestApp, names: &[String]) -> TestApp {
    for name in names {
        app.create_user(name, |_| {}).await;
    }
    app
}

fn users(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("user{i}")).collect()
}

async fn post_from(
    app: &TestApp,
    client: Option<&str>,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(client) = client {
        req = req.header("x-forwarded-for", client);
    }
    req.send().await.unwrap()
}

async fn login_from(
    app: &TestApp,
    client: Option<&str>,
    identifier: &str,
    password: &str,
) -> reqwest::Response {
    let body = json!({ "identifier": identifier, "password": password });
    post_from(app, client, "/api/auth/local", body).await
}

fn header(res: &reqwest::Response, name: &str) -> i64 {
    res.headers()[name].to_str().unwrap().parse().unwrap()
}

/// Issue 16: behind an Appsmith app, the eleventh user to log in within a minute got 429, because
/// every user's login reached Keyway from the Appsmith server's address. The attack side: a guesser
/// using the app still meets the per-account throttle, which a relay does not loosen.
#[tokio::test]
async fn a_relay_logs_in_fifteen_users_a_minute_and_the_account_throttle_still_holds() {
    let names = users(15);
    let app = with_users(relay_app(|_| {}).await, &names).await;
    for name in &names {
        let res = app.login(name, &password_of(name)).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
    }
    // Guessing user3's password through the relay: five failures are free, the sixth waits. The route
    // limit still had room (remaining > 0): the refusal is the account throttle's.
    for i in 0..5 {
        let res = app.login("user3", "wrong-password").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "failure {i}");
    }
    let res = app.login("user3", "wrong-password").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        header(&res, "x-ratelimit-remaining") > 0,
        "not the route limit"
    );
    assert!(header(&res, "retry-after") >= 1);
}

/// One identifier hammered through the relay (a guesser using the app, or a stuck script) is limited
/// at the route's limit as any client is; spelling it in other cases or with blanks around it opens no
/// new bucket. Other users of the relay are not locked out by it.
#[tokio::test]
async fn one_identifier_through_a_relay_keeps_the_route_limit_whatever_its_case() {
    // Without the account throttle, so the route limit is what answers.
    let app = relay_app(|c| c.auth.throttle.enabled = false)
        .await
        .with_user("alice")
        .await
        .with_user("bob")
        .await;
    let spellings = ["alice", "Alice", "ALICE", " alice "];
    for i in 0..10 {
        let who = spellings[i % 4];
        let res = app.login(who, "wrong-password").await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "attempt {i} as {who:?}"
        );
        assert_eq!(header(&res, "x-ratelimit-limit"), 10);
        assert_eq!(header(&res, "x-ratelimit-remaining"), 9 - i as i64);
    }
    for who in spellings {
        let res = app.login(who, &password_of("alice")).await;
        assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
    }
    // Bob is another user of the same relay: his bucket is his own.
    assert_eq!(
        app.login("bob", &password_of("bob")).await.status(),
        StatusCode::OK
    );
    // The refusal is in the audit trail, as other rate-limit hits are.
    let refused: Vec<_> = app
        .auth
        .admin()
        .audit_trail(None, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "rate_limited")
        .collect();
    assert_eq!(refused.len(), 1, "four refusals of one user, one record");
    assert_eq!(
        refused[0].detail.as_deref(),
        Some("/api/auth/local (relay client)")
    );
    assert_eq!(refused[0].ip.as_deref(), Some("127.0.0.1"));
}

/// A compromised or misused relay rotating identifiers (credential stuffing through the app) meets
/// the cap per route and address: `relay_rate_limit_max` requests a window, all identifiers together.
#[tokio::test]
async fn a_relay_rotating_identifiers_meets_its_total_cap() {
    let app = relay_app(|c| c.auth.rate_limits.relay_max = 12).await;
    for i in 0..12 {
        let res = app.login(&format!("victim{i}"), "password1").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "victim{i}");
    }
    let res = app.login("victim12", "password1").await;
    assert_eq!(header(&res, "x-ratelimit-limit"), 12);
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
    // Leaving the identifier out does not dodge it either.
    let res = app.post("/api/auth/local", json!({})).await;
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
}

/// The relay address is the client as resolved through trusted proxies (Keyway behind nginx, Appsmith
/// behind it too); any other client behind the same proxy keeps the per-address bucket, in which a
/// body field never opens a new one (GHSA-7mqx-wwh4-f9fw, identifier rotation).
#[tokio::test]
async fn relay_clients_are_the_resolved_address_and_everyone_else_is_unchanged() {
    let names = users(15);
    let app = relay_app(|c| {
        c.transport.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.auth.rate_limits.relay_clients = vec!["198.51.100.0/24".parse().unwrap()];
    })
    .await;
    let app = with_users(app, &names).await;
    let relay = Some("198.51.100.7");
    for name in &names {
        let res = login_from(&app, relay, name, &password_of(name)).await;
        assert_eq!(res.status(), StatusCode::OK, "{name} through the relay");
    }
    // Another client behind the proxy: ten users, then the eleventh is refused.
    let stranger = Some("203.0.113.9");
    for name in &names[..10] {
        let res = login_from(&app, stranger, name, &password_of(name)).await;
        assert_eq!(res.status(), StatusCode::OK, "{name} from a stranger");
    }
    let res = login_from(&app, stranger, &names[10], &password_of(&names[10])).await;
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
    // The proxy's own address is not a relay either: it was not listed.
    for i in 0..10 {
        let res = login_from(&app, None, &format!("nobody{i}"), "password1").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let res = login_from(&app, None, "nobody10", "password1").await;
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
}

/// The other limited routes name their user in the body too: an app's forgot-password and
/// registration forms serve more than ten users a minute, while one address mailed over and over
/// (mail-bombing a victim through the app) is still limited at the route's ten.
#[tokio::test]
async fn forgot_password_and_register_through_a_relay_count_per_email() {
    let app = relay_app(|_| {}).await;
    for i in 0..12 {
        let res = app
            .post(
                "/api/auth/forgot-password",
                json!({ "email": format!("user{i}@example.com") }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "user{i}");
    }
    for i in 0..9 {
        let email = if i % 2 == 0 {
            "victim@example.com"
        } else {
            "Victim@Example.com"
        };
        let res = app
            .post("/api/auth/forgot-password", json!({ "email": email }))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "mail {i}");
    }
    // The victim's tenth request fits, the eleventh does not.
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({ "email": "victim@example.com" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({ "email": "VICTIM@example.com" }),
        )
        .await;
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;

    for i in 0..12 {
        let res = app
            .post(
                "/api/auth/local/register",
                json!({
                    "username": format!("new{i}"),
                    "email": format!("new{i}@example.com"),
                    "password": format!("pw-{i}-long-enough"),
                }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "new{i}");
    }
}

/// Change-password names its user by the bearer token, not the body: each of the app's users has a
/// bucket, and one user's repeated tries (guessing the current password with a stolen token) stop at
/// the route's ten.
#[tokio::test]
async fn change_password_through_a_relay_counts_per_bearer() {
    let app = relay_app(|c| c.auth.throttle.enabled = false)
        .await
        .with_user("alice")
        .await
        .with_user("bob")
        .await;
    let alice = app.token_for("alice").await;
    let bob = app.token_for("bob").await;
    let change = |token: &str| {
        app.client
            .post(app.url("/api/auth/change-password"))
            .bearer_auth(token)
            .json(&json!({
                "currentPassword": "wrong-password",
                "password": "new-password-1",
                "passwordConfirmation": "new-password-1",
            }))
            .send()
    };
    for i in 0..10 {
        let res = change(&alice).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "try {i}");
    }
    assert_eq!(
        change(&alice).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        change(&bob).await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "bob's bucket is his own"
    );
}

/// Reading a relay client's body before the handler must neither lose it nor let an oversized one
/// through: the body limit answers 413 as it does for everyone.
#[tokio::test]
async fn a_relay_clients_oversized_body_is_refused_as_anyone_elses() {
    let app = relay_app(|_| {}).await;
    let huge = "x".repeat(70 * 1024);
    let res = app.login(&huge, "password1").await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["name"], "PayloadTooLargeError");
}

/// The operator can see which addresses get per-user limits: `serve` names them at start.
#[tokio::test]
async fn serve_logs_its_relay_clients() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = serve(
        keyway(dir.path()),
        &["--relay-clients", "172.17.0.2,::ffff:10.1.0.0/112"],
    );
    let mut server = Server::start(cmd).await;
    let status = server.signal_and_wait("TERM").await;
    assert!(status.success());
    let log = server.stderr();
    assert!(
        log.contains("relay clients") && log.contains("172.17.0.2/32, 10.1.0.0/16"),
        "{log}"
    );
}
