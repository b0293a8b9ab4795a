//! Key material: fresh key pairs for each algorithm, the signer's and verifier's forms of a stored
//! key, and the public half as a JWK.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, EncodingKey};

use super::KeyAlgorithm;
use crate::error::{Error, Result};
use crate::store::{Millis, StoredKey};

/// The public half as a JWK. Ed25519 is built from the stored public point, because the PKCS#8 form
/// ed25519-dalek writes (v2, public key included) is not one `Jwk::from_encoding_key` reads.
pub(super) fn public_jwk(
    alg: KeyAlgorithm,
    key: &StoredKey,
    encoding: &EncodingKey,
) -> Result<Jwk> {
    use jsonwebtoken::jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, OctetKeyPairParameters,
        OctetKeyPairType,
    };
    match alg {
        KeyAlgorithm::EdDsa => Ok(Jwk {
            common: CommonParameters {
                key_algorithm: Some(jsonwebtoken::jwk::KeyAlgorithm::EdDSA),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: crate::auth::password::base64_url(&key.public_raw),
            }),
        }),
        _ => Jwk::from_encoding_key(encoding, alg.jwt()).map_err(Error::internal),
    }
}

pub(super) fn key_pair(alg: KeyAlgorithm, key: &StoredKey) -> (EncodingKey, DecodingKey) {
    match alg {
        KeyAlgorithm::EdDsa => (
            EncodingKey::from_ed_der(&key.private_der),
            DecodingKey::from_ed_der(&key.public_raw),
        ),
        KeyAlgorithm::Es256 => (
            EncodingKey::from_ec_der(&key.private_der),
            DecodingKey::from_ec_der(&key.public_raw),
        ),
        KeyAlgorithm::Rs256 => (
            EncodingKey::from_rsa_der(&key.private_der),
            DecodingKey::from_rsa_der(&key.public_raw),
        ),
    }
}

/// A fresh key pair: the private half in the DER form the signer takes, the public half in the form
/// the verifier takes (raw Ed25519 point, SEC1 point, PKCS#1).
pub(super) fn generate(alg: KeyAlgorithm, now: Millis) -> Result<StoredKey> {
    let (private_der, public_raw) = match alg {
        KeyAlgorithm::EdDsa => {
            use ed25519_dalek::SigningKey;
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            let mut seed = [0u8; 32];
            rand::fill(&mut seed);
            let signing = SigningKey::from_bytes(&seed);
            let der = signing.to_pkcs8_der().map_err(Error::internal)?;
            (
                der.as_bytes().to_vec(),
                signing.verifying_key().to_bytes().to_vec(),
            )
        }
        KeyAlgorithm::Es256 => {
            use p256::pkcs8::EncodePrivateKey;
            let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
            let der = secret.to_pkcs8_der().map_err(Error::internal)?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &secret.public_key(),
                false,
            );
            (der.as_bytes().to_vec(), point.as_bytes().to_vec())
        }
        KeyAlgorithm::Rs256 => {
            use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(Error::internal)?;
            let der = private.to_pkcs1_der().map_err(Error::internal)?;
            let public = private
                .to_public_key()
                .to_pkcs1_der()
                .map_err(Error::internal)?;
            (der.as_bytes().to_vec(), public.as_bytes().to_vec())
        }
    };
    let mut kid = [0u8; 12];
    rand::fill(&mut kid);
    Ok(StoredKey {
        kid: crate::auth::password::base64_url(&kid),
        alg: alg.name().to_owned(),
        private_der,
        public_raw,
        created_at: now,
        retired_at: None,
    })
}
