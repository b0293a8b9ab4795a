//! Brute-force defences as an attacker meets them: Strapi-compatible route limits that body fields and
//! forged forwarding headers cannot dodge, and per-account throttling that slows distributed guessing
//! without locking the owner out.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT_MESSAGE: &str = "Too many requests, please try again later.";

async fn limited_app() -> TestApp {
    TestApp::spawn_with(|c| c.auth.rate_limits.enabled = true)
        .await
        .with_user("alice")
        .await
}

/// An app behind a trusted proxy on loopback, so tests can speak for many client addresses.
async fn proxied_app(change: impl FnOnce(&mut keyway::Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        c.transport.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.auth.throttle.enabled = true;
        change(c);
    })
    .await
    .with_user("alice")
    .await
}

async fn login_from(
    app: &TestApp,
    client: &str,
    identifier: &str,
    password: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/local"))
        .header("x-forwarded-for", client)
        .json(&json!({ "identifier": identifier, "password": password }))
        .send()
        .await
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> i64 {
    res.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn ten_a_minute_then_429_with_strapis_headers_and_retry_after() {
    let app = limited_app().await;
    for i in 0..10 {
        let res = app.login("alice", "wrong-password").await;
        assert_eq!(res.status(), 400, "attempt {i}");
        assert_eq!(header(&res, "x-ratelimit-limit"), 10);
        assert_eq!(header(&res, "x-ratelimit-remaining"), 9 - i);
        let reset = header(&res, "x-ratelimit-reset");
        let now = chrono::Utc::now().timestamp();
        assert!(
            (now..=now + 61).contains(&reset),
            "reset {reset} is epoch seconds"
        );
    }
    let res = app.login("alice", "alice-password").await;
    let retry = header(&res, "retry-after");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&res, "x-ratelimit-remaining"), 0);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"data":null,"error":{"status":429,"name":"RateLimitError","message":"Too many requests, please try again later.","details":{}}}"#
    );

    // A new window opens a minute later.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(
        app.login("alice", "alice-password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn changing_body_fields_does_not_open_a_new_bucket() {
    // GHSA-7mqx-wwh4-f9fw: Strapi keyed its limit by the body's email, so varying it bypassed it.
    let app = limited_app().await;
    for i in 0..10 {
        let res = app
            .post(
                "/api/auth/forgot-password",
                json!({ "email": format!("victim{i}@example.com") }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_error(
        app.post(
            "/api/auth/forgot-password",
            json!({"email": "someone-new@example.com"}),
        )
        .await,
        429,
        "RateLimitError",
        LIMIT_MESSAGE,
    )
    .await;
    for i in 0..10 {
        app.post(
            "/api/auth/local/register",
            json!({"username": format!("u{i}xx"), "email": format!("u{i}@example.com"), "password": format!("pw-{i}-long-enough")}),
        )
        .await;
    }
    let res = app
        .post(
            "/api/auth/local/register",
            json!({"username": "fresh", "email": "fresh@example.com", "password": "fresh-pass-1"}),
        )
        .await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn a_forged_forwarding_header_from_an_untrusted_peer_changes_nothing() {
    let app = limited_app().await;
    for i in 0..10 {
        let res = login_from(&app, &format!("198.51.100.{i}"), "alice", "nope").await;
        assert_eq!(res.status(), 400);
    }
    let res = app
        .client
        .post(app.url("/api/auth/local"))
        .header("x-forwarded-for", "198.51.100.200")
        .header("forwarded", "for=198.51.100.201")
        .json(&json!({"identifier": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "still the same client: 127.0.0.1");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket() {
    let app = proxied_app(|c| c.auth.rate_limits.enabled = true).await;
    for _ in 0..10 {
        login_from(&app, "198.51.100.1", "nobody", "x-password").await;
    }
    assert_eq!(
        login_from(&app, "198.51.100.1", "alice", "alice-password")
            .await
            .status(),
        429
    );
    assert_eq!(
        login_from(&app, "198.51.100.2", "alice", "alice-password")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn routes_are_limited_separately_and_other_routes_not_at_all() {
    let app = limited_app().await;
    for _ in 0..10 {
        app.login("alice", "wrong").await;
    }
    assert_eq!(app.login("alice", "alice-password").await.status(), 429);
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "its own bucket");
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(!res.headers().contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn limits_are_configurable_per_route_and_can_be_disabled() {
    let app = TestApp::spawn_with(|c| {
        c.auth.rate_limits.enabled = true;
        c.auth.rate_limits.routes.insert(
            "/api/auth/local".into(),
            keyway::auth::throttle::Limit {
                max: 3,
                window: Duration::from_secs(10),
            },
        );
    })
    .await
    .with_user("alice")
    .await;
    for _ in 0..3 {
        assert_eq!(app.login("alice", "alice-password").await.status(), 200);
    }
    assert_eq!(app.login("alice", "alice-password").await.status(), 429);

    let open = TestApp::spawn().await.with_user("alice").await; // limits off
    for _ in 0..30 {
        assert_eq!(open.login("alice", "alice-password").await.status(), 200);
    }
}

// ---- per-account throttling ----

#[tokio::test]
async fn guessing_one_account_from_many_addresses_is_slowed() {
    let app = proxied_app(|_| {}).await;
    for i in 0..5 {
        let res = login_from(&app, &format!("203.0.113.{i}"), "alice", "guess").await;
        assert_eq!(res.status(), 400, "the first five are free");
    }
    // A sixth guess, from yet another address, must wait.
    let res = login_from(&app, "203.0.113.99", "alice", "guess").await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), 1);
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;

    // The pauses double.
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        login_from(&app, "203.0.113.50", "alice", "guess")
            .await
            .status(),
        400
    );
    let res = login_from(&app, "203.0.113.51", "alice", "guess").await;
    assert_eq!(header(&res, "retry-after"), 2);
}

#[tokio::test]
async fn a_paused_account_refuses_even_the_right_password_without_hashing() {
    let app = proxied_app(|_| {}).await;
    for _ in 0..5 {
        login_from(&app, "203.0.113.7", "alice", "guess").await;
    }
    let before = app.auth.hasher().stats().verifications();
    let res = login_from(&app, "203.0.113.7", "alice", "alice-password").await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        app.auth.hasher().stats().verifications(),
        before,
        "a throttled attempt costs no hash"
    );
}

#[tokio::test]
async fn the_owner_is_not_locked_out_by_an_attacker() {
    let app = proxied_app(|_| {}).await;
    let owner = "198.51.100.10";
    assert_eq!(
        login_from(&app, owner, "alice", "alice-password")
            .await
            .status(),
        200
    );
    for _ in 0..8 {
        login_from(&app, "203.0.113.66", "alice", "guess").await;
    }
    assert_eq!(
        login_from(&app, "203.0.113.66", "alice", "alice-password")
            .await
            .status(),
        429,
        "the attacker waits"
    );
    let res = login_from(&app, owner, "alice", "alice-password").await;
    assert_eq!(
        res.status(),
        200,
        "the owner, recently signed in from here, does not"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
}

#[tokio::test]
async fn unknown_accounts_are_throttled_like_real_ones() {
    let app = proxied_app(|_| {}).await;
    let mut answers = Vec::new();
    for name in ["alice", "no_such_user"] {
        let mut statuses = Vec::new();
        for i in 0..7 {
            let res = login_from(&app, &format!("203.0.113.{i}"), name, "guess").await;
            statuses.push(res.status().as_u16());
        }
        answers.push(statuses);
    }
    assert_eq!(answers[0], answers[1], "no difference tells who exists");
    assert_eq!(answers[0], [400, 400, 400, 400, 400, 429, 429]);
}

#[tokio::test]
async fn at_most_a_hundred_failures_an_hour_per_account() {
    let app = proxied_app(|c| c.auth.throttle.max_pause = Duration::from_secs(1)).await;
    let mut failures = 0;
    for i in 0..300 {
        let res = login_from(&app, &format!("203.0.113.{}", i % 250), "alice", "guess").await;
        match res.status().as_u16() {
            400 => failures += 1,
            429 => app.clock.advance(Duration::from_secs(1)),
            other => panic!("{other}"),
        }
    }
    assert_eq!(failures, 100, "the hourly cap");
    let res = login_from(&app, "203.0.113.251", "alice", "guess").await;
    assert_eq!(res.status(), 429);
    assert!(
        header(&res, "retry-after") > 60,
        "the cap lasts until the hour has passed"
    );
}

/// The attack: 40 wrong passwords for one account sent at once from 40 addresses. The throttle used
/// to look at the count before hashing and add to it after, so every one of them saw the count of
/// before the burst, was hashed and answered 400. Each attempt is now counted as it is let through,
/// before its hash: only the free ones are hashed, the rest wait (429).
#[tokio::test]
async fn a_burst_of_guesses_from_many_addresses_gets_only_the_free_attempts() {
    let app = proxied_app(|_| {}).await;
    let before = app.auth.hasher().stats().verifications();
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let request = app
                .client
                .post(app.url("/api/auth/local"))
                .header("x-forwarded-for", format!("203.0.113.{i}"))
                .json(&json!({ "identifier": "alice", "password": "guess" }));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let hashed = app.auth.hasher().stats().verifications() - before;
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let wrong = statuses.iter().filter(|s| **s == 400).count();
    assert_eq!(
        (wrong, refused),
        (5, 35),
        "five free failures, the rest refused: {statuses:?}"
    );
    assert_eq!(hashed, 5, "only the free attempts reach the hasher");
    // The burst used the account's allowance: the next guess, from anywhere, waits too.
    let res = login_from(&app, "198.51.100.77", "alice", "alice-password").await;
    assert_eq!(res.status(), 429);
}

/// The attack: a stolen access token used to guess the account's password through change-password,
/// which used to be limited only by the route limit (10 a minute per address, and from many
/// addresses not at all). Its guesses now count against the account like failed logins.
#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_throttled_with_the_account() {
    let app = proxied_app(|_| {}).await;
    let res = login_from(&app, "198.51.100.10", "alice", "alice-password").await;
    let jwt = res.json::<Value>().await.unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = |from: &str, current: &str| {
        app.client
            .post(app.url("/api/auth/change-password"))
            .header("x-forwarded-for", from)
            .bearer_auth(&jwt)
            .json(&json!({
                "currentPassword": current,
                "password": "a-new-password-1",
                "passwordConfirmation": "a-new-password-1",
            }))
            .send()
    };
    for i in 0..5 {
        let res = change(&format!("203.0.113.{i}"), "guess").await.unwrap();
        assert_error(
            res,
            400,
            "ValidationError",
            "The provided current password is invalid",
        )
        .await;
    }
    let before = app.auth.hasher().stats().verifications();
    let res = change("203.0.113.99", "alice-password").await.unwrap();
    assert_eq!(res.status(), 429, "the sixth guess waits, right or wrong");
    assert_eq!(header(&res, "retry-after"), 1);
    assert_eq!(
        app.auth.hasher().stats().verifications(),
        before,
        "a refused guess costs no hash"
    );
    // One allowance per account: the login route is paused as well, the owner's address is not.
    let res = login_from(&app, "203.0.113.100", "alice", "alice-password").await;
    assert_eq!(res.status(), 429);
    let res = login_from(&app, "198.51.100.10", "alice", "alice-password").await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// The attack: failed logins with huge identifiers. Each unknown name was kept as a throttle key of up
/// to the 64 KiB body for an hour, in a cache bounded by entries, not bytes; and each cost a hash. No
/// account has an identifier over 255 characters (usernames stop there, emails at 254), so such an
/// identifier is refused as a field error before any lookup or hash.
#[tokio::test]
async fn an_identifier_over_255_characters_is_refused_before_any_work() {
    let app = proxied_app(|_| {}).await;
    let before = app.auth.hasher().stats().verifications();
    let res = login_from(&app, "203.0.113.1", &"é".repeat(256), "guess").await;
    let error = assert_error(
        res,
        400,
        "ValidationError",
        "identifier must be at most 255 characters",
    )
    .await;
    assert_eq!(error["details"]["errors"][0]["path"], json!(["identifier"]));
    assert_eq!(app.auth.hasher().stats().verifications(), before, "no hash");
    // 255 characters is an identifier like any other.
    let res = login_from(&app, "203.0.113.1", &"é".repeat(255), "guess").await;
    assert_invalid_login(res).await;
    assert_eq!(app.auth.hasher().stats().verifications(), before + 1);
}

/// Statuses and `Retry-After`s of `attempts` (identifier, password) made in turn from fresh
/// addresses, on a fresh app that has `alice` or not.
async fn probe(alice_exists: bool, attempts: &[(&str, &str)]) -> Vec<(u16, Option<String>)> {
    let app = TestApp::spawn_with(|c| {
        c.transport.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.auth.throttle.enabled = true;
    })
    .await;
    if alice_exists {
        app.create_user("alice", |_| {}).await;
    }
    let mut answers = Vec::new();
    for (i, (identifier, password)) in attempts.iter().enumerate() {
        let res = login_from(&app, &format!("203.0.113.{i}"), identifier, password).await;
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        answers.push((res.status().as_u16(), retry));
    }
    answers
}

/// The attack: five failures as `ALICE` (no such username: usernames match exactly), then one as
/// `alice`. Failures of an unknown name counted for its lower-cased spelling, those of an account for
/// the account: so a `429` said "no alice here" and a `400` said "alice exists". The throttle key of
/// an account is now its lower-cased username, which is what every other spelling of it maps to when
/// it matches no account, and what its email maps to: whatever the spelling, the answers are the same
/// whether the account exists or not.
#[tokio::test]
async fn failures_in_another_casing_tell_nothing_about_who_exists() {
    for (first, last) in [
        ("ALICE", "alice"),
        ("ALICE", "aLiCe"),
        ("alice", "ALICE"),
        ("Alice@Example.com", "alice@example.com"),
        ("alice@example.com", "ALICE@EXAMPLE.COM"),
    ] {
        let mut attempts = vec![(first, "guess"); 5];
        attempts.push((last, "guess"));
        let present = probe(true, &attempts).await;
        let absent = probe(false, &attempts).await;
        assert_eq!(
            present, absent,
            "{first} then {last}: the answers tell whether alice exists"
        );
    }
}

#[tokio::test]
async fn login_throttling_can_be_turned_off() {
    let app = TestApp::spawn_with(|c| c.auth.throttle.enabled = false)
        .await
        .with_user("alice")
        .await;
    for _ in 0..20 {
        assert_eq!(app.login("alice", "guess").await.status(), 400);
    }
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
}

// ---- HTTP hygiene ----

#[tokio::test]
async fn cors_is_off_by_default_and_exact_when_configured() {
    let app = TestApp::spawn().await;
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/local"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let res = preflight(&app, "https://app.example.com").await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));

    let app =
        TestApp::spawn_with(|c| c.transport.cors_origins = vec!["https://app.example.com".into()])
            .await;
    let res = preflight(&app, "https://app.example.com").await.unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = preflight(&app, "https://evil.example.com").await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn slow_requests_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        TestApp::spawn_with(|c| c.transport.request_timeout = Duration::from_millis(300)).await;
    // Headers sent, the promised body never comes.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/auth/local HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    // The whole answer: the server closes the connection after it.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered before the client gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // In the envelope, like every other error, with the headers every response carries.
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(
        body,
        serde_json::json!({"data": null, "error": {"status": 408, "name": "RequestTimeoutError",
            "message": "Request Timeout", "details": {}}})
    );
}

/// Sends `request` on a new connection and returns the start of the answer, or `None` when nothing
/// arrives within `wait`.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    wait: Duration,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.unwrap();
    let mut answer = vec![0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut answer)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&answer[..n]).into_owned()),
        Ok(Err(_)) | Err(_) => None,
    }
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn oversized_headers_are_refused_with_431() {
    let app = TestApp::spawn().await;
    let big = "a".repeat(20 * 1024);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {big}\r\n\r\n");
    let head = exchange(&mut stream, request.as_bytes(), Duration::from_secs(5))
        .await
        .expect("an answer");
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    // Headers just under the default cap still work.
    let fits = "a".repeat(15 * 1024);
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-filler", fits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_header_cap_is_configurable() {
    let app = TestApp::spawn_with(|c| c.transport.connections.max_header_bytes = 64 * 1024).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-filler", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = TestApp::spawn_with(|c| c.transport.connections.max_connections = 2).await;
    let mut first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    for stream in [&mut first, &mut second] {
        let head = exchange(stream, HEALTH, Duration::from_secs(5)).await;
        assert!(head.is_some_and(|h| h.starts_with("HTTP/1.1 200")));
    }
    // Both kept alive: a third connection is not served...
    let mut third = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let waiting = exchange(&mut third, HEALTH, Duration::from_millis(500)).await;
    assert_eq!(waiting, None, "a third connection was served past the cap");
    // ...until one of the two goes away; then its request, already sent, is answered.
    drop(first);
    use tokio::io::AsyncReadExt;
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer))
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn_with(|c| {
        c.transport.connections.header_read_timeout = Duration::from_millis(300)
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The request line and one header, then silence (slow-loris).
    let started = exchange(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(started, None);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was still open after 5 s");
}

/// The hosted reset form (`POST /reset-password`) performs what `POST /api/auth/reset-password` does,
/// so it is limited too, in the same bucket: without that, 14 form posts in a row from one address
/// all got 400 while the API route answered 429 from the 11th, a second unlimited way to try codes.
#[tokio::test]
async fn the_hosted_reset_form_is_limited_in_the_api_routes_bucket() {
    let app = limited_app().await;
    let form = |code: String| {
        app.client
            .post(app.url("/reset-password"))
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "code={code}&password=a-New-password-42&passwordConfirmation=a-New-password-42"
            ))
            .send()
    };
    for i in 0..6 {
        let res = form(format!("guess-{i}")).await.unwrap();
        assert_eq!(res.status(), 400, "form post {i}");
        assert_eq!(header(&res, "x-ratelimit-limit"), 10);
        assert_eq!(header(&res, "x-ratelimit-remaining"), 9 - i);
    }
    // The API route draws on the same allowance: 4 left.
    for i in 6..10 {
        let res = app
            .post(
                "/api/auth/reset-password",
                json!({ "code": format!("guess-{i}"), "password": "a-New-password-42",
                        "passwordConfirmation": "a-New-password-42" }),
            )
            .await;
        assert_eq!(res.status(), 400, "API post {i}");
    }
    let res = form("guess-10".into()).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], LIMIT_MESSAGE);
    // Opening the form is not an attempt: the link in a mail still shows its page.
    let page = app
        .client
        .get(app.url("/reset-password?code=anything"))
        .send()
        .await
        .unwrap();
    assert_ne!(page.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// How a limited route is called: enough for it to do its work, whatever the answer.
struct LimitedCall {
    path: &'static str,
    /// The bucket it counts in, as `limited_routes()` names it.
    bucket: &'static str,
    method: reqwest::Method,
    body: Option<Value>,
    bearer: bool,
    form: Option<&'static str>,
}

fn limited_calls() -> Vec<LimitedCall> {
    use reqwest::Method;
    let call = |path, bucket, method, body: Option<Value>| LimitedCall {
        path,
        bucket,
        method,
        body,
        bearer: false,
        form: None,
    };
    vec![
        call(
            "/api/auth/local",
            "/api/auth/local",
            Method::POST,
            Some(json!({"identifier": "alice", "password": "wrong-password"})),
        ),
        call(
            "/api/auth/local/register",
            "/api/auth/local/register",
            Method::POST,
            Some(
                json!({"username": "alice", "email": "alice@example.com", "password": "a-New-password-42"}),
            ),
        ),
        LimitedCall {
            bearer: true,
            ..call(
                "/api/auth/change-password",
                "/api/auth/change-password",
                Method::POST,
                Some(
                    json!({"currentPassword": "wrong-password", "password": "a-New-password-42",
                            "passwordConfirmation": "a-New-password-42"}),
                ),
            )
        },
        call(
            "/api/auth/forgot-password",
            "/api/auth/forgot-password",
            Method::POST,
            Some(json!({"email": "alice@example.com"})),
        ),
        call(
            "/api/auth/reset-password",
            "/api/auth/reset-password",
            Method::POST,
            Some(json!({"code": "guess", "password": "a-New-password-42",
                        "passwordConfirmation": "a-New-password-42"})),
        ),
        LimitedCall {
            form: Some(
                "code=guess&password=a-New-password-42&passwordConfirmation=a-New-password-42",
            ),
            ..call(
                "/reset-password",
                "/api/auth/reset-password",
                Method::POST,
                None,
            )
        },
        call(
            "/api/auth/send-email-confirmation",
            "/api/auth/send-email-confirmation",
            Method::POST,
            Some(json!({"email": "alice@example.com"})),
        ),
        call(
            "/api/connect/github",
            "/api/connect/{provider}",
            Method::GET,
            None,
        ),
        call(
            "/api/connect/github/callback?code=x&state=y",
            "/api/connect/{provider}/callback",
            Method::GET,
            None,
        ),
    ]
}

/// Every path that performs a limited action, the hosted reset form included: ten answered with the
/// limit's headers, the eleventh refused with `429 RateLimitError` and `Retry-After`. Failures are
/// collected and reported by path, so one broken route does not hide another. The table must name
/// every limited bucket. `GET /api/auth/{provider}/callback` is not limited, as in Strapi: it trades a
/// random one-time code bound to the browser that finished the provider's sign-in, not a secret a
/// client could guess.
#[tokio::test]
async fn every_limited_route_takes_ten_a_minute_then_answers_429() {
    let calls = limited_calls();
    let mut buckets: Vec<String> = calls.iter().map(|c| c.bucket.to_owned()).collect();
    buckets.sort();
    buckets.dedup();
    assert_eq!(
        buckets,
        keyway::http::limited_routes(),
        "a limited route without a row here, or a row for a route that is not limited"
    );
    let mut failures = Vec::new();
    for call in &calls {
        // A fresh app per path: each starts with a full bucket. The token is made with the limits
        // off, so it costs no request from any bucket.
        let app = TestApp::spawn().await.with_user("alice").await;
        let token = app.token_for("alice").await;
        let mut config = app.config.clone();
        config.auth.rate_limits.enabled = true;
        let app = app.restart_with(config).await;
        let send = || {
            let mut req = app
                .client
                .request(call.method.clone(), app.url(call.path))
                .header("sec-fetch-site", "same-origin");
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            if let Some(form) = call.form {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form);
            }
            if call.bearer {
                req = req.bearer_auth(&token);
            }
            req.send()
        };
        let mut failed = None;
        for i in 0..10 {
            let res = send().await.unwrap();
            let remaining = res
                .headers()
                .get("x-ratelimit-remaining")
                .map(|v| v.to_str().unwrap().to_owned());
            if res.status() == StatusCode::TOO_MANY_REQUESTS
                || remaining != Some((9 - i).to_string())
            {
                failed = Some(format!(
                    "{}: request {} got {} with X-RateLimit-Remaining {remaining:?}",
                    call.path,
                    i + 1,
                    res.status()
                ));
                break;
            }
        }
        if failed.is_none() {
            let res = send().await.unwrap();
            let headers = res.headers().clone();
            let status = res.status();
            let body: Value = res.json().await.unwrap_or_default();
            let refused = status == StatusCode::TOO_MANY_REQUESTS
                && body["error"]["name"] == "RateLimitError"
                && body["error"]["message"] == LIMIT_MESSAGE
                && headers.contains_key("retry-after")
                && headers.get("x-ratelimit-limit").is_some_and(|v| v == "10")
                && headers
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v == "0")
                && headers.contains_key("x-ratelimit-reset");
            if !refused {
                failed = Some(format!(
                    "{}: the 11th request got {status} {body} with headers {headers:?}",
                    call.path
                ));
            }
        }
        failures.extend(failed);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Captures what the server logs at `warn` and above while the guard lives. Tests run on one thread
/// (tokio's current-thread runtime), and so does the server they spawn, so a thread-local subscriber
/// sees the server's requests.
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .finish();
        (Self(buffer), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The limits' state goes missing under the running server (its tables dropped through the test's
/// own connection). On PostgreSQL, where that state lives in the database, requests past both the
/// route limit and the account's free failures go through uncounted and each miss is logged. On
/// SQLite one process keeps it in memory, so the same fault changes nothing.
#[tokio::test]
async fn the_limits_fail_open_when_the_database_cannot_answer_for_them() {
    let (logs, _guard) = Logs::capture();
    let app = TestApp::spawn_with(|c| {
        c.auth.rate_limits.enabled = true;
        c.auth.throttle.enabled = true;
    })
    .await
    .with_user("alice")
    .await;
    let on_postgres = matches!(app.db().await, TestDb::Postgres(_));
    with_db!(app.db().await, |pool| {
        for drop in ["DROP TABLE rate_windows", "DROP TABLE throttle_buckets"] {
            sqlx::query(drop).execute(pool).await.unwrap();
        }
    });
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.login("alice", "wrong-password").await.status().as_u16());
    }
    if on_postgres {
        // Twelve failures: past the route's 10 and the account's 5 free ones, and none refused.
        assert_eq!(statuses, [400; 12]);
        let res = app.login("alice", "alice-password").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            !res.headers().contains_key("retry-after"),
            "an uncounted request is not told to wait"
        );
        let said = logs.text();
        assert!(
            said.contains("rate-limit state unavailable; not limiting"),
            "{said}"
        );
        assert!(
            said.contains("throttle state unavailable; not throttling"),
            "{said}"
        );
    } else {
        // The account throttle pauses after five failures; the route limit refuses the 11th.
        assert_eq!(statuses[..5], [400; 5]);
        assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
        assert!(!logs.text().contains("unavailable"), "{}", logs.text());
    }
}

/// README "Per-account throttling": a client that logged in in the last 30 days keeps a bucket of its
/// own. Just before the 30 days it still gets in while an attacker has paused the account; just
/// after, it shares the paused bucket.
#[tokio::test]
async fn a_trusted_client_keeps_its_own_bucket_for_thirty_days_and_no_longer() {
    const DAY: u64 = 86_400;
    let owner = "198.51.100.10";
    let attacker = "203.0.113.66";
    for (offset, expected, when) in [
        (30 * DAY - 60, 200, "a minute before the 30 days"),
        (30 * DAY + 60, 429, "a minute after the 30 days"),
    ] {
        let app = proxied_app(|_| {}).await;
        assert_eq!(
            login_from(&app, owner, "alice", "alice-password")
                .await
                .status(),
            200
        );
        app.clock.advance(Duration::from_secs(offset));
        for _ in 0..8 {
            login_from(&app, attacker, "alice", "guess").await;
        }
        assert_eq!(
            login_from(&app, attacker, "alice", "alice-password")
                .await
                .status(),
            429,
            "{when}: the account is paused"
        );
        assert_eq!(
            login_from(&app, owner, "alice", "alice-password")
                .await
                .status(),
            expected,
            "{when}: the owner's login"
        );
    }
}
