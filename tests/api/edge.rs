//! The network edge as an attacker meets it: connections that say nothing cannot hold the server's
//! connection slots, and the address limits count by cannot be chosen by the client — not through a
//! forwarding header the proxy passes through, not by rotating through an IPv6 network, and not
//! dodged by a dual-stack socket's IPv4-mapped addresses.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT_MESSAGE: &str = "Too many requests, please try again later.";

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Far longer than any deadline configured here, far shorter than "never".
const GENEROUS: Duration = Duration::from_secs(20);

/// Reproduces: with `max_connections` sockets open and silent — some sending nothing, some only the
/// HTTP/2 preface or a part of it, one half a request line — nobody else was ever served again, not
/// even after `header_read_timeout`: protocol detection waited for bytes forever, and an HTTP/2
/// connection had no deadline at all.
#[tokio::test]
async fn idle_sockets_cannot_hold_every_connection_slot() {
    let app = TestApp::spawn_with(|c| {
        c.transport.connections.max_connections = 8;
        c.transport.connections.header_read_timeout = Duration::from_secs(1);
        c.transport.connections.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut squatters = Vec::new();
    let openings: [&[u8]; 12] = [
        b"",
        b"",
        b"",
        b"",
        H2_PREFACE,
        H2_PREFACE,
        H2_PREFACE,
        b"PRI * HTTP/2",
        b"PRI * HTTP/2",
        b"GET /heal",
        b"",
        H2_PREFACE,
    ];
    for opening in openings {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(opening).await.unwrap();
        squatters.push(stream);
    }
    let answered = tokio::time::timeout(GENEROUS, app.client.get(app.url("/healthz")).send())
        .await
        .expect("/healthz answered while the idle sockets were still open")
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    // The squatters were cut off, not merely outnumbered.
    for mut stream in squatters {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(GENEROUS, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "an idle socket is still open");
    }
}

/// Reproduces: an HTTP/1.1 keep-alive connection left idle stayed open for `header_read_timeout`,
/// however long that is, not for the configured idle time.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.transport.connections.header_read_timeout = Duration::from_secs(120);
        c.transport.connections.idle_timeout = Duration::from_millis(500);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(GENEROUS, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was still open");
}

/// The idle timeout counts from the last answer, not the last byte: a request still arriving (or being
/// worked on) keeps its connection, however slowly it comes; the request timeout bounds it instead.
#[tokio::test]
async fn a_request_in_flight_is_not_idle() {
    let app = TestApp::spawn_with(|c| {
        c.transport.connections.header_read_timeout = Duration::from_secs(1);
        c.transport.connections.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let body = json!({ "identifier": "nobody", "password": "not-the-password" }).to_string();
    let head = format!(
        "POST /api/auth/local HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body in pieces, the whole taking several idle timeouts and more than the grace a closing
    // connection gets.
    for piece in body.as_bytes().chunks(body.len().div_ceil(5)) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stream.write_all(piece).await.unwrap();
    }
    let n = tokio::time::timeout(GENEROUS, stream.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// Reproduces: an HTTP/2 connection that made a request and then went quiet stayed open forever.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let app = TestApp::spawn_with(|c| {
        c.transport.connections.header_read_timeout = Duration::from_secs(120);
        c.transport.connections.idle_timeout = Duration::from_millis(500);
    })
    .await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(app.url("/healthz"))
        .body(http_body_util::Empty::<axum::body::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    tokio::time::timeout(GENEROUS, connection)
        .await
        .expect("the idle HTTP/2 connection was still open")
        .unwrap()
        .ok();
}

/// Reproduces: shutting the server down (a restart, a deploy) waited forever for an HTTP/2 client
/// that never answers: HTTP/2's goodbye waits for the peer to answer a ping.
#[tokio::test]
async fn a_silent_http2_peer_cannot_hold_up_shutdown() {
    let mut app = TestApp::spawn_with(|c| {
        c.transport.connections.header_read_timeout = Duration::from_secs(1);
        c.transport.connections.idle_timeout = Duration::from_secs(120);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    // An empty SETTINGS frame, then HEADERS on stream 1 (END_STREAM | END_HEADERS) for `GET /`:
    // :method GET, :scheme http, :path / from the static table, :authority x as a literal.
    stream
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let block = [0x82, 0x86, 0x84, 0x41, 0x01, b'x'];
    stream
        .write_all(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1])
        .await
        .unwrap();
    stream.write_all(&block).await.unwrap();
    // Served (the answer's HEADERS frame arrives), and from now on never a word: no SETTINGS ack, no
    // ping answer.
    let answered = async {
        let mut frames = Vec::new();
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before answering");
            frames.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while frames.len() >= at + 9 {
                let len = u32::from_be_bytes([0, frames[at], frames[at + 1], frames[at + 2]]);
                let stream_id = u32::from_be_bytes(frames[at + 5..at + 9].try_into().unwrap());
                if frames[at + 3] == 1 && stream_id == 1 {
                    return;
                }
                at += 9 + len as usize;
            }
        }
    };
    tokio::time::timeout(GENEROUS, answered)
        .await
        .expect("the request was answered");
    tokio::time::timeout(GENEROUS, app.stop())
        .await
        .expect("the server stopped despite the silent peer");
    drop(stream);
}

/// Reproduces: behind a trusted proxy that appends to `X-Forwarded-For`, a client sending its own
/// `Forwarded: for=<anything>` made Keyway read that header instead, and so chose its own bucket: 15
/// logins with 15 made-up addresses were never limited.
#[tokio::test]
async fn a_client_chosen_forwarded_header_does_not_open_new_buckets() {
    let app = behind_proxy(|_| {}).await;
    for i in 0..10 {
        let forwarded = format!("for=203.0.113.{i}");
        let headers = [
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", &forwarded),
        ];
        let res = login_with(&app, &headers).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let headers = [
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=203.0.113.99"),
    ];
    let res = login_with(&app, &headers).await;
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
}

/// With `forwarded_header = "forwarded"`, the proxy's `Forwarded` names the client and a client's own
/// `X-Forwarded-For` (passed through) changes nothing.
#[tokio::test]
async fn with_forwarded_chosen_only_forwarded_is_believed() {
    let app = behind_proxy(|c| {
        c.transport.forwarded_header = keyway::config::ForwardedHeader::Forwarded;
    })
    .await;
    for i in 0..10 {
        let res = login_with(
            &app,
            &[
                ("x-forwarded-for", &format!("203.0.113.{i}")),
                ("forwarded", "for=198.51.100.1"),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let same = login_with(
        &app,
        &[
            ("x-forwarded-for", "203.0.113.99"),
            ("forwarded", "for=198.51.100.1"),
        ],
    )
    .await;
    assert_error(same, 429, "RateLimitError", LIMIT_MESSAGE).await;
    let other = login_with(&app, &[("forwarded", "for=198.51.100.2")]).await;
    assert_eq!(other.status(), StatusCode::BAD_REQUEST, "another client");
}

/// Reproduces: IPv6 clients were limited per address, so one subscriber's /64 (2^64 addresses) gave
/// unlimited buckets.
#[tokio::test]
async fn ipv6_addresses_in_one_network_share_a_bucket() {
    let app = behind_proxy(|_| {}).await;
    for i in 1..=10 {
        let res = login_with(
            &app,
            &[("x-forwarded-for", &format!("2001:db8:1:2::{i:x}"))],
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let same_network = login_with(&app, &[("x-forwarded-for", "2001:db8:1:2:ffff:1:2:3")]).await;
    assert_error(same_network, 429, "RateLimitError", LIMIT_MESSAGE).await;
    let next_network = login_with(&app, &[("x-forwarded-for", "2001:db8:1:3::1")]).await;
    assert_eq!(next_network.status(), StatusCode::BAD_REQUEST);
}

/// The prefix is configurable: at 128 every IPv6 address is a client of its own again.
#[tokio::test]
async fn the_ipv6_prefix_length_is_configurable() {
    let app = behind_proxy(|c| c.auth.ipv6_prefix_len = 128).await;
    for i in 1..=11 {
        let res = login_with(
            &app,
            &[("x-forwarded-for", &format!("2001:db8:1:2::{i:x}"))],
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
}

/// Reproduces: on a dual-stack socket an IPv4 proxy connects as `::ffff:127.0.0.1`, which never
/// matched the configured `127.0.0.0/8`, so every client behind it shared the proxy's one bucket (and
/// one login throttle bucket).
#[tokio::test]
async fn an_ipv4_mapped_peer_matches_an_ipv4_trusted_proxy() {
    let app = TestApp::spawn_on("[::]:0", |c| {
        c.transport.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.auth.rate_limits.enabled = true;
    })
    .await;
    for i in 0..11 {
        let res = login_with(&app, &[("x-forwarded-for", &format!("203.0.113.{i}"))]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "client {i}");
    }
}

/// Reproduces: the login throttle's bucket for a client that signed in recently was keyed by the
/// full IPv6 address, so an owner whose address changed within its /64 (privacy addresses rotate
/// daily) was paused along with the attacker.
#[tokio::test]
async fn the_owner_keeps_its_login_bucket_across_its_ipv6_network() {
    let app = behind_proxy(|c| {
        c.auth.rate_limits.enabled = false;
        c.auth.throttle.enabled = true;
    })
    .await
    .with_user("alice")
    .await;
    let login = |from: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/auth/local"))
                .header("x-forwarded-for", from)
                .json(&json!({ "identifier": "alice", "password": password }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(login("2001:db8:1:2::10", "alice-password").await, 200);
    for _ in 0..8 {
        login("203.0.113.66", "guess").await;
    }
    assert_eq!(login("203.0.113.66", "alice-password").await, 429);
    assert_eq!(
        login("2001:db8:1:2::11", "alice-password").await,
        200,
        "the owner, on a new address of the same network"
    );
}

/// Rate limits on, behind a trusted proxy on the loopback.
async fn behind_proxy(change: impl FnOnce(&mut keyway::Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        c.transport.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.auth.rate_limits.enabled = true;
        change(c);
    })
    .await
}

/// A failed login (400) with the given forwarding headers.
async fn login_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.post(app.url("/api/auth/local"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .json(&json!({ "identifier": "nobody", "password": "not-the-password" }))
        .send()
        .await
        .unwrap()
}
