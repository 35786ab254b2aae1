//! argon2id verification with reused working memory.
//!
//! One argon2id verification (m = 19 MiB) fills 19 MiB of memory blocks. The `argon2` crate's
//! `PasswordVerifier` allocates them afresh for every call; under glibc a freed block of that
//! size does not go back to the system (the dynamic mmap threshold rises to it, and each
//! blocking-pool thread has its own arena), so every thread that ever verified a password
//! keeps ~19 MiB: 32 concurrent logins took a camera from 152 to 722 MiB, and bounding the
//! concurrency to two still left ~500 MiB (measured with the snapshot server's test). Here
//! the blocks are taken from a small pool and returned, so memory stays at the pool's size
//! whatever the number of threads and logins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;

/// Working memory kept between verifications; more concurrent verifications than this
/// allocate (and free) their own. The web edge lets two run at once.
const POOLED: usize = 2;

/// A pool of argon2 working memories, one per concurrent verification.
#[derive(Debug, Default)]
pub struct ArgonMemory {
    pool: Mutex<Vec<Vec<Block>>>,
    allocations: AtomicU64,
}

impl ArgonMemory {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many working memories this pool has allocated so far.
    #[cfg(test)]
    fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Whether `password` matches the PHC string `hash` (argon2id/argon2i/argon2d, any
    /// version and parameters the string names). A malformed hash never matches.
    pub fn verify(&self, password: &[u8], hash: &PasswordHash<'_>) -> bool {
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
            return false;
        };
        let version = match hash.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let expected = expected.as_bytes();
        let mut out = vec![0u8; expected.len()];
        let mut blocks = self.take(params.block_count());
        let argon = Argon2::new(algorithm, version, params);
        let ok = argon
            .hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
            .is_ok()
            && bool::from(out.ct_eq(expected));
        self.give_back(blocks);
        ok
    }

    fn take(&self, count: usize) -> Vec<Block> {
        let reused = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            let i = pool.iter().position(|b| b.len() == count);
            i.map(|i| pool.swap_remove(i))
        };
        reused.unwrap_or_else(|| {
            self.allocations.fetch_add(1, Ordering::Relaxed);
            vec![Block::default(); count]
        })
    }

    fn give_back(&self, blocks: Vec<Block>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOLED {
            pool.push(blocks);
        }
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher as _, SaltString};

    use super::*;

    fn phc(password: &str, params: Params) -> String {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn small() -> Params {
        Params::new(64, 1, 1, None).unwrap()
    }

    #[test]
    fn agrees_with_the_crates_own_verifier() {
        use argon2::password_hash::PasswordVerifier as _;
        let mem = ArgonMemory::new();
        for params in [small(), Params::default()] {
            let h = phc("correct horse", params);
            let parsed = PasswordHash::new(&h).unwrap();
            assert!(mem.verify(b"correct horse", &parsed));
            assert!(!mem.verify(b"correct horsf", &parsed));
            assert!(!mem.verify(b"", &parsed));
            assert!(Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok());
        }
        // Parameters other than the defaults, and a hash cut short, are handled.
        let h = phc("pw", Params::new(128, 3, 2, Some(16)).unwrap());
        assert!(mem.verify(b"pw", &PasswordHash::new(&h).unwrap()));
        let cut = &h[..h.len() - 4];
        assert!(!PasswordHash::new(cut).is_ok_and(|p| mem.verify(b"pw", &p)));
    }

    /// The point of the pool: many logins on many threads, two at a time (the edge's
    /// bound), allocate two working memories, not one per login or per thread.
    #[test]
    fn many_logins_on_many_threads_reuse_two_memories() {
        let mem = ArgonMemory::new();
        let h = phc("pw", small());
        let parsed = PasswordHash::new(&h).unwrap();
        let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
        for _ in 0..16 {
            std::thread::scope(|s| {
                for guess in [b"pw".as_slice(), b"wrong".as_slice()] {
                    let (mem, parsed, gate) = (&mem, &parsed, gate.clone());
                    s.spawn(move || {
                        gate.wait();
                        assert_eq!(mem.verify(guess, parsed), guess == b"pw");
                    });
                }
            });
        }
        assert!(mem.allocations() <= 2, "{} allocations", mem.allocations());
    }
}
