//! What the fuzz targets share: signing keys loaded the way a server loads them, and genuine tokens
//! for every kind of key, so the token targets can start from real tokens and know what each one
//! legitimately says.
//!
//! The keys are committed (`keys.json`) and the tokens are issued at a fixed instant, so the tokens
//! are the same on every run and the committed seed corpus (`corpus/`, written by
//! `examples/seed_corpus.rs`) holds tokens these keys accept.

pub mod body;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyway::auth::tokens::{KeyAlgorithm, Keys, TokenClaims, TokenSettings};
use keyway::store::{Store, StoredKey};
use secrecy::SecretString;
use std::sync::LazyLock;
use std::time::Duration;

/// The HS256 secret of the second key set (as a Strapi deployment's `jwt_secret`).
pub const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123456789";

/// When the genuine tokens are issued (2026-01-01T00:00:00Z, in milliseconds): fixed, so every run
/// issues the same tokens as the ones in the committed corpus.
pub const ISSUED_AT: i64 = 1_767_225_600_000;

/// Long enough that the genuine tokens, issued at [`ISSUED_AT`], outlive any fuzzing session for a
/// century.
const TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The committed signing keys, oldest first: EdDSA, ES256, RS256 (`seed_corpus keys` writes them).
pub const KEYS_JSON: &str = include_str!("../keys.json");

/// What each genuine token is, in [`Fixture::tokens`] order (used to name the seed files).
pub const TOKEN_NAMES: [&str; 5] = [
    "access-eddsa",
    "access-es256",
    "access-rs256",
    "access-hs256",
    "strapi-hs256",
];

pub struct Fixture {
    /// `[0]`: generated keys (EdDSA, then ES256 and RS256 rotated in; all three verify).
    /// `[1]`: the same keys plus an HS256 secret that signs, accepting Strapi's own tokens.
    pub keys: [Keys; 2],
    /// Genuine tokens: EdDSA, ES256, RS256, HS256, and a Strapi `{id, iat, exp}` token.
    pub tokens: Vec<String>,
    /// What verifying each genuine token says. A mutated token may verify only as one of these.
    pub genuine: Vec<TokenClaims>,
}

pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);

fn settings(secret: Option<&str>) -> TokenSettings {
    TokenSettings {
        secret: secret.map(SecretString::from),
        algorithm: KeyAlgorithm::EdDsa,
        ttl: TTL,
        issuer: "keyway".into(),
        audience: "keyway".into(),
        accept_strapi_tokens: secret.is_some(),
    }
}

fn build() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // The keys live in a throw-away database; once loaded they are in memory only.
        let dir = std::env::temp_dir().join(format!("keyway-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = SecretString::from(format!("sqlite://{}", dir.join("keys.db").display()));
        let store = keyway::store::connect(&url, &keyway::store::DatabaseSettings::default())
            .await
            .expect("key store");
        let now = ISSUED_AT;
        let until = now + TTL.as_millis() as i64;

        // Each key in turn becomes the newest, so the one that signs: one token per algorithm.
        let stored = committed_keys();
        let mut asymmetric: Option<Keys> = None;
        let mut tokens = Vec::new();
        for (i, key) in stored.iter().enumerate() {
            store.insert_signing_key(key).await.expect("insert key");
            let keys = match asymmetric.take() {
                None => Keys::load(store.as_ref(), settings(None), now, false)
                    .await
                    .expect("keys"),
                Some(keys) => {
                    keys.reload(store.as_ref(), now).await.expect("reload");
                    keys
                }
            };
            let sid = format!("sid-{}", key.alg);
            tokens.push(keys.issue(1 + i as i64, &sid, now, until).expect("token"));
            asymmetric = Some(keys);
        }
        let asymmetric = asymmetric.expect("at least one committed key");
        let hs256 = Keys::load(store.as_ref(), settings(Some(SECRET)), now, false)
            .await
            .expect("HS256 keys");
        tokens.push(hs256.issue(4, "sid-hs256", now, until).expect("HS256"));
        let strapi = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "id": 5, "iat": now / 1000, "exp": until / 1000 }),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("Strapi token");
        tokens.push(strapi);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);

        let keys = [asymmetric, hs256];
        let genuine = tokens
            .iter()
            .map(|t| {
                keys.iter()
                    .find_map(|k| k.verify(t).ok())
                    .unwrap_or_else(|| panic!("a genuine token does not verify: {t}"))
            })
            .collect();
        Fixture {
            keys,
            tokens,
            genuine,
        }
    })
}

/// The committed keys, oldest first (the store lists them newest first).
pub fn committed_keys() -> Vec<StoredKey> {
    let keys: Vec<serde_json::Value> = serde_json::from_str(KEYS_JSON).expect("keys.json");
    let bytes = |v: &serde_json::Value| {
        URL_SAFE_NO_PAD
            .decode(v.as_str().expect("base64url"))
            .expect("base64url")
    };
    keys.iter()
        .map(|k| StoredKey {
            kid: k["kid"].as_str().expect("kid").to_owned(),
            alg: k["alg"].as_str().expect("alg").to_owned(),
            private_der: bytes(&k["private_der"]),
            public_raw: bytes(&k["public_raw"]),
            created_at: k["created_at"].as_i64().expect("created_at"),
            retired_at: None,
        })
        .collect()
}

/// `keys.json` for freshly generated keys, one of each algorithm, oldest first, created in turn
/// just before [`ISSUED_AT`] (the way `keyway keys rotate` makes them).
pub async fn generate_keys_json(store: &dyn Store) -> String {
    for (i, alg) in [
        KeyAlgorithm::EdDsa,
        KeyAlgorithm::Es256,
        KeyAlgorithm::Rs256,
    ]
    .into_iter()
    .enumerate()
    {
        Keys::rotate(store, alg, ISSUED_AT - 3 + i as i64)
            .await
            .expect("generate key");
    }
    let mut stored = store.signing_keys().await.expect("stored keys");
    stored.reverse();
    let keys: Vec<_> = stored
        .iter()
        .map(|k| {
            serde_json::json!({
                "kid": k.kid,
                "alg": k.alg,
                "private_der": URL_SAFE_NO_PAD.encode(&k.private_der),
                "public_raw": URL_SAFE_NO_PAD.encode(&k.public_raw),
                "created_at": k.created_at,
            })
        })
        .collect();
    serde_json::to_string_pretty(&keys).expect("json") + "\n"
}
