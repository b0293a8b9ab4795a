//! Several `keyway serve` processes on one PostgreSQL database, as behind a load balancer: what one
//! node ends, every node refuses, pushed by `NOTIFY` (the poll is set to a minute here so it cannot
//! be what delivers), the database alone decides who registers first, and a node killed mid-burst
//! loses nothing it acknowledged.

use crate::cli::{Server, keyway, serve, tempdir};
use crate::testdb::PgDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bound on every wait here: generous for a loaded two-core machine, and far below the minute after
/// which the poll, or a cached session's own expiry, would refuse a token anyway. So a refusal within
/// it was pushed; how fast it came is not what these tests judge.
const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// A node on `db`, polling the invalidation log only once a minute, without route rate limits (the
/// tests send bursts from one address) and with cheap argon2 settings.
async fn node(db: &PgDatabase, dir: &Path) -> Server {
    node_with(
        db,
        dir,
        &[
            ("KEYWAY_RATE_LIMIT", "false"),
            ("KEYWAY_LOGIN_THROTTLE", "false"),
        ],
    )
    .await
}

/// A node on `db` with the defaults (rate limits and throttling on) plus `env`.
async fn node_with(db: &PgDatabase, dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = serve(keyway(dir), &[]);
    cmd.env("KEYWAY_DATABASE_URL", db.url_str())
        .env("KEYWAY_INVALIDATION_POLL", "60s");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start(cmd).await
}

async fn register(node: &Server, name: &str, email: &str) -> reqwest::Response {
    let body = json!({ "username": name, "email": email, "password": format!("{name}-pass-9f3k") });
    node.post("/api/auth/local/register", body).await
}

