//! Password hashing: argon2id for everything Keyway writes, bcrypt verification for hashes imported from
//! Strapi (re-hashed to argon2id on the next successful login).
//!
//! Hashing is deliberately slow and memory-hungry (~19 MiB each at the defaults), so it never runs on the
//! async runtime: each hash takes a permit from a semaphore sized to the CPUs and runs on one of as many
//! dedicated threads. A login flood then queues for permits instead of starving request handling or
//! exhausting memory. Each thread keeps its argon2 working memory between hashes: allocating, zeroing
//! and faulting in 19 MiB per login cost about a sixth of a login's CPU, and per-thread allocator
//! arenas made resident memory grow far past what the permits allow. Idle threads give it back.

pub mod settings;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use subtle::ConstantTimeEq;
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
    fn argon2_params(&self) -> Result<Params> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| Error::internal(format!("invalid argon2 parameters: {e}")))
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        Ok(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.argon2_params()?,
        ))
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
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

/// Work for a hashing thread: it gets the thread's reusable argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A hashing thread drops its working memory after this long without work, so a server that had a
/// burst of logins does not keep 19 MiB per CPU resident forever.
const IDLE_RELEASE: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Hasher {
    params: HashParams,
    permits: Arc<Semaphore>,
    /// The queue of the hashing threads; they exit when the last `Hasher` clone is dropped.
    jobs: mpsc::Sender<Job>,
    /// A real hash of a random password with the current parameters. Verifying against it when the user
    /// does not exist makes "no such user" cost the same as "wrong password". Made by the first
    /// verification of any kind, so a server that has logged nobody in holds no hashing memory.
    dummy_hash: Arc<tokio::sync::OnceCell<Arc<str>>>,
    stats: Arc<HasherStats>,
}

impl Hasher {
    pub async fn new(params: HashParams, concurrency: usize) -> Result<Self> {
        params.argon2()?; // refuse bad parameters at start-up, not on the first login
        let concurrency = concurrency.max(1);
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs: start_threads(concurrency)?,
            dummy_hash: Arc::default(),
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> &HasherStats {
        &self.stats
    }

    /// Hashes a new password with argon2id and the configured parameters.
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let params = self.params;
        self.run(move |memory| {
            let argon2_params = params.argon2_params()?;
            let salt = Salt::generate();
            let mut out = [0u8; 32];
            compute(
                Algorithm::Argon2id,
                Version::V0x13,
                &argon2_params,
                password.expose_secret().as_bytes(),
                &salt,
                &mut out,
                memory,
            )?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&argon2_params).map_err(Error::internal)?,
                salt: Some(salt),
                hash: Some(Output::new(&out).map_err(Error::internal)?),
            };
            Ok(phc.to_string())
        })
        .await
    }

    /// Checks `password` against `stored`. A missing or unreadable hash is checked against the dummy
    /// hash, so the time taken does not tell whether the account exists.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<PasswordCheck> {
        let params = self.params;
        // Every verification waits for the dummy, known account or not, so only the very first login
        // of the process is slower, whoever it is for.
        let dummy = self
            .dummy_hash
            .get_or_try_init(|| async {
                let mut random = [0u8; 32];
                rand::fill(&mut random);
                let throwaway = SecretString::from(base64_url(&random));
                self.hash(throwaway).await.map(Arc::from)
            })
            .await?
            .clone();
        let stats = self.stats.clone();
        self.run(move |memory| {
            stats.verifications.fetch_add(1, Ordering::Relaxed);
            let pw = password.expose_secret().as_bytes();
            let stored = stored.unwrap_or_default();
            let dummy = || PasswordHash::new(&dummy).map_err(|e| Error::internal(e.to_string()));
            if is_bcrypt(&stored) {
                // non_truncating: a password longer than bcrypt's 72 bytes must not match a hash of
                // its first 72 bytes.
                match bcrypt::non_truncating_verify(pw, &stored) {
                    Ok(true) => return Ok(PasswordCheck::Match { rehash: true }),
                    Ok(false) => return Ok(PasswordCheck::Mismatch),
                    // 72 bytes or more (or a malformed hash) is refused before any hashing: answered
                    // at once, it would tell an imported account from an unknown name, which pays
                    // the dummy verification. So it pays the same.
                    Err(_) => {
                        verify_phc(pw, &dummy()?, memory);
                        return Ok(PasswordCheck::Mismatch);
                    }
                }
            }
            let (hash, real) = match PasswordHash::new(&stored) {
                Ok(h) if h.algorithm.as_str().starts_with("argon2") => (h, true),
                _ => (dummy()?, false),
            };
            let ok = verify_phc(pw, &hash, memory);
            if !(ok && real) {
                return Ok(PasswordCheck::Mismatch);
            }
            let same_params = hash.algorithm.as_str() == "argon2id"
                && Params::try_from(&hash).is_ok_and(|p| {
                    (p.m_cost(), p.t_cost(), p.p_cost())
                        == (params.m_cost_kib, params.t_cost, params.p_cost)
                });
            Ok(PasswordCheck::Match {
                rehash: !same_params,
            })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        let stats = self.stats.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _permit = permit;
            let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
            let out = work(memory);
            stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            // The caller may have gone (client disconnected); the result is then not needed.
            let _ = done.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal("the hashing threads are gone"))?;
        result
            .await
            .map_err(|_| Error::internal("a hashing thread failed"))?
    }
}

