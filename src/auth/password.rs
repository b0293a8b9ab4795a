//! Password hashing: argon2id for everything Keyway writes, bcrypt verification for hashes imported from
//! Strapi (re-hashed to argon2id on the next successful login).
//!
//! Hashing is deliberately slow and memory-hungry (~19 MiB each at the defaults), so it never runs on the
//! async runtime: each hash takes a permit from a semaphore sized to the CPUs and runs on the blocking
//! pool. A login flood then queues for permits instead of starving request handling or exhausting memory.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// argon2id cost parameters. The defaults are OWASP's current minimum recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl HashParams {
    fn argon2(&self) -> Result<Argon2<'static>> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| Error::internal(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Correct. `rehash` is set when the stored hash is bcrypt or argon2 with other parameters, so the
    /// caller should store a fresh hash made with the current settings.
    Match {
        rehash: bool,
    },
    Mismatch,
}

/// Counters the tests and operators can read; cheap atomics, no locks.
#[derive(Debug, Default)]
pub struct HasherStats {
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    verifications: AtomicU64,
}

impl HasherStats {
    /// Largest number of hashes that ever ran at the same time.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::Relaxed)
    }
    /// Number of password verifications performed, including those against the dummy hash.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Hasher {
    params: HashParams,
    permits: Arc<Semaphore>,
    /// A real hash of a random password with the current parameters. Verifying against it when the user
    /// does not exist makes "no such user" cost the same as "wrong password".
    dummy_hash: Arc<str>,
    stats: Arc<HasherStats>,
}

impl Hasher {
    pub async fn new(params: HashParams, concurrency: usize) -> Result<Self> {
        params.argon2()?; // refuse bad parameters at start-up, not on the first login
        let mut hasher = Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::from(""),
            stats: Arc::default(),
        };
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let throwaway = SecretString::from(base64_url(&random));
        hasher.dummy_hash = Arc::from(hasher.hash(throwaway).await?);
        Ok(hasher)
    }

    pub fn stats(&self) -> &HasherStats {
        &self.stats
    }

    /// Hashes a new password with argon2id and the configured parameters.
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let params = self.params;
        self.run(move || {
            let hash = params
                .argon2()?
                .hash_password(password.expose_secret().as_bytes())
                .map_err(|e| Error::internal(format!("argon2 hashing failed: {e}")))?;
            Ok(hash.to_string())
        })
        .await
    }

    /// Checks `password` against `stored`. A missing or unreadable hash is checked against the dummy
    /// hash, so the time taken does not tell whether the account exists.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<Verified> {
        let params = self.params;
        let dummy = self.dummy_hash.clone();
        let stats = self.stats.clone();
        self.run(move || {
            stats.verifications.fetch_add(1, Ordering::Relaxed);
            let pw = password.expose_secret().as_bytes();
            let stored = stored.unwrap_or_default();
            if is_bcrypt(&stored) {
                // non_truncating: a password longer than bcrypt's 72 bytes must not match a hash of
                // its first 72 bytes.
                return Ok(match bcrypt::non_truncating_verify(pw, &stored) {
                    Ok(true) => Verified::Match { rehash: true },
                    _ => Verified::Mismatch,
                });
            }
            let (hash, real) = match PasswordHash::new(&stored) {
                Ok(h) if h.algorithm.as_str().starts_with("argon2") => (h, true),
                _ => (
                    PasswordHash::new(&dummy).map_err(|e| Error::internal(e.to_string()))?,
                    false,
                ),
            };
            let ok = params.argon2()?.verify_password(pw, &hash).is_ok();
            if !(ok && real) {
                return Ok(Verified::Mismatch);
            }
            let same_params = hash.algorithm.as_str() == "argon2id"
                && Params::try_from(&hash).is_ok_and(|p| {
                    (p.m_cost(), p.t_cost(), p.p_cost())
                        == (params.m_cost_kib, params.t_cost, params.p_cost)
                });
            Ok(Verified::Match {
                rehash: !same_params,
            })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        let stats = self.stats.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
            let out = work();
            stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            out
        })
        .await
        .map_err(Error::internal)?
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

/// Whether [`Hasher::verify`] can ever match this stored hash: bcrypt (what Strapi writes) or an
/// argon2 PHC string. Anything else only ever verifies as a mismatch, so an import does not keep it.
pub fn is_verifiable(hash: &str) -> bool {
    is_bcrypt(hash)
        || PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

pub(crate) fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters keep the unit tests fast; the behaviour does not depend on cost.
    fn cheap() -> HashParams {
        HashParams {
            m_cost_kib: 256,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let h = Hasher::new(cheap(), 2).await.unwrap();
        let stored = h.hash(secret("correct horse")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        assert_eq!(
            h.verify(secret("correct horse"), Some(stored.clone()))
                .await
                .unwrap(),
            Verified::Match { rehash: false }
        );
        assert_eq!(
            h.verify(secret("wrong horse"), Some(stored)).await.unwrap(),
            Verified::Mismatch
        );
    }

    #[tokio::test]
    async fn default_parameters_are_owasp_minimum() {
        let h = Hasher::new(HashParams::default(), 1).await.unwrap();
        let stored = h.hash(secret("pw")).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
    }

    #[tokio::test]
    async fn other_parameters_ask_for_a_rehash() {
        let old = Hasher::new(cheap(), 1).await.unwrap();
        let stored = old.hash(secret("pw")).await.unwrap();
        let stronger = Hasher::new(
            HashParams {
                m_cost_kib: 512,
                ..cheap()
            },
            1,
        )
        .await
        .unwrap();
        assert_eq!(
            stronger.verify(secret("pw"), Some(stored)).await.unwrap(),
            Verified::Match { rehash: true }
        );
    }

    #[tokio::test]
    async fn strapi_bcrypt_hashes_verify_and_ask_for_rehash() {
        let h = Hasher::new(cheap(), 1).await.unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let b = bcrypt::hash("appsmith_password", 4).unwrap();
            let stored = format!("{prefix}{}", &b[4..]);
            assert_eq!(
                h.verify(secret("appsmith_password"), Some(stored.clone()))
                    .await
                    .unwrap(),
                Verified::Match { rehash: true },
                "{prefix}"
            );
            assert_eq!(
                h.verify(secret("appsmith_passwore"), Some(stored))
                    .await
                    .unwrap(),
                Verified::Mismatch
            );
        }
    }

    #[tokio::test]
    async fn bcrypt_never_matches_by_truncation() {
        let h = Hasher::new(cheap(), 1).await.unwrap();
        let first72 = "a".repeat(72);
        let stored = bcrypt::hash(&first72, 4).unwrap();
        let longer = format!("{first72}-and-more");
        assert_eq!(
            h.verify(secret(&longer), Some(stored)).await.unwrap(),
            Verified::Mismatch
        );
    }

    #[tokio::test]
    async fn missing_or_garbage_hash_costs_a_verification_and_never_matches() {
        let h = Hasher::new(cheap(), 1).await.unwrap();
        let before = h.stats().verifications();
        for stored in [None, Some(String::new()), Some("plaintext".into())] {
            assert_eq!(
                h.verify(secret("plaintext"), stored).await.unwrap(),
                Verified::Mismatch
            );
        }
        assert_eq!(h.stats().verifications(), before + 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hashes_are_bounded() {
        let h = Hasher::new(
            HashParams {
                m_cost_kib: 4096,
                t_cost: 3,
                p_cost: 1,
            },
            2,
        )
        .await
        .unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(secret(&format!("pw{i}"))).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let peak = h.stats().peak_in_flight();
        assert!((1..=2).contains(&peak), "peak {peak}");
    }
}
