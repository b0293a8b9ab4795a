//! JWTs seen from outside: hostile headers and token confusion against both endpoints that take a
//! bearer token (`/api/users/me` and the forward-auth `/api/auth/verify`), every key algorithm end to
//! end and checked by an independent JOSE implementation, key rotation, and Strapi-issued tokens
//! during a migration.

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyway::auth::tokens::{KeyAlgorithm, Keys};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::time::{Instant, sleep, timeout};

const INVALID: &str = "Missing or invalid credentials";
const INVALID_USER: &str = "Invalid credentials";
const ALGORITHMS: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EdDsa,
    KeyAlgorithm::Es256,
    KeyAlgorithm::Rs256,
];
/// Bound on waits for another process (the CLI, node) or for the server's 500 ms invalidation poll:
/// generous for a loaded two-core machine, short enough that a hang fails instead of stalling.
const WAIT: Duration = Duration::from_secs(30);

// ---- requests and assertions ----

async fn forward_auth(app: &TestApp, token: Option<&str>) -> Response {
    let mut req = app.client.get(app.url("/api/auth/verify"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request sent")
}

async fn assert_unauthorized(res: Response, message: &str) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let leaked: Vec<String> = res
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("x-keyway-"))
        .map(|k| k.to_string())
        .collect();
    assert_error(res, 401, "UnauthorizedError", message).await;
    let challenge = challenge.expect("401 carries WWW-Authenticate");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(leaked.is_empty(), "a refusal names no user: {leaked:?}");
}

/// Both endpoints that take a bearer token refuse `token`, with the same answer.
async fn assert_refused(app: &TestApp, token: &str, message: &str, why: &str) {
    let res = app.me(token).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "/users/me took {why}"
    );
    assert_unauthorized(res, message).await;
    let res = forward_auth(app, Some(token)).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "/auth/verify took {why}"
    );
    assert_unauthorized(res, message).await;
}

