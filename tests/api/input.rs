//! Hostile and malformed input: every answer is a Strapi envelope, none is a 5xx or a panic.

use crate::helpers::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    // As a page of the server's own origin sends it, so every body type reaches the parser (a
    // cross-site form is refused before it: csrf.rs).
    app.client
        .post(app.url(path))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::spawn().await;
    let big = json!({"identifier": "x".repeat(70 * 1024), "password": "p"});
    assert_error(
        app.post("/api/auth/local", big).await,
        413,
        "PayloadTooLargeError",
        "Payload Too Large",
    )
    .await;
    // Just under the limit is read (and then refused for what it says, not for its size).
    let fits = json!({"identifier": "x".repeat(60 * 1024), "password": "p"});
    let res = app.post("/api/auth/local", fits).await;
    let too_long = "identifier must be at most 255 characters";
    assert_error(res, 400, "ValidationError", too_long).await;
}

#[tokio::test]
async fn malformed_json_is_a_400_envelope() {
    let app = TestApp::spawn().await;
    for body in [
        &b"{"[..],
        b"{\"identifier\":",
        b"nul",
        b"\xff\xfe",
        b"{\"a\":1}}",
    ] {
        assert_error(
            raw_post(&app, "/api/auth/local", "application/json", body.to_vec()).await,
            400,
            "BadRequestError",
            "Invalid JSON in the request body",
        )
        .await;
    }
}

#[tokio::test]
async fn non_object_json_is_a_400_envelope() {
    let app = TestApp::spawn().await;
    for body in ["[]", "\"text\"", "42", "null", "true"] {
        assert_error(
            raw_post(&app, "/api/auth/local", "application/json", body.into()).await,
            400,
            "BadRequestError",
            "The request body must be a JSON object",
        )
        .await;
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_a_400_envelope() {
    let app = TestApp::spawn().await;
    for ct in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        assert_error(
            raw_post(
                &app,
                "/api/auth/local",
                ct,
                b"identifier=a&password=b".to_vec(),
            )
            .await,
            400,
            "BadRequestError",
            "Unsupported Content-Type: send application/json",
        )
        .await;
    }
}

#[tokio::test]
async fn an_empty_body_is_validated_as_an_empty_object() {
    let app = TestApp::spawn().await;
    assert_error(
        raw_post(&app, "/api/auth/local", "application/json", Vec::new()).await,
        400,
        "ValidationError",
        "2 errors occurred",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_are_404_envelopes() {
    let app = TestApp::spawn().await;
    for path in [
        "/nope",
        "/api",
        "/api/auth",
        "/api/users/me/extra",
        "/api/auth/local/",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(res, 404, "NotFoundError", "Not Found").await;
    }
}

/// A path parameter that does not decode to UTF-8 names nothing that exists: the 404 envelope on
/// every route that takes one, never the framework's plain-text "Invalid URL" rejection.
#[tokio::test]
async fn undecodable_path_parameters_are_404_envelopes() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    for path in [
        "/api/connect/%FF",
        "/api/connect/%FF/callback",
        "/api/auth/%C3%28/callback",
        "/connect/%FF/redirect",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(res, 404, "NotFoundError", "Not Found").await;
    }
    let res = app
        .client
        .delete(app.url("/api/auth/sessions/%FF"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "NotFoundError", "Not Found").await;
}

#[tokio::test]
async fn wrong_methods_are_405_envelopes() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/auth/local"))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "MethodNotAllowedError", "Method Not Allowed").await;
    let res = app
        .client
        .delete(app.url("/api/users/me"))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "MethodNotAllowedError", "Method Not Allowed").await;
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().contains_key("x-request-id"));
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123", "propagated");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
}

/// `/readyz` says how the server hears of changes made by other processes: PostgreSQL's feed once it
/// listens, none on SQLite (the poll only).
#[tokio::test]
async fn readiness_shows_the_invalidation_feed() {
    let app = TestApp::spawn().await;
    let expected = match crate::testdb::Backend::from_env() {
        crate::testdb::Backend::Sqlite => json!({"state": "none", "connects": 0}),
        crate::testdb::Backend::Postgres => json!({"state": "listening", "connects": 1}),
    };
    // The feed opens in the background after the server starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        if body["invalidation_feed"]["state"] != "connecting" {
            assert_eq!(body["invalidation_feed"], expected, "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Random JSON-ish values, deep enough to reach every branch of the field reader.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("identifier".to_owned()),
                    Just("password".to_owned()),
                    Just("username".to_owned()),
                    Just("email".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bodies_never_cause_a_server_error() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let mut runner = TestRunner::new(PropConfig {
        cases: 150,
        ..PropConfig::default()
    });
    let strategy = (
        prop_oneof![Just("/api/auth/local"), Just("/api/auth/local/register")],
        prop_oneof![
            arbitrary_json().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
        prop_oneof![
            Just("application/json"),
            Just("application/x-www-form-urlencoded"),
            Just("text/plain"),
        ],
    );
    let mut cases = Vec::new();
    for _ in 0..150 {
        cases.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    for (path, body, ct) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let res = raw_post(&app, path, ct, body).await;
        let status = res.status();
        assert!(
            status.is_client_error() || status == StatusCode::OK,
            "{path} {ct} {shown:?} → {status}"
        );
        let body: Value = res.json().await.expect("always JSON");
        if status != StatusCode::OK {
            assert_eq!(body["data"], Value::Null);
            assert!(body["error"]["message"].is_string());
        }
    }
    // The server is still healthy afterwards.
    assert!(!app.token_for("alice").await.is_empty());
}

#[tokio::test]
async fn arbitrary_authorization_headers_never_cause_a_server_error() {
    let app = TestApp::spawn().await;
    let mut runner = TestRunner::new(PropConfig::default());
    let strategy = "(Bearer |bearer |Basic |)[ -~]{0,300}";
    for _ in 0..150 {
        let header = strategy.new_tree(&mut runner).unwrap().current();
        let res = app
            .client
            .get(app.url("/api/users/me"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert!(
            [401, 403].contains(&res.status().as_u16()),
            "{header:?} → {}",
            res.status()
        );
    }
}

/// JSON can carry U+0000, which PostgreSQL's TEXT cannot hold: on either engine a NUL in a login
/// identifier is an unknown account, in a device id it is a device id, and in a session id it is a
/// session that does not exist — never a 500.
#[tokio::test]
async fn nul_characters_are_ordinary_input_on_every_engine() {
    let app = TestApp::spawn().await.with_user("alice").await;
    assert_invalid_login(app.login("al\u{0}ice", "alice-password").await).await;

    let login = |device: &'static str| {
        app.post(
            "/api/auth/local",
            json!({"identifier": "alice", "password": "alice-password", "deviceId": device}),
        )
    };
    let res = login("tab\u{0}let").await;
    assert_eq!(res.status(), StatusCode::OK);
    let on_tablet: Value = res.json().await.unwrap();
    let on_tablet = on_tablet["jwt"].as_str().unwrap().to_owned();
    let res = login("phone").await;
    let on_phone: Value = res.json().await.unwrap();
    let on_phone = on_phone["jwt"].as_str().unwrap().to_owned();

    let res = app
        .client
        .delete(app.url("/api/auth/sessions/no%00such"))
        .bearer_auth(&on_phone)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&on_phone)
        .json(&json!({"deviceId": "tab\u{0}let"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.me(&on_tablet).await.status(),
        StatusCode::UNAUTHORIZED,
        "logging out that device ended its session"
    );
    assert_eq!(app.me(&on_phone).await.status(), StatusCode::OK);
}
