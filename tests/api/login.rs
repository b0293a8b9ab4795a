//! `POST /api/auth/local`: the login of the custom-login flow.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn login_by_username_returns_jwt_and_user() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let res = app.login("alice", "alice-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["jwt", "refreshToken", "user"],
        "Strapi 5 refresh mode's shape"
    );
    assert!(body["jwt"].as_str().unwrap().split('.').count() == 3);

    let user = &body["user"];
    let fields: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "id",
            "documentId",
            "username",
            "email",
            "provider",
            "confirmed",
            "blocked",
            "createdAt",
            "updatedAt",
            "publishedAt",
            "role"
        ]
    );
    assert_eq!(user["id"], 1);
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["provider"], "local");
    assert_eq!(user["confirmed"], true);
    assert_eq!(user["blocked"], false);
    assert_eq!(user["documentId"].as_str().unwrap().len(), 24);
    let created = user["createdAt"].as_str().unwrap();
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "Strapi's ISO format with milliseconds: {created}"
    );
    assert_eq!(
        user["role"],
        json!({"id": 1, "name": "Authenticated", "description": "Default role given to authenticated user.", "type": "authenticated"})
    );
}

#[tokio::test]
async fn the_user_object_never_carries_secrets() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let text = app
        .login("alice", "alice-password")
        .await
        .text()
        .await
        .unwrap();
    let user: Value = serde_json::from_str::<Value>(&text).unwrap()["user"].clone();
    for key in user.as_object().unwrap().keys() {
        let k = key.to_lowercase();
        assert!(
            !k.contains("password") && !k.contains("token") && !k.contains("hash"),
            "{key}"
        );
    }
    assert!(
        !text.contains("$argon2"),
        "no hash anywhere in the response"
    );
}

#[tokio::test]
async fn email_identifier_matches_case_insensitively() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let res = app.login("ALICE@Example.COM", "alice-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
}

#[tokio::test]
async fn username_identifier_is_case_sensitive() {
    let app = TestApp::spawn().await.with_user("alice").await;
    assert_invalid_login(app.login("ALICE", "alice-password").await).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let wrong = app.login("alice", "not-her-password").await;
    let unknown = app.login("nobody_here", "alice-password").await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(unknown.status(), 400);
    let wrong = wrong.text().await.unwrap();
    let unknown = unknown.text().await.unwrap();
    assert_eq!(wrong, unknown, "byte-identical bodies");
    assert_eq!(
        wrong,
        r#"{"data":null,"error":{"status":400,"name":"ValidationError","message":"Invalid identifier or password","details":{}}}"#
    );
}

#[tokio::test]
async fn unknown_users_cost_a_password_verification_too() {
    // The timing defence: an unknown identifier is checked against a dummy hash, so it does the same
    // work as a wrong password. Counted, not timed, so the test is deterministic.
    let app = TestApp::spawn().await.with_user("alice").await;
    let stats = app.auth.hasher().stats();
    let before = stats.verifications();
    app.login("nobody_here", "whatever-password").await;
    assert_eq!(stats.verifications(), before + 1, "unknown user");
    app.login("alice", "not-her-password").await;
    assert_eq!(stats.verifications(), before + 2, "wrong password");
}

#[tokio::test]
async fn missing_fields_give_yup_style_errors() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.post("/api/auth/local", json!({})).await,
        400,
        "ValidationError",
        "2 errors occurred",
    )
    .await;
    assert_eq!(
        err["details"],
        json!({"errors": [
            {"path": ["identifier"], "message": "identifier is a required field", "name": "ValidationError"},
            {"path": ["password"], "message": "password is a required field", "name": "ValidationError"}
        ]})
    );

    // Exactly Strapi 5.54's recorded answer for a missing identifier.
    let res = app
        .post("/api/auth/local", json!({"password": "appsmith_password"}))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"data":null,"error":{"status":400,"name":"ValidationError","message":"identifier is a required field","details":{"errors":[{"path":["identifier"],"message":"identifier is a required field","name":"ValidationError"}]}}}"#
    );
}

#[tokio::test]
async fn mistyped_fields_are_validation_errors() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.post(
            "/api/auth/local",
            json!({"identifier": 123, "password": "x"}),
        )
        .await,
        400,
        "ValidationError",
        "identifier must be a `string` type, but the final value was: `123`.",
    )
    .await;
    assert_eq!(err["details"]["errors"][0]["value"], 123);

    // A mistyped password is reported without echoing its value.
    let err = assert_error(
        app.post(
            "/api/auth/local",
            json!({"identifier": "alice", "password": ["secret-array"]}),
        )
        .await,
        400,
        "ValidationError",
        "password must be a `string` type, but the final value was: `[hidden]`.",
    )
    .await;
    assert!(err["details"]["errors"][0].get("value").is_none());
}