/// Both endpoints accept `token` (the control that makes each refusal mean something).
async fn assert_accepted(app: &TestApp, token: &str, why: &str) {
    assert_eq!(
        app.me(token).await.status(),
        StatusCode::OK,
        "/users/me: {why}"
    );
    assert_eq!(
        forward_auth(app, Some(token)).await.status(),
        StatusCode::OK,
        "/auth/verify: {why}"
    );
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

async fn jwks(app: &TestApp) -> Value {
    get_json(app, "/.well-known/jwks.json").await
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("every key has a kid").to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"]
        .as_str()
        .expect("kid in header")
        .to_owned()
}

async fn user_id(app: &TestApp, name: &str) -> i64 {
    app.user(name).await.id
}

// ---- forging ----

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// A JWT whose header and payload are exactly the JSON text given (so duplicate keys survive),
/// signed by `sign` over the usual signing input.
fn forge(header: &str, payload: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

fn ed25519(key: &SigningKey) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    |input| key.sign(input).to_bytes().to_vec()
}

fn hmac(alg: &str, key: &[u8]) -> impl FnOnce(&[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let (alg, key) = (alg.to_owned(), key.to_vec());
    move |input| match alg.as_str() {
        "HS256" => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        "HS384" => {
            let mut mac = Hmac::<sha2::Sha384>::new_from_slice(&key).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        other => panic!("no HMAC for {other}"),
    }
}

fn fresh_ed25519() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Keyway's own signing key, read from its database. A token forged with it passes the signature
/// check, so when such a token is refused, the check under test is what refused it.
async fn real_key(app: &TestApp) -> (String, SigningKey) {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    // The store lists keys newest first: the one that signs.
    let keys = app.auth.store().signing_keys().await.unwrap();
    let (kid, der) = (keys[0].kid.clone(), keys[0].private_der.clone());
    (
        kid,
        SigningKey::from_pkcs8_der(&der).expect("Ed25519 PKCS#8"),
    )
}

/// `json` (an object's text) with `"key": value` added again, before or after the original.
fn with_duplicate(json: &str, key: &str, value: &Value, first: bool) -> String {
    let inner = &json[1..json.len() - 1];
    if first {
        format!("{{\"{key}\":{value},{inner}}}")
    } else {
        format!("{{{inner},\"{key}\":{value}}}")
    }
}

fn hs256_mint(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs256".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

/// An attacker's web server holding their JWKS. It only counts connections: Keyway must never
/// fetch what a token points at.
struct AttackerHost {
    base: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl AttackerHost {
    async fn start(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let body = jwks.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        Self { base, hits, task }
    }
}

impl Drop for AttackerHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- 1. attacks on /users/me and /auth/verify ----

/// An access token's `exp` is checked against the system clock, so the test clock is set back
/// instead: a token issued now looks issued that long ago. Its last accepted second is `jwt_ttl`
/// plus the 5 s leeway (README Security model); two seconds either side absorb `exp`'s whole-second
/// rounding and the real time the requests take.
#[tokio::test]
async fn an_access_token_lives_jwt_ttl_plus_the_leeway() {
    const TTL: Duration = Duration::from_secs(15 * 60);
    const LEEWAY: Duration = Duration::from_secs(5);
    let app = TestApp::spawn_with(|c| c.tokens.ttl = TTL)
        .await
        .with_user("alice")
        .await;
    app.clock.rewind(TTL + LEEWAY - Duration::from_secs(2));
    let in_time = app.token_for("alice").await;
    let claims = jwt_payload(&in_time);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        TTL.as_secs() as i64,
        "{claims}"
    );
    assert_accepted(&app, &in_time, "a token two seconds inside its lifetime").await;

    app.clock.rewind(Duration::from_secs(4));
    let late = app.token_for("alice").await;
    assert_refused(
        &app,
        &late,
        INVALID,
        "a token two seconds past its lifetime",
    )
    .await;
}

#[tokio::test]
async fn forward_auth_answers_a_valid_token_with_the_user_and_identity_headers() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let id = user_id(&app, "alice").await;
    let me: Value = app.me(&token).await.json().await.unwrap();

    let res = forward_auth(&app, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    let header = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("x-keyway-user-id"), id.to_string());
    assert_eq!(header("x-keyway-username"), "alice");
    assert_eq!(header("x-keyway-email"), "alice@example.com");
    assert_eq!(header("x-keyway-role"), "authenticated");
    assert_eq!(header("cache-control"), "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "200 OK", "{body}");
    assert_eq!(body["user"]["id"], id, "{body}");
    assert_eq!(body["user"]["role"]["type"], "authenticated", "{body}");
    assert_eq!(body["user"], me, "the same user view as /users/me");
}

#[tokio::test]
async fn forward_auth_refuses_a_request_without_a_bearer_token() {
    // Unlike /users/me (403, Strapi's public role), a proxy asking "may this pass?" needs a plain no.
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    assert_unauthorized(forward_auth(&app, None).await, INVALID).await;
    for header in [
        format!("Basic {}", b64("alice:alice-password")),
        format!("Token {token}"),
        "Bearer".to_owned(),
    ] {
        let res = app
            .client
            .get(app.url("/api/auth/verify"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_unauthorized(res, INVALID).await;
    }
}

#[tokio::test]
async fn key_pointing_headers_are_refused_and_never_fetched() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let claims = jwt_payload(&token).to_string();
    let (kid, real) = real_key(&app).await;
    assert_eq!(kid, kid_of(&token));
    let attacker = fresh_ed25519();
    let attacker_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
        "x": b64(attacker.verifying_key().to_bytes()),
    });
    let host = AttackerHost::start(json!({ "keys": [attacker_jwk] })).await;

    let plain = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string();
    assert_accepted(
        &app,
        &forge(&plain, &claims, ed25519(&real)),
        "the forging is sound",
    )
    .await;

    let hostile: [(&str, Value); 4] = [
        ("jku", json!(format!("{}/jwks.json", host.base))),
        ("x5u", json!(format!("{}/cert.pem", host.base))),
        ("jwk", attacker_jwk.clone()),
        ("x5c", json!([b64(attacker.verifying_key().to_bytes())])),
    ];
    for (member, value) in hostile {
        let mut header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
        header[member] = value;
        let header = header.to_string();
        // The header is well formed: what refuses it is Keyway's rule, not a parse error.
        let parsed = jsonwebtoken::decode_header(forge(&header, &claims, |_| vec![0; 64]))
            .unwrap_or_else(|e| panic!("{member}: {e}"));
        let named = match member {
            "jku" => parsed.jku.is_some(),
            "x5u" => parsed.x5u.is_some(),
            "jwk" => parsed.jwk.is_some(),
            _ => parsed.x5c.is_some(),
        };
        assert!(named, "{member} was not read from {header}");
        // What an attacker can make: their own key, named by the header, with Keyway's kid.
        let theirs = forge(&header, &claims, ed25519(&attacker));
        assert_refused(
            &app,
            &theirs,
            INVALID,
            &format!("{member} to the attacker's key"),
        )
        .await;
        // Signed by the real key, the header member is the only thing wrong with the token.
        let ours = forge(&header, &claims, ed25519(&real));
        assert_refused(
            &app,
            &ours,
            INVALID,
            &format!("{member} on a real signature"),
        )
        .await;
    }

    // An embedded key and no kid at all: nothing of Keyway's is named, the token is still refused.
    let header = json!({"alg": "EdDSA", "typ": "JWT", "jwk": attacker_jwk}).to_string();
    let token = forge(&header, &claims, ed25519(&attacker));
    assert_refused(&app, &token, INVALID, "an embedded jwk without kid").await;

    assert_eq!(
        host.hits.load(Ordering::SeqCst),
        0,
        "Keyway fetched a URL a token pointed at"
    );
}

#[tokio::test]
async fn duplicate_keys_in_the_header_or_the_claims_are_refused() {
    // A parser keeping the first value and one keeping the last would read the same token
    // differently. Each pair below is accepted by one of the two policies, so only refusing
    // duplicates refuses both.
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let claims = jwt_payload(&token);
    let claims_text = claims.to_string();
    let (kid, real) = real_key(&app).await;

    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string();
    assert_accepted(
        &app,
        &forge(&header, &claims_text, ed25519(&real)),
        "no duplicates",
    )
    .await;
    let header_dups = [("alg", json!("HS256")), ("kid", json!("not-a-key"))];
    for (member, value) in &header_dups {
        for first in [true, false] {
            let dup = with_duplicate(&header, member, value, first);
            let token = forge(&dup, &claims_text, ed25519(&real));
            assert_refused(&app, &token, INVALID, &format!("header {dup}")).await;
        }
    }

    let past = claims["iat"].as_i64().unwrap() - 3600;
    let claim_dups = [
        ("exp", json!(past)),
        ("type", json!("refresh")),
        ("aud", json!("another-app")),
        ("iss", json!("someone-else")),
        ("sid", json!("not-a-session")),
    ];
    for (claim, value) in &claim_dups {
        for first in [true, false] {
            let dup = with_duplicate(&claims_text, claim, value, first);
            let token = forge(&header, &dup, ed25519(&real));
            assert_refused(&app, &token, INVALID, &format!("claims {dup}")).await;
        }
    }
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let res = app.login("alice", &password_of("alice")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let refresh = body["refreshToken"].as_str().expect("refresh mode is on");
    assert_accepted(
        &app,
        body["jwt"].as_str().unwrap(),
        "the jwt of the same login",
    )
    .await;
    assert_refused(&app, refresh, INVALID, "a refresh token").await;
}

#[tokio::test]
async fn a_token_typed_refresh_is_refused_by_both_endpoints() {
    let app = TestApp::spawn_with(|c| c.tokens.secret = Some(SecretString::from(TEST_SECRET)))
        .await
        .with_user("alice")
        .await;
    let base = jwt_payload(&app.token_for("alice").await);
    assert_accepted(&app, &hs256_mint(&base), "the unaltered claims").await;

    let mut typed = base.clone();
    typed["type"] = json!("refresh");
    assert_refused(&app, &hs256_mint(&typed), INVALID, "type: refresh").await;

    // A token that says what it is only in `typ` is not an access token either.
    let mut typ = base.clone();
    typ.as_object_mut().unwrap().remove("type");
    typ["typ"] = json!("refresh");
    assert_refused(&app, &hs256_mint(&typ), INVALID, "typ: refresh").await;
    typ["typ"] = json!("access");
    assert_refused(&app, &hs256_mint(&typ), INVALID, "typ without type").await;
}

#[tokio::test]
async fn a_signature_by_another_key_under_the_real_kid_is_refused() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let claims = jwt_payload(&token).to_string();
    let kid = kid_of(&token);
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string();
    let forged = forge(&header, &claims, ed25519(&fresh_ed25519()));
    assert_refused(&app, &forged, INVALID, "another Ed25519 key's signature").await;
}

#[tokio::test]
async fn switching_the_algorithm_under_the_real_kid_is_refused() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let token = app.token_for("alice").await;
    let claims = jwt_payload(&token).to_string();
    let (kid, real) = real_key(&app).await;
    let public = real.verifying_key().to_bytes();
    let published = jwks(&app).await["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();

    for alg in ["HS256", "HS384", "RS256", "ES256"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string();
        // A genuine Ed25519 signature (an ES256 signature is 64 bytes too): only the label is wrong.
        let relabelled = forge(&header, &claims, ed25519(&real));
        assert_refused(&app, &relabelled, INVALID, &format!("{alg} relabelled")).await;
        if alg.starts_with("HS") {
            // Confusion: an HMAC keyed with public material, raw or as published in the JWKS.
            for secret in [&public[..], published.as_bytes()] {
                let forged = forge(&header, &claims, hmac(alg, secret));
                assert_refused(
                    &app,
                    &forged,
                    INVALID,
                    &format!("{alg} keyed with the public key"),
                )
                .await;
            }
        }
    }
}

// ---- 2. every key algorithm end to end ----

/// Whatever the algorithm, the JWKS carries public members only.
fn assert_public_only(jwks: &Value) {
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty(), "{jwks}");
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            assert!(
                key.get(private).is_none(),
                "private member {private}: {key}"
            );
        }
        assert_ne!(key["kty"], "oct", "a shared secret is published: {key}");
        assert_eq!(key["use"], "sig", "{key}");
    }
}