/// Registers `name` on `node` and returns the access token.
async fn registered(node: &Server, name: &str) -> String {
    let res = register(node, name, &format!("{name}@example.com")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["jwt"].as_str().expect("a token").to_owned()
}

async fn logout(node: &Server, jwt: &str) {
    let req = node
        .client()
        .post(node.url("/api/auth/logout"))
        .bearer_auth(jwt);
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
}

/// `node`'s invalidation feed as `/readyz` shows it: its state and how often it has connected.
async fn feed(node: &Server) -> (String, u64) {
    let res = node.client().get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let feed = &body["invalidation_feed"];
    (
        feed["state"].as_str().expect("a feed state").to_owned(),
        feed["connects"].as_u64().expect("a count of connections"),
    )
}

/// Waits until `node` listens for invalidations on a connection made after its first `after`, and
/// returns how many it has made.
async fn listening(node: &Server, after: u64) -> u64 {
    let since = Instant::now();
    loop {
        let (state, connects) = feed(node).await;
        if state == "listening" && connects > after {
            return connects;
        }
        assert!(
            since.elapsed() < DEADLINE,
            "not listening on a connection after its first {after} within {DEADLINE:?}: \
             {state}, {connects} connection(s)"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `node` refuses `jwt`, which it accepted until now; fails after [`DEADLINE`].
async fn refused(node: &Server, jwt: &str, why: &str) {
    let since = Instant::now();
    loop {
        let status = node.me(jwt).await.status();
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK, "neither accepted nor refused");
        assert!(
            since.elapsed() < DEADLINE,
            "still accepted {DEADLINE:?} after {why}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn a_logout_on_one_node_is_pushed_to_the_other() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let a = node(&db, dir.path()).await;
    let b = node(&db, dir.path()).await;
    // Listening before anything happens: a feed opened later would clear B's caches and refuse
    // the token without any push.
    listening(&b, 0).await;
    let jwt = registered(&a, "alice").await;
    // B has the token, its session and its user cached: only an invalidation can change its mind.
    for _ in 0..3 {
        assert_eq!(b.me(&jwt).await.status(), StatusCode::OK);
    }

    logout(&a, &jwt).await;
    refused(&b, &jwt, "the logout on node A").await;
    assert_eq!(a.me(&jwt).await.status(), StatusCode::UNAUTHORIZED);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_block_made_elsewhere_is_pushed_to_a_running_node() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let a = node(&db, dir.path()).await;
    let b = node(&db, dir.path()).await;
    listening(&a, 0).await;
    assert_eq!(
        register(&b, "bob", "bob@example.com").await.status(),
        StatusCode::OK
    );
    let jwt = a.token("bob", "bob-pass-9f3k").await;
    assert_eq!(a.me(&jwt).await.status(), StatusCode::OK);

    // Blocked through node B's database by the admin command, as an operator would.
    let mut block = keyway(dir.path());
    block
        .env("KEYWAY_DATABASE_URL", db.url_str())
        .args(["user", "block", "bob"]);
    let out = crate::cli::run(block, "").await;
    assert!(out.status.success(), "{}", crate::cli::stderr(&out));
    refused(&a, &jwt, "the block by the admin command").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_hundred_registrations_of_one_email_across_two_nodes_make_one_account() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let a = node(&db, dir.path()).await;
    let b = node(&db, dir.path()).await;
    // All in flight at once, alternating between the nodes.
    let attempts: Vec<_> = (0..100)
        .map(|i| {
            let target = if i % 2 == 0 { &a } else { &b };
            let (client, url) = (target.client(), target.url("/api/auth/local/register"));
            tokio::spawn(async move {
                let name = format!("racer{i}");
                let body = json!({
                    "username": name,
                    "email": "race@example.com",
                    "password": format!("{name}-pass-9f3k"),
                });
                let res = client.post(url).json(&body).send().await.unwrap();
                (res.status(), res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut results = Vec::new();
    for attempt in attempts {
        results.push(attempt.await.unwrap());
    }
    let winners: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{} registrations succeeded",
        winners.len()
    );
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["error"]["message"], "Email or Username are already taken",
            "{body}"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_node_killed_during_a_burst_of_registrations_loses_nothing_it_acknowledged() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let mut victim = node(&db, dir.path()).await;
    let client = victim.client();
    let url = victim.url("/api/auth/local/register");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let burst: Vec<_> = (0..60)
        .map(|i| {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            tokio::spawn(async move {
                // Spread over the kill: some finish before it, some are cut off.
                tokio::time::sleep(Duration::from_millis(i * 10)).await;
                let name = format!("burst{i}");
                let body = json!({
                    "username": name,
                    "email": format!("{name}@example.com"),
                    "password": format!("{name}-pass-9f3k"),
                });
                let ok = matches!(
                    client.post(&url).json(&body).send().await,
                    Ok(res) if res.status() == StatusCode::OK
                );
                if ok {
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                (name, ok)
            })
        })
        .collect();
    // Killed mid-burst: once a few registrations have been acknowledged, while others are in flight.
    let started = Instant::now();
    while done.load(std::sync::atomic::Ordering::SeqCst) < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no registration finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = victim.signal_and_wait("KILL").await;
    assert!(!killed.success(), "SIGKILL ends the process");
    let mut acknowledged = Vec::new();
    for task in burst {
        let (name, ok) = task.await.unwrap();
        if ok {
            acknowledged.push(name);
        }
    }
    assert!(
        acknowledged.len() < 60,
        "every registration finished before the kill; the test proves nothing"
    );

    // Every acknowledged account is there, whole; so is every account the database kept, even one
    // whose answer the kill swallowed: each logs in with its password.
    let survivor = node(&db, dir.path()).await;
    let mut conn = sqlx::PgConnection::connect(db.url_str()).await.unwrap();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE username LIKE 'burst%'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for name in &acknowledged {
        assert!(stored.contains(name), "{name} was acknowledged but is gone");
    }
    for name in &stored {
        let res = survivor.login(name, &format!("{name}-pass-9f3k")).await;
        assert_eq!(res.status(), StatusCode::OK, "{name} cannot log in");
    }
    survivor.stop().await;
}

#[tokio::test]
async fn two_nodes_share_one_rate_limit() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    // The account throttle off: it would step in after five failures and hide the route limit.
    let only_limits = [("KEYWAY_LOGIN_THROTTLE", "false")];
    let a = node_with(&db, dir.path(), &only_limits).await;
    let b = node_with(&db, dir.path(), &only_limits).await;
    // Twelve attempts from one address, alternating nodes: ten pass the shared limit of ten a
    // minute, whichever node they reach; per-node counting would have let all twelve through.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let target = if i % 2 == 0 { &a } else { &b };
        let res = target.login("nobody", "wrong-password-1").await;
        statuses.push(res.status());
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 2, "{statuses:?}");
    assert_eq!(
        statuses[..10]
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        0
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn guessing_one_account_through_two_nodes_is_throttled_as_through_one() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let a = node_with(&db, dir.path(), &[("KEYWAY_RATE_LIMIT", "false")]).await;
    let b = node_with(&db, dir.path(), &[("KEYWAY_RATE_LIMIT", "false")]).await;
    assert_eq!(
        register(&a, "carol", "carol@example.com").await.status(),
        StatusCode::OK
    );
    // Five free failures in all, spread over both nodes; the sixth attempt must wait, on either.
    for i in 0..5 {
        let target = if i % 2 == 0 { &a } else { &b };
        let res = target.login("carol", "not-her-password").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "attempt {i}");
    }
    for target in [&a, &b] {
        let res = target.login("carol", "not-her-password").await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key("retry-after"));
    }
    a.stop().await;
    b.stop().await;
}

/// The attack: a burst of guesses on one account spread over two nodes at once. Each node used to
/// check the shared count before hashing and add to it after, so the whole burst passed on the count
/// of before it. The count is now taken and raised by one statement that locks the account's row:
/// the nodes together let through the free attempts and no more.
#[tokio::test]
async fn a_burst_of_guesses_through_two_nodes_gets_only_the_free_attempts() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let a = node_with(&db, dir.path(), &[("KEYWAY_RATE_LIMIT", "false")]).await;
    let b = node_with(&db, dir.path(), &[("KEYWAY_RATE_LIMIT", "false")]).await;
    assert_eq!(
        register(&a, "erin", "erin@example.com").await.status(),
        StatusCode::OK
    );
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let target = if i % 2 == 0 { &a } else { &b };
            let request = target
                .client()
                .post(target.url("/api/auth/local"))
                .json(&json!({ "identifier": "erin", "password": "not-her-password" }));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let wrong = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((wrong, refused), (5, 15), "{statuses:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_node_whose_listener_was_cut_off_reconnects_and_keeps_up() {
    let db = PgDatabase::create().await;
    let dir = tempdir();
    let a = node(&db, dir.path()).await;
    let b = node(&db, dir.path()).await;
    listening(&a, 0).await;
    let first = listening(&b, 0).await;
    let jwt = registered(&a, "dave").await;
    assert_eq!(b.me(&jwt).await.status(), StatusCode::OK);

    // The database drops every LISTEN connection, as a failover or a restart would.
    let mut admin = sqlx::PgConnection::connect(db.url_str()).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut.len(), 2, "both nodes were listening");
    listening(&b, first).await;
    assert_eq!(
        b.me(&jwt).await.status(),
        StatusCode::OK,
        "still a good token"
    );

    logout(&a, &jwt).await;
    refused(&b, &jwt, "the logout on node A, once B listened again").await;
    a.stop().await;
    b.stop().await;
}