#[tokio::test]
async fn extra_login_fields_are_allowed() {
    // Strapi's login schema is not noUnknown; clients send deviceId and such.
    let app = TestApp::spawn().await.with_user("alice").await;
    let res = app
        .post(
            "/api/auth/local",
            json!({"identifier": "alice", "password": "alice-password", "deviceId": "d1"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn html_form_logins_are_read_like_strapi() {
    let app = TestApp::spawn().await.with_user("alice").await;
    // From a page of this server's own origin: a form from anywhere else is refused (csrf.rs).
    let res = app
        .client
        .post(app.url("/api/auth/local"))
        .header("origin", app.config.mail.public_url.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("identifier=alice&password=alice-password")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_passwords_are_refused_before_hashing() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let before = app.auth.hasher().stats().verifications();
    assert_error(
        app.login("alice", &"p".repeat(1025)).await,
        400,
        "ValidationError",
        "password must be at most 1024 bytes",
    )
    .await;
    assert_eq!(app.auth.hasher().stats().verifications(), before);
}

#[tokio::test]
async fn unconfirmed_account_is_told_only_after_the_right_password() {
    let app = TestApp::spawn_with(|c| c.auth.email_confirmation = true).await;
    app.create_user("carol", |u| u.confirmed = false).await;
    assert_invalid_login(app.login("carol", "wrong-password").await).await;
    assert_error(
        app.login("carol", "carol-password").await,
        400,
        "ApplicationError",
        "Your account email is not confirmed",
    )
    .await;
}

#[tokio::test]
async fn unconfirmed_accounts_log_in_when_confirmation_is_off() {
    let app = TestApp::spawn().await;
    app.create_user("carol", |u| u.confirmed = false).await;
    assert_eq!(
        app.login("carol", "carol-password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn blocked_account_is_told_only_after_the_right_password() {
    let app = TestApp::spawn().await;
    app.create_user("bob", |u| u.blocked = true).await;
    assert_invalid_login(app.login("bob", "wrong-password").await).await;
    assert_error(
        app.login("bob", "bob-password").await,
        400,
        "ApplicationError",
        "Your account has been blocked by an administrator",
    )
    .await;
}

#[tokio::test]
async fn each_login_creates_a_session_named_in_the_token() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let first = app.token_for("alice").await;
    let second = app.token_for("alice").await;
    let (a, b) = (jwt_payload(&first), jwt_payload(&second));
    assert_ne!(a["sid"], b["sid"]);
    let rows: Vec<(String, i64)> = with_db!(app.db().await, |db| {
        sqlx::query_as("SELECT id, user_id FROM sessions ORDER BY created_at")
            .fetch_all(db)
            .await
            .unwrap()
    });
    let sids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    assert!(sids.contains(&a["sid"].as_str().unwrap()));
    assert!(sids.contains(&b["sid"].as_str().unwrap()));
    assert!(rows.iter().all(|(_, uid)| *uid == 1));
}

#[tokio::test]
async fn strapi_bcrypt_hashes_log_in_and_are_upgraded_to_argon2id() {
    let app = TestApp::spawn().await.with_user("legacy").await;
    // What a Strapi database holds: bcryptjs, cost 10, `$2a$`.
    let bcrypt_hash = bcrypt::hash_with_result("strapi-era-password", 10)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    let db = app.db().await;
    with_db!(db, |db| {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE username = 'legacy'")
            .bind(&bcrypt_hash)
            .execute(db)
            .await
            .unwrap();
    });

    assert_eq!(
        app.login("legacy", "wrong-password").await.status(),
        400,
        "a bcrypt hash still refuses a wrong password"
    );
    assert_eq!(
        app.login("legacy", "strapi-era-password").await.status(),
        StatusCode::OK
    );

    // The upgrade runs beside the response.
    let stored = || async {
        with_db!(db, |db| sqlx::query_scalar::<_, String>(
            "SELECT password_hash FROM users WHERE username = 'legacy'"
        )
        .fetch_one(db)
        .await
        .unwrap())
    };
    eventually("upgraded the bcrypt hash", || async {
        stored().await.starts_with("$argon2id$")
    })
    .await;
    assert_eq!(
        app.login("legacy", "strapi-era-password").await.status(),
        StatusCode::OK,
        "the upgraded hash verifies the same password"
    );
}

/// An account whose hash is gone (single sign-on only) or empty (a blank imported one) is found, its
/// missing hash goes to the password check, and every password is wrong there: the audit trail
/// shows each attempt reached the check for this account, not a refusal before it.
#[tokio::test]
async fn accounts_without_a_password_cannot_log_in_with_one() {
    let app = TestApp::spawn().await.with_user("sso_user").await;
    let id: i64 = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT id FROM users WHERE username = 'sso_user'"
    )
    .fetch_one(db)
    .await
    .unwrap());
    let mut checked = 0;
    for stored in [None, Some("")] {
        with_db!(app.db().await, |db| {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE username = 'sso_user'")
                .bind(stored)
                .execute(db)
                .await
                .unwrap();
        });
        // The old password, the spelling of a missing value, and the shortest password there is.
        for attempt in ["sso_user-password", "null", " "] {
            let res = app.login("sso_user", attempt).await;
            assert_invalid_login(res).await;
            checked += 1;
        }
    }
    let failures = app
        .auth
        .admin()
        .audit_trail(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.kind == "login_failure"
                && e.user_id == Some(id)
                && e.detail.as_deref() == Some("wrong password")
        })
        .count();
    assert_eq!(failures, checked, "each attempt reached the password check");
}

/// An empty password never reaches an account: it is refused as a missing field, like Strapi's.
#[tokio::test]
async fn an_empty_password_is_a_missing_field() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let err = assert_error(
        app.login("alice", "").await,
        400,
        "ValidationError",
        "password is a required field",
    )
    .await;
    assert_eq!(
        err["details"],
        json!({"errors": [
            {"path": ["password"], "message": "password is a required field", "name": "ValidationError"}
        ]})
    );
}

#[tokio::test]
async fn non_local_providers_cannot_use_the_password_login() {
    let app = TestApp::spawn().await.with_user("gh_user").await;
    with_db!(app.db().await, |db| {
        sqlx::query("UPDATE users SET provider = 'github' WHERE username = 'gh_user'")
            .execute(db)
            .await
            .unwrap();
    });
    assert_invalid_login(app.login("gh_user", "gh_user-password").await).await;
}

#[tokio::test]
async fn tokens_carry_the_documented_claims() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    let claims = jwt_payload(&token);
    assert_eq!(claims["id"], 1);
    assert_eq!(claims["sub"], "1");
    assert_eq!(claims["type"], "access");
    assert_eq!(claims["iss"], "keyway");
    assert_eq!(claims["aud"], "keyway");
    assert!(
        claims["sid"].as_str().unwrap().len() >= 22,
        "≥128-bit session id"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 30 * 24 * 3600, "Strapi's default 30 days");
}

#[tokio::test]
async fn token_lifetime_is_configurable() {
    let app = TestApp::spawn_with(|c| c.tokens.ttl = std::time::Duration::from_secs(600))
        .await
        .with_user("alice")
        .await;
    let claims = jwt_payload(&app.token_for("alice").await);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
}

#[tokio::test]
async fn a_configured_secret_signs_hs256_tokens() {
    let app =
        TestApp::spawn_with(|c| c.tokens.secret = Some(secrecy::SecretString::from(TEST_SECRET)))
            .await
            .with_user("alice")
            .await;
    let token = app.token_for("alice").await;
    assert_eq!(jwt_header(&token)["alg"], "HS256");
    // An independent implementation verifies it with the shared secret.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["keyway"]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_SECRET.as_bytes()),
        &validation,
    )
    .expect("verifies with the shared secret");
    assert_eq!(data.claims["id"], 1);
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

/// An argon2 hash made with other parameters (an older configuration) is replaced at the next
/// successful login by one with the current parameters, and the password keeps working.
#[tokio::test]
async fn a_hash_with_other_argon2_parameters_is_replaced_at_the_next_login() {
    let older = keyway::auth::password::HashParams {
        m_cost_kib: 2048,
        t_cost: 2,
        p_cost: 1,
    };
    let app = TestApp::spawn_with(|c| c.hash = older)
        .await
        .with_user("alice")
        .await;
    let stored = || async {
        with_db!(app.db().await, |pool| sqlx::query_scalar::<_, String>(
            "SELECT password_hash FROM users WHERE username = 'alice'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    };
    let before = stored().await;
    assert!(
        before.starts_with("$argon2id$v=19$m=2048,t=2,p=1$"),
        "{before}"
    );

    let mut config = app.config.clone();
    config.hash = cheap_hash();
    let app = app.restart_with(config).await;
    let stored = || async {
        with_db!(app.db().await, |pool| sqlx::query_scalar::<_, String>(
            "SELECT password_hash FROM users WHERE username = 'alice'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    };
    assert_eq!(stored().await, before, "nothing changes before a login");
    assert_eq!(app.login("alice", "wrong-password").await.status(), 400);
    assert_eq!(stored().await, before, "nor after a failed one");
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
    let c = cheap_hash();
    let current = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        c.m_cost_kib, c.t_cost, c.p_cost
    );
    // The upgrade runs beside the response, so the login does not wait for a second hash.
    eventually("replaced the old hash", || async {
        stored().await.starts_with(&current)
    })
    .await;
    let after = stored().await;
    // A hash with the current parameters asks for no upgrade (`argon2id_round_trip` in
    // `auth::password` holds that decision); here a second login leaves the new hash alone.
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
    assert_eq!(stored().await, after, "re-hashed once, not at every login");
}