#[tokio::test]
async fn every_key_algorithm_signs_tokens_that_its_published_key_names() {
    for alg in ALGORITHMS {
        let app = TestApp::spawn_with(|c| c.tokens.algorithm = alg)
            .await
            .with_user("alice")
            .await;
        let token = app.token_for("alice").await;
        let header = jwt_header(&token);
        assert_eq!(header["alg"], alg.name(), "{alg:?}: {header}");

        let res = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "public, max-age=300");
        let set: Value = res.json().await.unwrap();
        assert_public_only(&set);
        let key = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .unwrap_or_else(|| panic!("{alg:?}: kid {} not in {set}", header["kid"]));
        let kty = match alg {
            KeyAlgorithm::EdDsa => "OKP",
            KeyAlgorithm::Es256 => "EC",
            KeyAlgorithm::Rs256 => "RSA",
        };
        assert_eq!(key["kty"], kty, "{alg:?}: {key}");
        assert_eq!(key["alg"], alg.name(), "{alg:?}: {key}");

        let me = app.me(&token).await;
        assert_eq!(me.status(), StatusCode::OK, "{alg:?}");
        assert_eq!(me.json::<Value>().await.unwrap()["username"], "alice");
        assert_eq!(
            forward_auth(&app, Some(&token)).await.status(),
            StatusCode::OK,
            "{alg:?}"
        );

        // Algorithm confusion, with each algorithm's own public key as the HMAC secret.
        let public: Vec<u8> = with_db!(app.db().await, |db| sqlx::query_scalar(
            "SELECT public_raw FROM signing_keys"
        )
        .fetch_one(db)
        .await
        .unwrap());
        let hs = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}).to_string();
        let forged = forge(
            &hs,
            &jwt_payload(&token).to_string(),
            hmac("HS256", &public),
        );
        assert_refused(
            &app,
            &forged,
            INVALID,
            &format!("{alg:?}: HS256 with the public key"),
        )
        .await;
    }
}

