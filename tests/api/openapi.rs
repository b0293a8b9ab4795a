//! The OpenAPI description: served, complete, and identical to the checked-in `docs/openapi.json`,
//! so a change to the API shows up in review as a change to that file.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

const CHECKED_IN: &str = include_str!("../../docs/openapi.json");

#[tokio::test]
async fn the_served_description_matches_the_checked_in_copy() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the document is JSON"
    );
    let served: Value = response.json().await.unwrap();
    let checked_in: Value = serde_json::from_str(CHECKED_IN).unwrap();
    assert!(
        served == checked_in,
        "docs/openapi.json is out of date: run `cargo run -- openapi > docs/openapi.json` and commit it"
    );
}

#[tokio::test]
async fn every_described_operation_is_routed() {
    let app = TestApp::spawn().await;
    let doc: Value = serde_json::from_str(CHECKED_IN).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{} paths", paths.len());
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = app.url(&path.replace("{id}", "some-id"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), url)
                .send()
                .await
                .unwrap();
            // A routed operation answers with its own errors; an unrouted one would be 404 "Not
            // Found" or 405 from the fallbacks.
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND && body["error"]["message"] == "Not Found");
            assert!(
                !unrouted,
                "{method} {path} is described but not routed ({status})"
            );
        }
    }
}

#[test]
fn keyway_openapi_prints_the_same_description() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked_in: Value = serde_json::from_str(CHECKED_IN).unwrap();
    assert_eq!(printed, checked_in);
}

/// An optional body may be left out, not sent as JSON `null`: the server refuses `null` like any body
/// that is not an object (as Strapi does), so the description must not offer it.
#[tokio::test]
async fn an_optional_body_may_be_absent_but_is_never_described_as_null() {
    let app = TestApp::spawn().await;
    let doc: Value = serde_json::from_str(CHECKED_IN).unwrap();
    let mut optional = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(body) = operation.get("requestBody") else {
                continue;
            };
            let schema = body["content"]["application/json"]["schema"].to_string();
            assert!(
                !schema.contains(r#""type":"null""#),
                "{method} {path}: the body is described as possibly null: {schema}"
            );
            if body.get("required") != Some(&Value::Bool(true)) {
                optional.push(path.clone());
            }
        }
    }
    optional.sort();
    assert_eq!(optional, ["/api/auth/logout", "/api/auth/refresh"]);
    for path in optional {
        let res = app
            .client
            .post(app.url(&path))
            .header("content-type", "application/json")
            .body("null")
            .send()
            .await
            .unwrap();
        assert_error(
            res,
            400,
            "BadRequestError",
            "The request body must be a JSON object",
        )
        .await;
    }
}
