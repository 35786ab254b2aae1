//! argon2id verification with reused working memory.
//!
//! One argon2id verification (m = 19 MiB) fills 19 MiB of memory blocks. The `argon2` crate's
//! `PasswordVerifier` allocates them afresh for every call; under glibc a freed block of that
//! size does not go back to the system (the dynamic mmap threshold rises to it, and each
//! blocking-pool thread has its own arena), so every thread that ever verified a password
//! keeps ~19 MiB: 32 concurrent logins took a camera from 152 to 722 MiB, and bounding the
//! concurrency to two still left ~500 MiB (measured with the snapshot server's test). Here
//! the blocks come from a pool of two working memories and go back to it, and a verification
//! that finds both in use waits for one: memory stays at two working memories whatever the
//! number of threads, logins and callers (the web login, the snapshot server, RTSPS Basic).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;

/// Working memories in existence at most, so verifications running at once at most.
const POOLED: usize = 2;

/// A pool of argon2 working memories, one per running verification.
#[derive(Debug, Default)]
pub struct ArgonMemory {
    pool: Mutex<Pool>,
    /// Signalled when a memory goes back to the pool.
    returned: Condvar,
    allocations: AtomicU64,
}

#[derive(Debug, Default)]
struct Pool {
    free: Vec<Vec<Block>>,
    /// Memories in existence: free ones and those lent out.
    total: usize,
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

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A working memory of `count` blocks: a free one of that size, a new one while fewer
    /// than [`POOLED`] exist (or in place of a free one of another size: a hash with other
    /// parameters), else the next one returned.
    fn take(&self, count: usize) -> Vec<Block> {
        let mut pool = self.lock();
        loop {
            if let Some(i) = pool.free.iter().position(|b| b.len() == count) {
                return pool.free.swap_remove(i);
            }
            if pool.total < POOLED || pool.free.pop().is_some() {
                if pool.total < POOLED {
                    pool.total += 1;
                }
                drop(pool);
                self.allocations.fetch_add(1, Ordering::Relaxed);
                return vec![Block::default(); count];
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, blocks: Vec<Block>) {
        self.lock().free.push(blocks);
        self.returned.notify_one();
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

    /// The point of the pool: many logins on many threads at once, whoever calls, allocate
    /// two working memories, not one per login or per thread; the others wait their turn.
    #[test]
    fn many_logins_on_many_threads_share_two_memories() {
        let mem = ArgonMemory::new();
        let h = phc("pw", small());
        let parsed = PasswordHash::new(&h).unwrap();
        let gate = std::sync::Barrier::new(32);
        std::thread::scope(|s| {
            for i in 0..32 {
                let (mem, parsed, gate) = (&mem, &parsed, &gate);
                s.spawn(move || {
                    gate.wait();
                    let guess: &[u8] = if i % 2 == 0 { b"pw" } else { b"wrong" };
                    assert_eq!(mem.verify(guess, parsed), i % 2 == 0);
                });
            }
        });
        assert!(mem.allocations() <= 2, "{} allocations", mem.allocations());
        // A hash with other parameters replaces a free memory rather than adding a third.
        let other = phc("pw", Params::new(128, 1, 1, None).unwrap());
        assert!(mem.verify(b"pw", &PasswordHash::new(&other).unwrap()));
        assert!(mem.lock().total <= 2);
    }
}
