//! `GET /api/users/me`: the secured query of the custom-login flow, and every way a token is refused.

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

const INVALID: &str = "Missing or invalid credentials";

async fn assert_unauthorized(res: reqwest::Response, message: &str) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_error(res, 401, "UnauthorizedError", message).await;
    let challenge = challenge.expect("401 carries WWW-Authenticate");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

/// An app whose tokens are HS256 with [`TEST_SECRET`], so tests can mint tokens of their own.
async fn hs256_app() -> TestApp {
    TestApp::spawn_with(|c| c.tokens.secret = Some(SecretString::from(TEST_SECRET)))
        .await
        .with_user("alice")
        .await
}

fn mint(claims: &Value, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs256".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The claims of a freshly issued token, to alter one at a time.
async fn real_claims(app: &TestApp) -> Value {
    jwt_payload(&app.token_for("alice").await)
}

#[tokio::test]
async fn a_valid_token_returns_the_bare_user() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let res = app.me(&token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"]["name"], "Authenticated");
    assert!(
        user.get("data").is_none(),
        "bare object, not wrapped in data"
    );
}

#[tokio::test]
async fn no_token_is_forbidden() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"data":null,"error":{"status":403,"name":"ForbiddenError","message":"Forbidden","details":{}}}"#
    );
}

