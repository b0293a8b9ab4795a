//! Access tokens: signing keys, issuing and verifying JWTs.
//!
//! Two kinds of key: a shared HS256 secret when the operator configures one (so a Strapi deployment's
//! secret can carry over), otherwise an Ed25519 key the server generates on first start and keeps in the
//! database, so restarts keep tokens valid. Keys live in memory; verification never fetches anything a
//! token points at (`jku`, `x5u`, embedded `jwk` are ignored) and pins the algorithm to the key named by
//! `kid`, so `alg: none` and algorithm confusion are refused.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::{Millis, Store, StoreError, StoredKey};

/// The `type` claim of an access token; any other token type can never pass for one.
pub const ACCESS: &str = "access";

/// `kid` of the configured HS256 secret. The secret itself is never stored.
const HS256_KID: &str = "hs256";

/// Clock skew tolerated on `exp`/`nbf`, in seconds: enough for nodes whose clocks drift a little.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The numeric user id, as in Strapi's `{id, iat, exp}` tokens.
    pub id: i64,
    pub sub: String,
    /// The session this token belongs to.
    pub sid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Clone)]
pub struct TokenSettings {
    pub secret: Option<SecretString>,
    pub ttl: Duration,
    pub issuer: String,
    pub audience: String,
}

struct Verifier {
    alg: Algorithm,
    key: DecodingKey,
}

pub struct Keys {
    signer_kid: String,
    signer_alg: Algorithm,
    signer: EncodingKey,
    verifiers: HashMap<String, Verifier>,
    settings: TokenSettings,
}

impl Keys {
    /// Loads the signing keys: the configured secret if there is one, else the stored Ed25519 key,
    /// generating and storing one on first start.
    pub async fn load(store: &dyn Store, settings: TokenSettings, now: Millis) -> Result<Self> {
        if let Some(secret) = &settings.secret {
            let bytes = secret.expose_secret().as_bytes();
            let mut verifiers = HashMap::new();
            verifiers.insert(
                HS256_KID.to_owned(),
                Verifier {
                    alg: Algorithm::HS256,
                    key: DecodingKey::from_secret(bytes),
                },
            );
            return Ok(Self {
                signer_kid: HS256_KID.to_owned(),
                signer_alg: Algorithm::HS256,
                signer: EncodingKey::from_secret(bytes),
                verifiers,
                settings,
            });
        }

        let mut stored = store.signing_keys().await?;
        if stored.is_empty() {
            let key = generate_ed25519(now)?;
            match store.insert_signing_key(&key).await {
                // Another node or process won the race to create the first key: use theirs.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            stored = store.signing_keys().await?;
        }
        let newest = stored
            .first()
            .ok_or_else(|| Error::internal("no signing key after generating one"))?;
        let mut verifiers = HashMap::new();
        for k in &stored {
            if k.alg == "EdDSA" {
                verifiers.insert(
                    k.kid.clone(),
                    Verifier {
                        alg: Algorithm::EdDSA,
                        key: DecodingKey::from_ed_der(&k.public_raw),
                    },
                );
            }
        }
        Ok(Self {
            signer_kid: newest.kid.clone(),
            signer_alg: Algorithm::EdDSA,
            signer: EncodingKey::from_ed_der(&newest.private_der),
            verifiers,
            settings,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// Signs an access token for `user_id` in session `sid`, valid from `now` for the configured TTL.
    pub fn issue(&self, user_id: i64, sid: &str, now: Millis) -> Result<String> {
        let iat = now / 1000;
        let claims = Claims {
            id: user_id,
            sub: user_id.to_string(),
            sid: sid.to_owned(),
            kind: ACCESS.to_owned(),
            iat,
            exp: iat + self.settings.ttl.as_secs() as i64,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
        };
        let mut header = Header::new(self.signer_alg);
        header.kid = Some(self.signer_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signer).map_err(Error::internal)
    }

    /// Verifies signature, algorithm, `exp`, `nbf`, `iss`, `aud` and the token type. Any failure is
    /// the same opaque error: the client learns nothing about which check failed.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::INVALID_TOKEN)?;
        let kid = header.kid.as_deref().ok_or(Error::INVALID_TOKEN)?;
        let verifier = self.verifiers.get(kid).ok_or(Error::INVALID_TOKEN)?;
        if header.alg != verifier.alg {
            return Err(Error::INVALID_TOKEN);
        }
        let mut validation = Validation::new(verifier.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &validation)
            .map_err(|_| Error::INVALID_TOKEN)?;
        let claims = data.claims;
        if claims.kind != ACCESS || claims.sub != claims.id.to_string() {
            return Err(Error::INVALID_TOKEN);
        }
        Ok(claims)
    }
}

fn generate_ed25519(now: Millis) -> Result<StoredKey> {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let signing = SigningKey::from_bytes(&seed);
    let der = signing.to_pkcs8_der().map_err(Error::internal)?;
    let public_raw = signing.verifying_key().to_bytes().to_vec();
    let mut kid = [0u8; 12];
    rand::fill(&mut kid);
    Ok(StoredKey {
        kid: super::password::base64_url(&kid),
        alg: "EdDSA".into(),
        private_der: der.as_bytes().to_vec(),
        public_raw,
        created_at: now,
    })
}