/// Reproduces HS256 mode publishing keys that verify nothing Keyway issues: with `jwt_secret` set,
/// tokens are HS256 under the secret, yet the JWKS held a generated EdDSA key. In pure HS256 mode
/// the set is empty (and the secret itself is never in it), so no relying party can take a key
/// from it that Keyway does not sign with.
#[tokio::test]
async fn in_hs256_mode_the_jwks_is_empty_and_never_holds_the_secret() {
    let app = TestApp::spawn_with(|c| c.tokens.secret = Some(SecretString::from(TEST_SECRET)))
        .await
        .with_user("alice")
        .await;
    let token = app.token_for("alice").await;
    assert_eq!(
        jwt_header(&token),
        json!({"alg": "HS256", "typ": "JWT", "kid": "hs256"})
    );
    let set = jwks(&app).await;
    let text = set.to_string();
    assert!(!text.contains(TEST_SECRET), "{text}");
    assert!(!text.contains(&b64(TEST_SECRET)), "{text}");
    assert_eq!(set, json!({"keys": []}), "nothing here verifies {token}");
    // And an independent verifier given the published set accepts nothing Keyway issues.
    let file = app.dir.path().join("jwks-hs256.json");
    std::fs::write(&file, text).unwrap();
    let out = jose_verify(&file, &token).await;
    assert!(!out.status.success(), "jose verified an HS256 token");
}