#[tokio::test]
async fn a_non_bearer_header_is_ignored_as_in_strapi() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    for header in [
        format!("Token {token}"),
        format!("Bearer {token} extra"),
        "Bearer".into(),
    ] {
        let res = app
            .client
            .get(app.url("/api/users/me"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "ForbiddenError", "Forbidden").await;
    }
    // The scheme is case-insensitive.
    let res = app
        .client
        .get(app.url("/api/users/me"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn garbage_is_unauthorized() {
    let app = TestApp::spawn().await;
    for token in [
        "garbage",
        "a.b.c",
        "...",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "ä.ö.ü",
    ] {
        assert_unauthorized(app.me(token).await, INVALID).await;
    }
}

#[tokio::test]
async fn tampered_and_truncated_tokens_are_unauthorized() {
    let app = TestApp::spawn().await.with_user("alice").await;
    app.create_user("mallory", |_| {}).await;
    let token = app.token_for("mallory").await;
    let parts: Vec<&str> = token.split('.').collect();

    // Payload changed to another user's id, old signature kept.
    let mut claims = jwt_payload(&token);
    claims["id"] = json!(1);
    claims["sub"] = json!("1");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    assert_unauthorized(app.me(&forged).await, INVALID).await;

    // One signature character flipped.
    // (Not the last character: its low bits are padding in an 86-character Ed25519 signature.)
    let mut sig = parts[2].to_owned();
    let at = sig.len() - 2;
    let flipped = if &sig[at..at + 1] == "A" { "B" } else { "A" };
    sig.replace_range(at..at + 1, flipped);
    let flipped = format!("{}.{}.{sig}", parts[0], parts[1]);
    assert_unauthorized(app.me(&flipped).await, INVALID).await;

    // Truncated.
    assert_unauthorized(app.me(&token[..token.len() - 5]).await, INVALID).await;
    assert_unauthorized(app.me(&format!("{}.{}", parts[0], parts[1])).await, INVALID).await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let claims = real_claims(&app).await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": jwt_header(&app.token_for("alice").await)["kid"]});
        let token = format!(
            "{}.{}.",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        assert_unauthorized(app.me(&token).await, INVALID).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // Algorithm confusion: a verifier that let the token pick its algorithm would check this HMAC
    // with the Ed25519 public key bytes as the secret.
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let kid = jwt_header(&token)["kid"].as_str().unwrap().to_owned();
    let public: Vec<u8> = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT public_raw FROM signing_keys"
    )
    .fetch_one(db)
    .await
    .unwrap());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid);
    let forged = jsonwebtoken::encode(
        &header,
        &jwt_payload(&token),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_unauthorized(app.me(&forged).await, INVALID).await;
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let app = hs256_app().await;
    let mut claims = real_claims(&app).await;
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    assert_unauthorized(app.me(&mint(&claims, TEST_SECRET)).await, INVALID).await;

    // The same claims with a future exp are accepted: the refusal above is about exp alone.
    claims["exp"] = json!(now + 3600);
    assert_eq!(
        app.me(&mint(&claims, TEST_SECRET)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_future_nbf_is_refused() {
    let app = hs256_app().await;
    let mut claims = real_claims(&app).await;
    claims["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
    assert_unauthorized(app.me(&mint(&claims, TEST_SECRET)).await, INVALID).await;
}

#[tokio::test]
async fn wrong_issuer_audience_or_type_is_refused() {
    let app = hs256_app().await;
    let base = real_claims(&app).await;
    let changes: [(&str, Value); 4] = [
        ("iss", json!("someone-else")),
        ("aud", json!("another-app")),
        ("type", json!("refresh")),
        ("sub", json!("999")),
    ];
    for (claim, value) in changes {
        let mut claims = base.clone();
        claims[claim] = value;
        assert_unauthorized(app.me(&mint(&claims, TEST_SECRET)).await, INVALID).await;
    }
    for claim in ["iss", "aud", "exp", "sub", "sid"] {
        let mut claims = base.clone();
        claims.as_object_mut().unwrap().remove(claim);
        assert_unauthorized(app.me(&mint(&claims, TEST_SECRET)).await, INVALID).await;
    }
    assert_eq!(
        app.me(&mint(&base, TEST_SECRET)).await.status(),
        StatusCode::OK,
        "the unaltered claims pass"
    );
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = hs256_app().await;
    let claims = real_claims(&app).await;
    let other = "another-secret-another-secret-another-secret-42";
    assert_unauthorized(app.me(&mint(&claims, other)).await, INVALID).await;
}

#[tokio::test]
async fn a_token_from_another_keyway_install_is_refused() {
    let ours = TestApp::spawn().await.with_user("alice").await;
    let theirs = TestApp::spawn().await.with_user("alice").await;
    let foreign = theirs.token_for("alice").await;
    assert_unauthorized(ours.me(&foreign).await, INVALID).await;
}

#[tokio::test]
async fn unknown_or_hostile_kid_is_refused() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let rest = token.split_once('.').unwrap().1;
    for kid in ["nope", "' OR 1=1 --", "../../etc/passwd", ""] {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
        let altered = format!("{}.{rest}", B64.encode(header.to_string()));
        assert_unauthorized(app.me(&altered).await, INVALID).await;
    }
}

#[tokio::test]
async fn a_token_whose_session_is_gone_is_refused() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let sid = jwt_payload(&token)["sid"].as_str().unwrap().to_owned();
    with_db!(app.db().await, |db| {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(&sid)
            .execute(db)
            .await
            .unwrap();
    });
    // A restart starts with empty caches, so the check reaches the database.
    let app = app.restart().await;
    assert_unauthorized(app.me(&token).await, INVALID).await;
}

#[tokio::test]
async fn a_token_whose_session_is_revoked_is_refused_on_the_next_request() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let other = app.token_for("alice").await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK, "cached now");
    let sid = jwt_payload(&token)["sid"].as_str().unwrap().to_owned();
    app.auth
        .sessions()
        .revoke(keyway::store::Revoke::Session(sid), "test")
        .await
        .unwrap();
    assert_unauthorized(app.me(&token).await, INVALID).await;
    assert_eq!(
        app.me(&other).await.status(),
        StatusCode::OK,
        "only that session ends"
    );
}

#[tokio::test]
async fn a_session_of_another_user_does_not_validate_a_token() {
    let app = hs256_app().await;
    app.create_user("bob", |_| {}).await;
    let bob_sid = jwt_payload(&app.token_for("bob").await)["sid"].clone();
    let mut claims = real_claims(&app).await;
    claims["sid"] = bob_sid;
    assert_unauthorized(app.me(&mint(&claims, TEST_SECRET)).await, INVALID).await;
}

#[tokio::test]
async fn blocked_users_tokens_stop_working() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    app.auth.admin().set_blocked("alice", true).await.unwrap();
    assert_unauthorized(app.me(&token).await, "Invalid credentials").await;
    // Blocking ended her sessions: unblocking lets her log in again, not revive old tokens.
    app.auth.admin().set_blocked("alice", false).await.unwrap();
    assert_unauthorized(app.me(&token).await, INVALID).await;
    let fresh = app.token_for("alice").await;
    assert_eq!(app.me(&fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleted_users_tokens_stop_working() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    app.auth.admin().delete_user("alice").await.unwrap();
    assert_unauthorized(app.me(&token).await, "Invalid credentials").await;
}

#[tokio::test]
async fn tokens_survive_a_restart() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let app = app.restart().await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}
