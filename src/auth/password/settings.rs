//! The password hashing settings, declared once: argon2id's costs and how many hashes may run at
//! once. Validated into [`HashParams`] and the hasher's concurrency.

use super::HashParams;
use crate::settings::{Checked, at_least_one, section};

section! {
    /// The hashing section.
    pub struct HashSection {
        /// argon2id memory cost in KiB (OWASP's minimum).
        argon2_memory_kib: u32 = HashParams::default().m_cost_kib; Serve, "`19456`";
        /// argon2id iterations.
        argon2_iterations: u32 = HashParams::default().t_cost; Serve, "`2`";
        /// argon2id parallelism (lanes).
        argon2_parallelism: u32 = HashParams::default().p_cost; Serve, "`1`";
        /// Password hashes allowed to run at once.
        hash_concurrency: usize = std::thread::available_parallelism().map_or(2, |n| n.get());
            Serve, "number of CPUs";
    }
}

impl HashSection {
    pub fn validate(self) -> Checked<(HashParams, usize)> {
        let params = HashParams {
            m_cost_kib: self.argon2_memory_kib,
            t_cost: self.argon2_iterations,
            p_cost: self.argon2_parallelism,
        };
        Ok((
            params,
            at_least_one("hash_concurrency", self.hash_concurrency, "")?,
        ))
    }
}
