//! What every response carries, whatever answered it: the security headers, a request id, and for a
//! handler that panicked the same opaque 500 as any internal error.

use crate::helpers::*;
use axum::routing::get;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde_json::json;

const PANIC_TEXT: &str = "secret-detail-from-a-panicking-handler";

#[tokio::test]
async fn a_panicking_handler_gets_the_opaque_500_and_the_server_keeps_serving() {
    // The route is mounted inside the real middleware stack by the test alone: the binary has none.
    let app = TestApp::spawn_tuned(
        |_| {},
        |app| {
            app.with_routes(axum::Router::new().route(
                "/test/panic",
                get(|| async {
                    panic!("{PANIC_TEXT}");
                    #[allow(unreachable_code)]
                    ""
                }),
            ))
        },
    )
    .await
    .with_user("alice")
    .await;

    let res = app
        .client
        .get(app.url("/test/panic"))
        .header("x-request-id", "panic-probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["x-request-id"],
        "panic-probe-1",
        "the request id survives the panic"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let text = res.text().await.unwrap();
    assert_eq!(
        text,
        r#"{"data":null,"error":{"status":500,"name":"InternalServerError","message":"Internal Server Error","details":{}}}"#
    );
    assert!(!text.contains(PANIC_TEXT));

    // A fresh request id is made when the client sends none.
    let res = app.client.get(app.url("/test/panic")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    assert!(!res.headers()["x-request-id"].is_empty());

    // The panic took down one request, not the server.
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
}

/// `nosniff` and `no-store` on every kind of answer: API JSON, an error envelope, a 404, a hosted
/// page, a static asset, a body the server refused to parse.
#[tokio::test]
async fn every_kind_of_response_says_nosniff_and_no_store() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let get = |path: &'static str| app.client.get(app.url(path)).send();
    let cases: Vec<(&str, reqwest::Response)> = vec![
        ("API JSON", app.login("alice", "alice-password").await),
        ("error envelope", app.login("alice", "wrong-password").await),
        (
            "unknown API path (404)",
            get("/api/nothing-here").await.unwrap(),
        ),
        ("unknown path (404)", get("/no/such/page").await.unwrap()),
        ("hosted page", get("/").await.unwrap()),
        (
            "hosted reset form",
            get("/reset-password?code=x").await.unwrap(),
        ),
        ("stylesheet", get("/assets/style.css").await.unwrap()),
        ("script", get("/assets/app.js").await.unwrap()),
        ("JWKS", get("/.well-known/jwks.json").await.unwrap()),
        (
            "unparsable body (400)",
            app.client
                .post(app.url("/api/auth/local"))
                .header(CONTENT_TYPE, "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap(),
        ),
        (
            "wrong method (405)",
            app.client
                .delete(app.url("/api/auth/local"))
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        ),
    ];
    let mut statuses = Vec::new();
    for (what, res) in cases {
        statuses.push((what, res.status().as_u16()));
        assert_eq!(
            res.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
        // The pages' assets and the public keys are the same for everyone: caches may keep them briefly.
        let cache = if ["stylesheet", "script", "JWKS"].contains(&what) {
            "public, max-age=300"
        } else {
            "no-store"
        };
        assert_eq!(
            res.headers()
                .get(CACHE_CONTROL)
                .map(|v| v.to_str().unwrap()),
            Some(cache),
            "{what}"
        );
        assert!(res.headers().contains_key("x-request-id"), "{what}");
    }
    // Each case is the kind of answer it names.
    assert_eq!(
        statuses,
        [
            ("API JSON", 200),
            ("error envelope", 400),
            ("unknown API path (404)", 404),
            ("unknown path (404)", 404),
            ("hosted page", 200),
            ("hosted reset form", 200),
            ("stylesheet", 200),
            ("script", 200),
            ("JWKS", 200),
            ("unparsable body (400)", 400),
            ("wrong method (405)", 405),
        ]
    );
}
