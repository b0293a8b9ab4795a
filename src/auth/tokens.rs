//! Access tokens: signing keys, issuing and verifying JWTs, and the public JWKS.
//!
//! Keys: an asymmetric key the server generates and keeps in the database (EdDSA/Ed25519 by default,
//! ES256 or RS256 on request), or a shared HS256 secret when the operator configures one (so a Strapi
//! deployment's secret carries over). Every key has a `kid`. Keys live in memory; verification never
//! fetches anything a token points at and refuses tokens that carry `jku`, `x5u`, `x5c` or `jwk`. The
//! algorithm is pinned to the key named by `kid`, so `alg: none` and algorithm confusion are refused.
//!
//! Rotation: the newest stored key signs; an older key keeps verifying until every token it could
//! have signed has expired (its successor's creation plus the token lifetime).
//!
//! HS256 mode: with a secret configured, the secret signs and no stored key does. A server starting
//! so retires the stored keys (once: the time is kept), and each keeps verifying, and stays in the
//! JWKS, only until the tokens it signed before the switch have expired; then the JWKS is empty,
//! since no public key verifies anything Keyway issues. No key is generated in this mode.

mod material;
pub mod settings;

use material::{generate, key_pair, public_jwk};

use crate::error::OrInternal;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::{Millis, Store, StoreError, StoredKey};

/// The `type` claim of an access token; nothing else can pass for one.
pub const ACCESS: &str = "access";

/// `kid` of the configured HS256 secret. The secret itself is never stored.
const HS256_KID: &str = "hs256";

/// Clock skew tolerated on `exp`/`nbf`, in seconds: enough for nodes whose clocks drift a little.
const LEEWAY_SECS: u64 = 5;

/// The asymmetric algorithms Keyway can generate keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
pub enum KeyAlgorithm {
    #[default]
    #[value(name = "EdDSA")]
    #[serde(rename = "EdDSA")]
    EdDsa,
    #[value(name = "ES256")]
    #[serde(rename = "ES256")]
    Es256,
    #[value(name = "RS256")]
    #[serde(rename = "RS256")]
    Rs256,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::EdDsa, Self::Es256, Self::Rs256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

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

/// A token Strapi issued before the switch: `{id, iat, exp}`, HS256, no session.
#[derive(Debug, Deserialize)]
struct StrapiClaims {
    id: i64,
    /// Whole seconds; Strapi always sets it. Compared with the account's last password change.
    iat: Option<i64>,
    exp: i64,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub user_id: i64,
    /// `None` for a Strapi-issued token, which belongs to no session.
    pub session_id: Option<String>,
    /// A Strapi-issued token's `iat` (seconds), which the caller compares with the account's last
    /// password change; `None` for Keyway's own tokens (their session ends with the password) and
    /// for a Strapi token without one.
    pub issued_at: Option<i64>,
}

#[derive(Clone)]
pub struct TokenSettings {
    pub secret: Option<SecretString>,
    pub algorithm: KeyAlgorithm,
    pub ttl: Duration,
    pub issuer: String,
    pub audience: String,
    /// Accept Strapi's own `{id, iat, exp}` HS256 tokens (needs `secret`).
    pub accept_strapi_tokens: bool,
}

struct Verifier {
    alg: Algorithm,
    key: DecodingKey,
}

/// One loaded generation of keys. Replaced whole on reload, never mutated.
struct KeySet {
    signer_kid: String,
    signer_alg: Algorithm,
    signer: EncodingKey,
    verifiers: HashMap<String, Verifier>,
    jwks: Arc<JwkSet>,
}

pub struct Keys {
    settings: TokenSettings,
    current: RwLock<Arc<KeySet>>,
    /// Tokens already verified, by the SHA-256 of the token: a signature check costs tens of
    /// microseconds, a lookup well under one, and every secured request presents the same token again.
    /// Emptied whenever the key set changes, so a key that stops verifying takes its tokens with it;
    /// revocation is the session and user caches' business, checked on every request regardless.
    verified: moka::sync::Cache<[u8; 32], CachedToken>,
}

#[derive(Clone)]
struct CachedToken {
    verified: TokenClaims,
    /// The token's `exp`, in seconds: a hit past it (and the leeway) is verified again, and fails.
    exp: i64,
}

/// Bound on the verified-token cache: about 150 bytes an entry, so at most ~15 MB.
const VERIFIED_CACHE_ENTRIES: u64 = 100_000;
/// No entry is trusted longer than this without a fresh signature check.
const VERIFIED_CACHE_TTL: Duration = Duration::from_secs(600);

/// A key as `keyway keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// `None` for the configured HS256 secret, which is not stored.
    pub created_at: Option<Millis>,
    pub signing: bool,
    /// When it stops verifying; `None` while it signs, and for a stored key in HS256 mode that no
    /// server has retired yet (it verifies until one starts with the secret).
    pub verifies_until: Option<Millis>,
    /// For the HS256 secret: [`secret_fingerprint`], so operators can tell whether two nodes share
    /// one without seeing it.
    pub fingerprint: Option<String>,
}