/// Reproduces the switch from a generated key to `jwt_secret`: the old key must keep verifying the
/// tokens it signed before the switch, and stay published exactly as long, then leave the JWKS
/// (it would otherwise be published, and trusted, forever, since no successor key ever comes).
#[tokio::test]
async fn after_a_switch_to_hs256_the_old_key_verifies_and_is_published_only_until_its_tokens_expire()
 {
    let ttl = Duration::from_secs(60);
    let app = TestApp::spawn_with(|c| c.tokens.ttl = ttl)
        .await
        .with_user("alice")
        .await;
    let before = app.token_for("alice").await;
    let old_kid = kid_of(&before);
    let mut config = app.config.clone();
    config.tokens.secret = Some(SecretString::from(TEST_SECRET));
    let app = app.restart_with(config).await;

    let after = app.token_for("alice").await;
    assert_eq!(jwt_header(&after)["alg"], "HS256");
    assert_accepted(&app, &before, "a token signed before the switch").await;
    assert_accepted(&app, &after, "an HS256 token").await;
    assert_eq!(kids(&jwks(&app).await), [old_kid]);

    // Past the switch plus the token lifetime nothing the old key signed is valid any more.
    app.clock.advance(ttl + Duration::from_secs(1));
    let store = app.auth.store().as_ref();
    app.auth
        .keys()
        .reload(store, app.auth.now_millis())
        .await
        .unwrap();
    assert_eq!(jwks(&app).await, json!({"keys": []}));
    // Still inside its real `exp`: only the retired key can be what refuses it.
    assert_refused(&app, &before, INVALID, "a token of the retired key").await;
    assert_accepted(&app, &after, "an HS256 token").await;
}

// ---- 3. independent verification with Node's jose ----

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// Runs `node e2e/verify-jwt.mjs JWKS TOKEN`. Missing Node or jose is a failure, never a skip: an
/// unchecked peer would let this suite pass without verifying anything.
async fn jose_verify(jwks_file: &Path, token: &str) -> Output {
    let e2e = e2e_dir();
    assert!(
        e2e.join("node_modules/jose/package.json").is_file(),
        "the jose peer is not installed in {}: run scripts/test.sh (it runs `npm ci --prefix e2e`)",
        e2e.display()
    );
    let child = Command::new("node")
        .arg(e2e.join("verify-jwt.mjs"))
        .arg(jwks_file)
        .arg(token)
        .current_dir(&e2e)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install Node.js 20+ and run scripts/test.sh")
        });
    timeout(WAIT, child.wait_with_output())
        .await
        .expect("node finished in time")
        .expect("wait for node")
}

#[tokio::test]
async fn jose_verifies_every_algorithm_through_the_jwks_and_rejects_tampering() {
    for alg in ALGORITHMS {
        let app = TestApp::spawn_with(|c| c.tokens.algorithm = alg)
            .await
            .with_user("alice")
            .await;
        app.create_user("mallory", |_| {}).await;
        let token = app.token_for("alice").await;
        let id = user_id(&app, "alice").await;
        let file = app.dir.path().join(format!("jwks-{}.json", alg.name()));
        std::fs::write(&file, jwks(&app).await.to_string()).unwrap();

        let out = jose_verify(&file, &token).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{alg:?}: jose refused: {stderr}");
        let payload: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{alg:?}: not JSON ({e}): {stderr}"));
        assert_eq!(payload["id"], id, "{alg:?}: {payload}");
        assert_eq!(payload["sub"], id.to_string(), "{alg:?}: {payload}");
        assert_eq!(
            payload["sid"],
            jwt_payload(&token)["sid"],
            "{alg:?}: {payload}"
        );
        assert_eq!(payload["type"], "access", "{alg:?}: {payload}");

        // Someone else's id under alice's signature.
        let mallory = user_id(&app, "mallory").await;
        let mut claims = jwt_payload(&token);
        claims["id"] = json!(mallory);
        claims["sub"] = json!(mallory.to_string());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2]);
        let out = jose_verify(&file, &tampered).await;
        assert!(
            !out.status.success(),
            "{alg:?}: jose accepted a tampered token: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_refused(&app, &tampered, INVALID, &format!("{alg:?}: tampered")).await;
    }
}

// ---- 4. key rotation ----