/// Starts `n` hashing threads sharing one queue (the rate is a few hundred jobs a second at most, so
/// a mutex around the receiver costs nothing measurable).
fn start_threads(n: usize) -> Result<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..n {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("keyway-hash-{i}"))
            .spawn(move || {
                let mut memory: Vec<Block> = Vec::new();
                loop {
                    let next = queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .recv_timeout(IDLE_RELEASE);
                    match next {
                        Ok(job) => job(&mut memory),
                        Err(mpsc::RecvTimeoutError::Timeout) => memory = Vec::new(),
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|e| Error::internal(format!("cannot start a hashing thread: {e}")))?;
    }
    Ok(jobs)
}

/// argon2 into `out`, in `memory` (grown to the parameters' size when smaller). argon2 overwrites every
/// block it uses before reading it, so memory left by an earlier hash needs no clearing.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<()> {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt, out, &mut memory[..])
        .map_err(|e| Error::internal(format!("argon2 hashing failed: {e}")))
}

/// Whether `password` matches an argon2 PHC hash, computed with the hash's own algorithm, version and
/// parameters, compared in constant time.
fn verify_phc(password: &[u8], hash: &PasswordHash, memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::V0x13), Version::try_from)
        .unwrap_or(Version::V0x13);
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    // Stored hashes come from our own database, but refuse absurd costs rather than allocate them.
    if params.m_cost() > MAX_VERIFY_M_COST_KIB || params.t_cost() > MAX_VERIFY_T_COST {
        return false;
    }
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    if compute(
        algorithm, version, &params, password, salt, &mut out, memory,
    )
    .is_err()
    {
        return false;
    }
    out.ct_eq(expected).into()
}

/// Upper bounds on the cost of a stored hash this server will verify: far above any sane setting.
const MAX_VERIFY_M_COST_KIB: u32 = 4 * 1024 * 1024;
const MAX_VERIFY_T_COST: u32 = 64;

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

    /// What `h` says of `password` against a stored hash.
    async fn check(h: &Hasher, password: &str, stored: &str) -> PasswordCheck {
        h.verify(secret(password), Some(stored.to_owned()))
            .await
            .unwrap()
    }

    /// `stored` verifies `password`, asking for a rehash or not, and not the near miss.
    async fn assert_verifies_only(
        h: &Hasher,
        stored: &str,
        password: &str,
        near_miss: &str,
        rehash: bool,
    ) {
        assert_eq!(
            check(h, password, stored).await,
            PasswordCheck::Match { rehash },
            "{stored}"
        );
        assert_eq!(
            check(h, near_miss, stored).await,
            PasswordCheck::Mismatch,
            "{stored}"
        );
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let h = Hasher::new(cheap(), 2).await.unwrap();
        let stored = h.hash(secret("correct horse")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        assert_verifies_only(&h, &stored, "correct horse", "wrong horse", false).await;
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own_hashing_and_verifying() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let h = Hasher::new(cheap(), 1).await.unwrap();
        // Ours, checked by the library.
        let ours = h.hash(secret("correct horse")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        let library = cheap().argon2().unwrap();
        assert!(library.verify_password(b"correct horse", &parsed).is_ok());
        assert!(library.verify_password(b"correct horsf", &parsed).is_err());
        // The library's (and other variants, other versions, bigger and smaller memory in turn on the
        // same thread), checked by ours.
        for (algorithm, version, m) in [
            (Algorithm::Argon2id, Version::V0x13, 512),
            (Algorithm::Argon2i, Version::V0x13, 64),
            (Algorithm::Argon2d, Version::V0x10, 1024),
            (Algorithm::Argon2id, Version::V0x13, 8),
        ] {
            let params = Params::new(m, 1, 1, None).unwrap();
            let theirs = Argon2::new(algorithm, version, params)
                .hash_password(b"correct horse")
                .unwrap()
                .to_string();
            assert_verifies_only(&h, &theirs, "correct horse", "correct horsf", true).await;
        }
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
            check(&stronger, "pw", &stored).await,
            PasswordCheck::Match { rehash: true }
        );
    }

    #[tokio::test]
    async fn strapi_bcrypt_hashes_verify_and_ask_for_rehash() {
        let h = Hasher::new(cheap(), 1).await.unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let b = bcrypt::hash("appsmith_password", 4).unwrap();
            let stored = format!("{prefix}{}", &b[4..]);
            assert_verifies_only(&h, &stored, "appsmith_password", "appsmith_passwore", true).await;
        }
    }

    #[tokio::test]
    async fn bcrypt_never_matches_by_truncation() {
        let h = Hasher::new(cheap(), 1).await.unwrap();
        let first72 = "a".repeat(72);
        let stored = bcrypt::hash(&first72, 4).unwrap();
        let longer = format!("{first72}-and-more");
        assert_eq!(check(&h, &longer, &stored).await, PasswordCheck::Mismatch);
    }

    #[tokio::test]
    async fn missing_or_garbage_hash_costs_a_verification_and_never_matches() {
        let h = Hasher::new(cheap(), 1).await.unwrap();
        let before = h.stats().verifications();
        for stored in [None, Some(String::new()), Some("plaintext".into())] {
            assert_eq!(
                h.verify(secret("plaintext"), stored).await.unwrap(),
                PasswordCheck::Mismatch
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
