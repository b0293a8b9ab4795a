//! The token settings, declared once: the HS256 secret or the algorithm of generated keys, lifetime,
//! issuer and audience. Validated into [`TokenSettings`].

use secrecy::SecretString;
use std::path::PathBuf;

use super::{KeyAlgorithm, TokenSettings};
use crate::settings::{Checked, Dur, Invalid, secret, section};

/// Shortest HS256 secret accepted: 256 bits, the size of the HMAC-SHA256 output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

section! {
    /// The token section.
    pub struct TokenSection {
        /// HS256 secret, at least 32 bytes (e.g. your Strapi JWT_SECRET).
        jwt_secret: Option<String> = None; Env, "—";
        /// File holding the HS256 secret.
        jwt_secret_file: Option<PathBuf> = None; Serve, "—";
        /// Algorithm of generated signing keys: EdDSA, ES256 or RS256.
        jwt_algorithm: KeyAlgorithm = KeyAlgorithm::EdDsa; Serve, "`EdDSA`";
        /// Access-token lifetime: seconds, or a number with s, m, h or d.
        jwt_ttl: Dur = Dur::secs(30 * 86_400); Serve, "`30d`";
        /// The `iss` claim issued and required.
        jwt_issuer: String = "keyway".into(); Serve, "`keyway`";
        /// The `aud` claim issued and required.
        jwt_audience: String = "keyway".into(); Serve, "`keyway`";
        /// Accept tokens Strapi issued with the same secret until they expire.
        accept_strapi_tokens: bool = false; Serve, "`false`";
    }
}

impl TokenSection {
    pub fn validate(self) -> Checked<TokenSettings> {
        // The *_FILE setting wins over the secret itself.
        let secret = secret(
            self.jwt_secret,
            "jwt_secret_file",
            self.jwt_secret_file.as_deref(),
        )?
        .filter(|s| !s.is_empty());
        if let Some(secret) = &secret
            && secret.len() < MIN_JWT_SECRET_BYTES
        {
            let key = match self.jwt_secret_file {
                Some(_) => "jwt_secret_file",
                None => "jwt_secret",
            };
            return Err(Invalid::new(
                key,
                format!(
                    "the JWT secret is {} bytes; it must be at least {MIN_JWT_SECRET_BYTES} \
                     (generate one with: openssl rand -base64 48)",
                    secret.len()
                ),
            ));
        }
        if self.accept_strapi_tokens && secret.is_none() {
            return Err(Invalid::new(
                "accept_strapi_tokens",
                "needs the Strapi JWT secret (KEYWAY_JWT_SECRET)",
            ));
        }
        Ok(TokenSettings {
            secret: secret.map(SecretString::from),
            algorithm: self.jwt_algorithm,
            ttl: self.jwt_ttl.positive("jwt_ttl")?,
            issuer: self.jwt_issuer,
            audience: self.jwt_audience,
            accept_strapi_tokens: self.accept_strapi_tokens,
        })
    }
}