/// Logs in until the token is signed by `kid`: the server picks a rotation up from the invalidation
/// log it polls every 500 ms.
async fn token_signed_by(app: &TestApp, kid: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let token = app.token_for("alice").await;
        if kid_of(&token) == kid {
            return token;
        }
        assert!(
            Instant::now() < deadline,
            "the server still signs with {} after a rotation to {kid}",
            kid_of(&token)
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_a_rotation_old_tokens_still_verify_and_both_keys_are_published() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let old = app.token_for("alice").await;
    let old_kid = kid_of(&old);

    let rotated = Keys::rotate(
        app.auth.store().as_ref(),
        KeyAlgorithm::EdDsa,
        app.auth.now_millis(),
    )
    .await
    .unwrap();
    assert_ne!(rotated.kid, old_kid);
    let new = token_signed_by(&app, &rotated.kid).await;
    assert_eq!(jwt_header(&new)["alg"], "EdDSA");

    assert_accepted(&app, &old, "a token of the previous key").await;
    assert_accepted(&app, &new, "a token of the new key").await;
    let published = kids(&jwks(&app).await);
    assert!(published.contains(&old_kid), "{published:?}");
    assert!(published.contains(&rotated.kid), "{published:?}");
    assert_eq!(published.len(), 2, "{published:?}");
}

#[tokio::test]
async fn a_rotated_out_key_is_retired_once_its_tokens_have_expired() {
    let ttl = Duration::from_secs(2);
    let app = TestApp::spawn_with(|c| c.tokens.ttl = ttl)
        .await
        .with_user("alice")
        .await;
    let old = app.token_for("alice").await;
    let old_kid = kid_of(&old);
    let store = app.auth.store().as_ref();
    let rotated = Keys::rotate(store, KeyAlgorithm::EdDsa, app.auth.now_millis())
        .await
        .unwrap();
    app.auth
        .keys()
        .reload(store, app.auth.now_millis())
        .await
        .unwrap();
    assert_eq!(
        kids(&jwks(&app).await).len(),
        2,
        "both while old tokens live"
    );
    assert_accepted(&app, &old, "the old key verifies until its tokens expire").await;

    // Past the successor's creation plus the token lifetime, nothing the old key signed is valid.
    sleep(ttl + Duration::from_millis(500)).await;
    app.auth
        .keys()
        .reload(store, app.auth.now_millis())
        .await
        .unwrap();
    let published = kids(&jwks(&app).await);
    assert_eq!(
        published,
        vec![rotated.kid.clone()],
        "old key {old_kid} retired"
    );
    // Still inside the 5 s exp leeway: only the retired key can be what refuses it.
    assert_refused(&app, &old, INVALID, "a token of a retired key").await;
    let fresh = app.token_for("alice").await;
    assert_eq!(kid_of(&fresh), rotated.kid);
    assert_accepted(&app, &fresh, "the successor signs").await;
}

/// `keyway ARGS` against `app`'s database, with an empty environment so nothing from the
/// developer's shell leaks in.
async fn keyway_cli(app: &TestApp, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .current_dir(app.dir.path())
        .env_clear()
        .env("KEYWAY_ARGON2_MEMORY_KIB", "1024")
        .env("KEYWAY_ARGON2_ITERATIONS", "1")
        .arg("--database-url")
        .arg(app.config.database_url.expose_secret())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = timeout(WAIT, out)
        .await
        .expect("keyway finished in time")
        .expect("run keyway");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keyway {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn keys_rotate_from_the_cli_reaches_a_running_server() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let old = app.token_for("alice").await;
    let old_kid = kid_of(&old);

    let said = keyway_cli(&app, &["keys", "rotate", "--algorithm", "ES256"]).await;
    let new_kid = said
        .split_once("new signing key ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kid in: {said}"))
        .to_owned();
    assert!(said.contains("(ES256)"), "{said}");

    let listed = keyway_cli(&app, &["keys", "list"]).await;
    let rows: Vec<&str> = listed.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2, "exactly the two keys: {listed}");
    let row = |kid: &str| {
        *rows
            .iter()
            .find(|r| r.starts_with(kid))
            .unwrap_or_else(|| panic!("{kid} not listed: {listed}"))
    };
    assert!(row(&new_kid).contains("ES256"), "{listed}");
    assert!(row(&new_kid).trim_end().ends_with("signing"), "{listed}");
    assert!(row(&old_kid).contains("EdDSA"), "{listed}");
    assert!(row(&old_kid).contains("verifying until"), "{listed}");

    let new = token_signed_by(&app, &new_kid).await;
    assert_eq!(jwt_header(&new)["alg"], "ES256");
    assert_accepted(&app, &new, "a token of the CLI's key").await;
    assert_accepted(&app, &old, "a token of the previous key").await;
    let published = kids(&jwks(&app).await);
    assert!(
        published.contains(&old_kid) && published.contains(&new_kid),
        "{published:?}"
    );
}