/// What `keyway keys rotate` answers in HS256 mode: there is no stored key to replace.
pub const HS256_ROTATE_REFUSED: &str = "tokens are signed with the HS256 secret (jwt_secret), \
     which is not a stored key: rotate it by changing jwt_secret (KEYWAY_JWT_SECRET or \
     KEYWAY_JWT_SECRET_FILE) on every node and restarting them; every token signed with the old \
     secret stops working at once. To sign with a generated key instead, remove jwt_secret and \
     restart: the server creates a jwt_algorithm key, and tokens signed with the secret stop working";

/// The first 8 hex digits of SHA-256 over a domain-separated copy of the secret. It names the secret
/// without revealing it: it confirms a guess no better than any HS256 token already does (a token
/// is a full HMAC under the secret), and 32 bits is enough to tell two secrets apart.
pub fn secret_fingerprint(secret: &SecretString) -> String {
    let mut digest = Sha256::new();
    digest.update(b"keyway hs256 fingerprint v1\0");
    digest.update(secret.expose_secret().as_bytes());
    hex::encode(&digest.finalize()[..4])
}

impl Keys {
    /// Loads the keys, generating a first key if there is none. With `adopt_algorithm` (a server
    /// starting) a key of the configured algorithm is also generated when the newest key has another;
    /// admin commands pass false, so they never change which key signs.
    pub async fn load(
        store: &dyn Store,
        settings: TokenSettings,
        now: Millis,
        adopt_algorithm: bool,
    ) -> Result<Self> {
        let newest = store.signing_keys().await.or_internal()?.into_iter().next();
        // A server that starts with a secret: the stored keys stop signing now, and verify only what
        // they signed before.
        if settings.secret.is_some() && adopt_algorithm {
            store.retire_signing_keys(now).await.or_internal()?;
        }
        // A key that no longer signs (retired, or of another algorithm) is replaced when a server
        // starts without a secret; admin commands need a key only when there is none at all.
        let replace = |k: &StoredKey| k.retired_at.is_some() || k.alg != settings.algorithm.name();
        let generate_key = match &newest {
            _ if settings.secret.is_some() => false,
            None => true,
            Some(k) => adopt_algorithm && replace(k),
        };
        if generate_key {
            let key = generate(settings.algorithm, now)?;
            match store.insert_signing_key(&key).await {
                // Another process won the race to create the key: use theirs.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(Error::internal(e)),
            }
        }
        let set = build_set(&settings, &store.signing_keys().await.or_internal()?, now)?;
        Ok(Self {
            settings,
            current: RwLock::new(Arc::new(set)),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE_ENTRIES)
                .time_to_live(VERIFIED_CACHE_TTL)
                .build(),
        })
    }

    /// Re-reads the stored keys (after a rotation by another process).
    pub async fn reload(&self, store: &dyn Store, now: Millis) -> Result<()> {
        let set = build_set(
            &self.settings,
            &store.signing_keys().await.or_internal()?,
            now,
        )?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let same_keys = current.verifiers.len() == set.verifiers.len()
            && set
                .verifiers
                .keys()
                .all(|k| current.verifiers.contains_key(k));
        *current = Arc::new(set);
        drop(current);
        if !same_keys {
            self.verified.invalidate_all();
        }
        Ok(())
    }

    fn set(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// The public keys, for `/.well-known/jwks.json`: those that verify tokens Keyway accepts now.
    /// A configured HS256 secret is never published.
    pub fn jwks(&self) -> Arc<JwkSet> {
        self.set().jwks.clone()
    }

    /// Signs an access token for `user_id` in session `sid`; it expires after the configured lifetime
    /// or at `not_after` (the session's end), whichever comes first.
    pub fn issue(&self, user_id: i64, sid: &str, now: Millis, not_after: Millis) -> Result<String> {
        let set = self.set();
        let iat = now / 1000;
        let claims = Claims {
            id: user_id,
            sub: user_id.to_string(),
            sid: sid.to_owned(),
            kind: ACCESS.to_owned(),
            iat,
            exp: (iat + self.settings.ttl.as_secs() as i64).min(not_after / 1000),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
        };
        let mut header = Header::new(set.signer_alg);
        header.kid = Some(set.signer_kid.clone());
        jsonwebtoken::encode(&header, &claims, &set.signer).map_err(Error::internal)
    }

    /// Verifies signature, algorithm, `exp`, `nbf`, `iss`, `aud` and the token type. Every failure is
    /// the same opaque error: the client learns nothing about which check failed.
    pub fn verify(&self, token: &str) -> Result<TokenClaims> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Some(hit) = self.verified.get(&digest)
            && hit.exp.saturating_add(LEEWAY_SECS as i64) >= now
        {
            return Ok(hit.verified);
        }
        let cached = self.verify_signed(token)?;
        self.verified.insert(digest, cached.clone());
        Ok(cached.verified)
    }

    fn verify_signed(&self, token: &str) -> Result<CachedToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::INVALID_TOKEN)?;
        if header.jku.is_some()
            || header.x5u.is_some()
            || header.jwk.is_some()
            || header.x5c.is_some()
        {
            return Err(Error::INVALID_TOKEN);
        }
        let set = self.set();
        let Some(kid) = header.kid.as_deref() else {
            return self.verify_strapi(token, header.alg, &set);
        };
        let verifier = set.verifiers.get(kid).ok_or(Error::INVALID_TOKEN)?;
        if header.alg != verifier.alg {
            return Err(Error::INVALID_TOKEN);
        }
        let mut validation = Validation::new(verifier.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &verifier.key, &validation)
            .map_err(|_| Error::INVALID_TOKEN)?
            .claims;
        if claims.kind != ACCESS || claims.sub != claims.id.to_string() {
            return Err(Error::INVALID_TOKEN);
        }
        Ok(CachedToken {
            verified: TokenClaims {
                user_id: claims.id,
                session_id: Some(claims.sid),
                issued_at: None,
            },
            exp: claims.exp,
        })
    }

    /// Strapi's own tokens carry no `kid`; they are accepted only when the operator asked for it and
    /// configured the Strapi secret.
    fn verify_strapi(&self, token: &str, alg: Algorithm, set: &KeySet) -> Result<CachedToken> {
        if !self.settings.accept_strapi_tokens || alg != Algorithm::HS256 {
            return Err(Error::INVALID_TOKEN);
        }
        let verifier = set.verifiers.get(HS256_KID).ok_or(Error::INVALID_TOKEN)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<StrapiClaims>(token, &verifier.key, &validation)
            .map_err(|_| Error::INVALID_TOKEN)?
            .claims;
        Ok(CachedToken {
            verified: TokenClaims {
                user_id: claims.id,
                session_id: None,
                issued_at: claims.iat,
            },
            exp: claims.exp,
        })
    }

    /// The keys and what each is doing now: the HS256 secret first when one is configured, then
    /// the stored keys, newest first.
    pub async fn describe(store: &dyn Store, settings: &TokenSettings) -> Result<Vec<KeyInfo>> {
        let stored = store.signing_keys().await.or_internal()?;
        let hs256 = settings.secret.as_ref().map(|secret| KeyInfo {
            kid: HS256_KID.to_owned(),
            alg: "HS256".to_owned(),
            created_at: None,
            signing: true,
            verifies_until: None,
            fingerprint: Some(secret_fingerprint(secret)),
        });
        let stored_info = stored.iter().enumerate().map(|(i, k)| {
            let until = verifies_until(&stored, i, settings.ttl);
            KeyInfo {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                created_at: Some(k.created_at),
                signing: i == 0 && until.is_none() && settings.secret.is_none(),
                verifies_until: until,
                fingerprint: None,
            }
        });
        Ok(hs256.into_iter().chain(stored_info).collect())
    }

    /// Generates a new key that becomes the signer; older keys keep verifying their tokens.
    pub async fn rotate(
        store: &dyn Store,
        algorithm: KeyAlgorithm,
        now: Millis,
    ) -> Result<KeyInfo> {
        let key = generate(algorithm, now)?;
        store.insert_signing_key(&key).await.or_internal()?;
        Ok(KeyInfo {
            kid: key.kid,
            alg: key.alg,
            created_at: Some(key.created_at),
            signing: true,
            verifies_until: None,
            fingerprint: None,
        })
    }
}

