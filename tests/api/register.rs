//! `POST /api/auth/local/register`.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn signup(username: &str, email: &str, password: &str) -> Value {
    json!({ "username": username, "email": email, "password": password })
}

#[tokio::test]
async fn register_returns_a_working_jwt_and_the_user() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/api/auth/local/register",
            signup("dave", "Dave@Example.com", "dave-password"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["username"], "dave");
    assert_eq!(user["email"], "dave@example.com", "stored lower-cased");
    assert_eq!(user["provider"], "local");
    assert_eq!(user["confirmed"], true);
    assert_eq!(user["blocked"], false);
    assert_eq!(user["role"]["type"], "authenticated");
    assert!(user["id"].is_i64(), "numeric id");

    let jwt = body["jwt"].as_str().unwrap();
    let me: Value = app.me(jwt).await.json().await.unwrap();
    assert_eq!(me["username"], "dave");
    assert_eq!(
        app.login("DAVE@example.com", "dave-password")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_password_is_stored_as_argon2id_only() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/auth/local/register",
        signup("dave", "dave@example.com", "dave-password"),
    )
    .await;
    let stored: String = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT password_hash FROM users"
    )
    .fetch_one(db)
    .await
    .unwrap());
    assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
    assert!(!stored.contains("dave-password"));
}

#[tokio::test]
async fn taken_email_or_username_is_refused() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let cases = [
        signup("someone_else", "alice@example.com", "unusual-pass-1"),
        signup("someone_else", "ALICE@example.com", "unusual-pass-1"),
        signup("alice", "other@example.com", "unusual-pass-1"),
        // An email may not be taken as a username, nor a username as an email (as in Strapi).
        signup("alice@example.com", "fresh@example.com", "unusual-pass-1"),
    ];
    for case in cases {
        let res = app.post("/api/auth/local/register", case.clone()).await;
        assert_eq!(res.status(), 400, "{case}");
        assert_eq!(
            res.text().await.unwrap(),
            r#"{"data":null,"error":{"status":400,"name":"ApplicationError","message":"Email or Username are already taken","details":{}}}"#,
            "{case}"
        );
    }
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_account() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = app.client.clone();
        let url = app.url("/api/auth/local/register");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&signup(
                    &format!("racer{i}"),
                    "race@example.com",
                    "unusual-pass-1",
                ))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            200 => ok += 1,
            400 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1);
    let count: i64 = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT COUNT(*) FROM users"
    )
    .fetch_one(db)
    .await
    .unwrap());
    assert_eq!(count, 1);
}

#[tokio::test]
async fn unknown_keys_are_refused_as_strapi_5_does() {
    let app = TestApp::spawn().await;
    let mut body = signup("eve", "eve@example.com", "eve-password");
    body["confirmed"] = json!(true);
    body["role"] = json!(1);
    assert_error(
        app.post("/api/auth/local/register", body).await,
        400,
        "ValidationError",
        "Invalid parameters: confirmed, role",
    )
    .await;
    let count: i64 = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT COUNT(*) FROM users"
    )
    .fetch_one(db)
    .await
    .unwrap());
    assert_eq!(count, 0, "nothing was created");
}

#[tokio::test]
async fn field_rules_give_strapis_messages() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.post(
            "/api/auth/local/register",
            signup("shorty", "shorty@example.com", "abc"),
        )
        .await,
        400,
        "ValidationError",
        "password must be at least 8 characters",
    )
    .await;
    assert_eq!(
        err["details"]["errors"][0],
        json!({"path": ["password"], "message": "password must be at least 8 characters", "name": "ValidationError"}),
        "same as Strapi, minus the echoed password"
    );

    let err = assert_error(
        app.post(
            "/api/auth/local/register",
            signup("ok_name", "not-an-email", "unusual-pass-1"),
        )
        .await,
        400,
        "ValidationError",
        "email must be a valid email",
    )
    .await;
    assert_eq!(err["details"]["errors"][0]["value"], "not-an-email");

    assert_error(
        app.post(
            "/api/auth/local/register",
            signup("ab", "ab@example.com", "unusual-pass-1"),
        )
        .await,
        400,
        "ValidationError",
        "username must be at least 3 characters",
    )
    .await;

    let err = assert_error(
        app.post("/api/auth/local/register", json!({})).await,
        400,
        "ValidationError",
        "3 errors occurred",
    )
    .await;
    let paths: Vec<&str> = err["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"][0].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["email", "username", "password"]);
}

#[tokio::test]
async fn minimum_password_length_is_configurable() {
    let app = TestApp::spawn_with(|c| c.auth.password_min_chars = 12).await;
    assert_error(
        app.post(
            "/api/auth/local/register",
            signup("frank", "frank@example.com", "elevenchars"),
        )
        .await,
        400,
        "ValidationError",
        "password must be at least 12 characters",
    )
    .await;
    assert_eq!(
        app.post(
            "/api/auth/local/register",
            signup("frank", "frank@example.com", "twelve-chars")
        )
        .await
        .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn long_passwords_are_kept_whole() {
    // bcrypt would silently cut at 72 bytes; argon2id with a 1024-byte bound must not.
    let app = TestApp::spawn().await;
    let long = "x".repeat(100);
    let res = app
        .post(
            "/api/auth/local/register",
            signup("longpw", "longpw@example.com", &long),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let truncated = "x".repeat(72);
    let res = app.login("longpw", &truncated).await;
    assert_invalid_login(res).await;
    assert_eq!(app.login("longpw", &long).await.status(), StatusCode::OK);
    assert_error(
        app.post(
            "/api/auth/local/register",
            signup("toolong", "toolong@example.com", &"y".repeat(1025)),
        )
        .await,
        400,
        "ValidationError",
        "password must be at most 1024 bytes",
    )
    .await;
}

#[tokio::test]
async fn registration_can_be_disabled() {
    let app = TestApp::spawn_with(|c| c.auth.allow_register = false).await;
    assert_error(
        app.post(
            "/api/auth/local/register",
            signup("gina", "gina@example.com", "gina-password"),
        )
        .await,
        400,
        "ApplicationError",
        "Register action is currently disabled",
    )
    .await;
}

#[tokio::test]
async fn the_default_role_is_configurable() {
    let app = TestApp::spawn_with(|c| c.auth.default_role = "public".into()).await;
    let body: Value = app
        .post(
            "/api/auth/local/register",
            signup("hank", "hank@example.com", "hank-password"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["role"]["type"], "public");
    assert_eq!(body["user"]["role"]["name"], "Public");
}

#[tokio::test]
async fn a_missing_default_role_is_reported() {
    let app = TestApp::spawn_with(|c| c.auth.default_role = "no-such-role".into()).await;
    assert_error(
        app.post(
            "/api/auth/local/register",
            signup("ivan", "ivan@example.com", "ivan-password"),
        )
        .await,
        400,
        "ApplicationError",
        "Impossible to find the default role",
    )
    .await;
}

#[tokio::test]
async fn with_email_confirmation_register_returns_no_jwt() {
    let app = TestApp::spawn_with(|c| c.auth.email_confirmation = true).await;
    let res = app
        .post(
            "/api/auth/local/register",
            signup("judy", "judy@example.com", "judy-password"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("jwt").is_none(), "{body}");
    assert_eq!(body["user"]["confirmed"], false);
    assert_error(
        app.login("judy", "judy-password").await,
        400,
        "ApplicationError",
        "Your account email is not confirmed",
    )
    .await;
}