/// `keyway ARGS` against `app`'s database in HS256 mode (`KEYWAY_JWT_SECRET` set), whatever its exit.
async fn keyway_cli_hs256(app: &TestApp, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .current_dir(app.dir.path())
        .env_clear()
        .env("KEYWAY_JWT_SECRET", TEST_SECRET)
        .arg("--database-url")
        .arg(app.config.database_url.expose_secret())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    timeout(WAIT, out)
        .await
        .expect("keyway finished in time")
        .expect("run keyway")
}

/// Reproduces `keyway keys list` in HS256 mode showing a generated EdDSA key as the signer, while
/// every token is HS256 under the secret: the secret is listed as what signs (by a fingerprint,
/// never its value), and a key kept from before a switch only as verifying.
#[tokio::test]
async fn keys_list_names_the_hs256_secret_as_the_signer() {
    let app = TestApp::spawn_with(|c| c.tokens.secret = Some(SecretString::from(TEST_SECRET)))
        .await
        .with_user("alice")
        .await;
    let out = keyway_cli_hs256(&app, &["keys", "list"]).await;
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<&str> = listed.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows.len(),
        1,
        "the secret alone signs, nothing is stored: {listed}"
    );
    assert!(rows[0].starts_with("hs256 "), "{listed}");
    assert!(rows[0].contains(" HS256 "), "{listed}");
    assert!(rows[0].contains("signing"), "{listed}");
    let fingerprint = rows[0]
        .split_once("fingerprint ")
        .map(|(_, f)| f.trim_end_matches(')'))
        .unwrap_or_else(|| panic!("no fingerprint: {listed}"));
    assert_eq!(fingerprint.len(), 8, "{listed}");
    assert!(
        !listed.contains(TEST_SECRET),
        "the secret is printed: {listed}"
    );
    assert!(!listed.contains("EdDSA"), "{listed}");
    assert_eq!(
        kid_of(&app.token_for("alice").await),
        "hs256",
        "what the list names is what signs"
    );
}

/// Reproduces `keyway keys rotate` in HS256 mode generating a key that signs nothing and is
/// published anyway: it refuses (non-zero exit), says how HS256 is rotated, and adds no key.
#[tokio::test]
async fn keys_rotate_in_hs256_mode_explains_how_to_rotate_and_adds_no_key() {
    let app = TestApp::spawn_with(|c| c.tokens.secret = Some(SecretString::from(TEST_SECRET)))
        .await
        .with_user("alice")
        .await;
    let out = keyway_cli_hs256(&app, &["keys", "rotate"]).await;
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("HS256") && said.contains("changing jwt_secret"),
        "{said}"
    );
    assert!(!said.contains(TEST_SECRET), "{said}");
    // What a running server would find on its next reload: nothing to publish, because the store
    // holds no key (not because a timer has not fired yet).
    let store = app.auth.store().as_ref();
    assert!(
        store.signing_keys().await.unwrap().is_empty(),
        "no key was stored"
    );
    app.auth
        .keys()
        .reload(store, app.auth.now_millis())
        .await
        .unwrap();
    assert_eq!(jwks(&app).await, json!({"keys": []}));
    assert_eq!(kid_of(&app.token_for("alice").await), "hs256");
}

// ---- 5. Strapi migration ----

async fn strapi_app(accept: bool) -> TestApp {
    TestApp::spawn_with(|c| {
        c.tokens.secret = Some(SecretString::from(TEST_SECRET));
        c.tokens.accept_strapi_tokens = accept;
    })
    .await
    .with_user("alice")
    .await
}