/// When the key at `stored[i]` (newest first) stops verifying: once every token it signed has
/// expired, the token lifetime after it stopped signing, at its successor's creation or its
/// retirement, whichever came first. `None` while neither happened.
fn verifies_until(stored: &[StoredKey], i: usize, ttl: Duration) -> Option<Millis> {
    let successor = i.checked_sub(1).map(|s| stored[s].created_at);
    let stopped = match (successor, stored[i].retired_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    stopped.map(|t| t + ttl.as_millis() as Millis)
}

fn build_set(settings: &TokenSettings, stored: &[StoredKey], now: Millis) -> Result<KeySet> {
    let mut verifiers = HashMap::new();
    let mut jwks = Vec::new();
    for (i, key) in stored.iter().enumerate() {
        if verifies_until(stored, i, settings.ttl).is_some_and(|t| t <= now) {
            continue;
        }
        let Some(alg) = KeyAlgorithm::parse(&key.alg) else {
            tracing::warn!(kid = %key.kid, alg = %key.alg, "skipping a signing key of unknown algorithm");
            continue;
        };
        let (encoding, decoding) = key_pair(alg, key);
        let mut jwk = public_jwk(alg, key, &encoding)?;
        jwk.common.key_id = Some(key.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwks.push(jwk);
        verifiers.insert(
            key.kid.clone(),
            Verifier {
                alg: alg.jwt(),
                key: decoding,
            },
        );
    }
    let jwks = Arc::new(JwkSet { keys: jwks });

    if let Some(secret) = &settings.secret {
        let bytes = secret.expose_secret().as_bytes();
        verifiers.insert(
            HS256_KID.to_owned(),
            Verifier {
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(bytes),
            },
        );
        return Ok(KeySet {
            signer_kid: HS256_KID.to_owned(),
            signer_alg: Algorithm::HS256,
            signer: EncodingKey::from_secret(bytes),
            verifiers,
            jwks,
        });
    }

    // Without a secret the newest key signs; a retired one only in an admin command, which signs
    // nothing (a server replaces it at start).
    let newest = stored
        .first()
        .ok_or_else(|| Error::internal("no signing key in the database"))?;
    let alg = KeyAlgorithm::parse(&newest.alg).ok_or_else(|| {
        Error::internal(format!("signing key of unknown algorithm {}", newest.alg))
    })?;
    Ok(KeySet {
        signer_kid: newest.kid.clone(),
        signer_alg: alg.jwt(),
        signer: key_pair(alg, newest).0,
        verifiers,
        jwks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_what_its_verifier_accepts() {
        for alg in [
            KeyAlgorithm::EdDsa,
            KeyAlgorithm::Es256,
            KeyAlgorithm::Rs256,
        ] {
            let key = generate(alg, 0).unwrap();
            let (enc, dec) = key_pair(alg, &key);
            let token = jsonwebtoken::encode(
                &Header::new(alg.jwt()),
                &serde_json::json!({"exp": 4_000_000_000u64}),
                &enc,
            )
            .unwrap();
            let mut v = Validation::new(alg.jwt());
            v.set_required_spec_claims(&["exp"]);
            jsonwebtoken::decode::<serde_json::Value>(&token, &dec, &v)
                .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            // The published JWK verifies too.
            let jwk = public_jwk(alg, &key, &enc).unwrap();
            let from_jwk = DecodingKey::from_jwk(&jwk).unwrap();
            jsonwebtoken::decode::<serde_json::Value>(&token, &from_jwk, &v)
                .unwrap_or_else(|e| panic!("{alg:?} via JWK: {e}"));
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [
            KeyAlgorithm::EdDsa,
            KeyAlgorithm::Es256,
            KeyAlgorithm::Rs256,
        ] {
            assert_eq!(KeyAlgorithm::parse(alg.name()), Some(alg));
        }
        assert_eq!(KeyAlgorithm::parse("HS256"), None);
        assert_eq!(KeyAlgorithm::parse("none"), None);
    }
}
