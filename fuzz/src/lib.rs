//! What the fuzz targets share: signing keys loaded the way a server loads them, and genuine tokens
//! for every kind of key, so the token targets can start from real tokens and know what each one
//! legitimately says.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyway::auth::tokens::{KeyAlgorithm, Keys, TokenSettings, Verified};
use secrecy::SecretString;
use std::sync::LazyLock;
use std::time::Duration;

/// The HS256 secret of the second key set (as a Strapi deployment's `jwt_secret`).
pub const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123456789";

/// Long enough that the genuine tokens outlive any fuzzing session.
const TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub struct Fixture {
    /// `[0]`: generated keys (EdDSA, then ES256 and RS256 rotated in; all three verify).
    /// `[1]`: the same keys plus an HS256 secret that signs, accepting Strapi's own tokens.
    pub keys: [Keys; 2],
    /// Genuine tokens: EdDSA, ES256, RS256, HS256, and a Strapi `{id, iat, exp}` token.
    pub tokens: Vec<String>,
    /// What verifying each genuine token says. A mutated token may verify only as one of these.
    pub genuine: Vec<Verified>,
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let until = now + TTL.as_millis() as i64;

        let asymmetric = Keys::load(store.as_ref(), settings(None), now, true)
            .await
            .expect("keys");
        let mut tokens = vec![asymmetric.issue(1, "sid-eddsa", now, until).expect("EdDSA")];
        for (i, alg) in [KeyAlgorithm::Es256, KeyAlgorithm::Rs256]
            .into_iter()
            .enumerate()
        {
            let created = now + 1 + i as i64;
            Keys::rotate(store.as_ref(), alg, created)
                .await
                .expect("rotate");
            asymmetric
                .reload(store.as_ref(), created)
                .await
                .expect("reload");
            let sid = format!("sid-{}", alg.name());
            tokens.push(
                asymmetric
                    .issue(2 + i as i64, &sid, now, until)
                    .expect("token"),
            );
        }
        let hs256 = Keys::load(store.as_ref(), settings(Some(SECRET)), now + 3, false)
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