/// A token as Strapi's users-permissions plugin issues it: HS256, no kid, `{id, iat, exp}`.
fn strapi_token(id: i64, iat: i64, exp: i64, secret: &str) -> String {
    forge(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(r#"{{"id":{id},"iat":{iat},"exp":{exp}}}"#),
        hmac("HS256", secret.as_bytes()),
    )
}

pub(crate) fn strapi_token_for(id: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    strapi_token(id, now, now + 30 * 86_400, TEST_SECRET)
}

#[tokio::test]
async fn strapi_issued_tokens_are_accepted_during_a_migration() {
    let app = strapi_app(true).await;
    let id = user_id(&app, "alice").await;
    let token = strapi_token_for(id);

    let res = app.me(&token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], id);
    assert_eq!(me["username"], "alice");
    let res = forward_auth(&app, Some(&token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-keyway-user-id"], id.to_string().as_str());

    let now = chrono::Utc::now().timestamp();
    let expired = strapi_token(id, now - 31 * 86_400, now - 86_400, TEST_SECRET);
    assert_refused(&app, &expired, INVALID, "an expired Strapi token").await;
    let other = "another-secret-another-secret-another-secret-42";
    let foreign = strapi_token(id, now, now + 86_400, other);
    assert_refused(&app, &foreign, INVALID, "a Strapi token of another secret").await;
    assert_refused(
        &app,
        &strapi_token_for(999_999),
        INVALID_USER,
        "an unknown user id",
    )
    .await;
}

#[tokio::test]
async fn strapi_issued_tokens_of_blocked_users_are_refused() {
    let app = strapi_app(true).await;
    app.create_user("bob", |u| u.blocked = true).await;
    let bob = strapi_token_for(user_id(&app, "bob").await);
    assert_refused(&app, &bob, INVALID_USER, "a blocked user's Strapi token").await;

    // Blocked after the token was accepted (and cached): refused on the next request.
    let alice = strapi_token_for(user_id(&app, "alice").await);
    assert_accepted(&app, &alice, "before the block").await;
    app.auth.admin().set_blocked("alice", true).await.unwrap();
    assert_refused(&app, &alice, INVALID_USER, "a Strapi token blocked later").await;
}

/// The attack: a Strapi-issued token (which has no session to end) stolen before the owner changed
/// the password kept working after the change, for the rest of its life (30 days by default).
#[tokio::test]
async fn strapi_issued_tokens_die_with_a_password_change() {
    let app = strapi_app(true).await;
    let id = user_id(&app, "alice").await;
    let stolen = strapi_token_for(id);
    assert_accepted(&app, &stolen, "a Strapi token before the change").await;

    let jwt = app.token_for("alice").await;
    let res = app
        .client
        .post(app.url("/api/auth/change-password"))
        .bearer_auth(&jwt)
        .json(
            &json!({"currentPassword": "alice-password", "password": "alices-new-pass",
                      "passwordConfirmation": "alices-new-pass"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_refused(
        &app,
        &stolen,
        INVALID,
        "a Strapi token from before the change",
    )
    .await;

    // Strapi still issuing tokens (a migration in progress) after the change: those work. `iat` has
    // whole seconds, so one from the second of the change is refused; this one is a second later.
    let later = chrono::Utc::now().timestamp() + 1;
    let fresh = strapi_token(id, later, later + 86_400, TEST_SECRET);
    assert_accepted(&app, &fresh, "a Strapi token from after the change").await;
}

/// The same attack with a password reset: the owner who suspects a leak resets the password by
/// mail, and the leaked Strapi token used to keep working.
#[tokio::test]
async fn strapi_issued_tokens_die_with_a_password_reset() {
    let sink = crate::smtp::SmtpSink::start().await;
    let app = crate::account::app_with_mail(&sink, |c| {
        c.tokens.secret = Some(SecretString::from(TEST_SECRET));
        c.tokens.accept_strapi_tokens = true;
    })
    .await
    .with_user("alice")
    .await;
    let id = user_id(&app, "alice").await;
    let stolen = strapi_token_for(id);
    assert_accepted(&app, &stolen, "a Strapi token before the reset").await;

    let code = crate::account::reset_code(&app, &sink, "alice").await;
    let res = crate::account::reset(&app, &code, "a-whole-new-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_refused(
        &app,
        &stolen,
        INVALID,
        "a Strapi token from before the reset",
    )
    .await;
}

#[tokio::test]
async fn strapi_issued_tokens_are_refused_unless_enabled() {
    let app = strapi_app(false).await;
    let token = strapi_token_for(user_id(&app, "alice").await);
    assert_refused(&app, &token, INVALID, "a Strapi token, acceptance off").await;
    assert_accepted(&app, &app.token_for("alice").await, "Keyway's own tokens").await;
}
