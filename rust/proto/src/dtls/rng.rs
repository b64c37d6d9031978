//! Injected randomness for the DTLS core: a seeded ChaCha20 DRBG, and a scripted
//! source for reproducible vectors.
//!
//! Theory of operation: the core never asks the OS for randomness (house rule, see
//! `lib.rs`). Everything random in DTLS — client/server randoms, CBC explicit IVs,
//! server-chosen session ids (PSK mode, protocol.md §5.4), HelloVerifyRequest cookies —
//! is drawn from a [`RandomSource`] owned by the connection. The production source is
//! [`Drbg`]: the ChaCha20 keystream (RFC 8439 block function, 20 rounds, zero nonce,
//! via `chacha20::ChaCha20Rng` from the RustCrypto `chacha20` crate) keyed with a
//! 32-byte seed that the caller supplies (Python draws it from `os.urandom`/`secrets`).
//! Given the same seed and the same sequence of inputs, a connection produces the same
//! bytes, which is what makes fuzzing and the simulated-network tests reproducible.
//!
//! Security note: the seed is the only entropy; a caller that reuses a seed across
//! connections reuses randoms and IVs. The endpoint (`endpoint.rs`) derives each
//! connection's seed from its own DRBG, so one fresh seed per endpoint is enough.
//!
//! [`ScriptedRandom`] hands out caller-chosen byte strings in order (and falls back to a
//! DRBG when the script runs out or a request has a different length): the §10.4/§10.5
//! vectors inject `client_random = 20..3f`, `server_random = 40..5f` and IVs `80..8f`
//! this way.

use std::collections::VecDeque;
use std::fmt;

use chacha20::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A source of (pseudo-)random bytes. Must be cryptographically strong in production.
pub trait RandomSource: Send + Sync {
    /// Fill `out` completely.
    fn fill(&mut self, out: &mut [u8]);
}

/// ChaCha20-based deterministic random bit generator keyed by a 32-byte seed.
pub struct Drbg(ChaCha20Rng);

impl Drbg {
    /// A DRBG whose whole output is determined by `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Drbg(ChaCha20Rng::from_seed(seed))
    }

    /// Draw a fresh 32-byte seed (for a child generator).
    pub fn child_seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.fill(&mut s);
        s
    }
}

impl fmt::Debug for Drbg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Drbg(..)")
    }
}

impl RandomSource for Drbg {
    fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }
}

/// Replays a script of byte strings, one per request of the same length, then falls
/// back to a DRBG. For tests and published vectors only.
pub struct ScriptedRandom {
    script: VecDeque<Vec<u8>>,
    fallback: Drbg,
}

impl ScriptedRandom {
    /// Serve `script` in order; requests that do not match the next entry's length (or
    /// come after the script ran out) are served by a DRBG seeded with zeros.
    pub fn new(script: Vec<Vec<u8>>) -> Self {
        ScriptedRandom {
            script: script.into(),
            fallback: Drbg::new([0u8; 32]),
        }
    }

    /// Entries not yet consumed.
    pub fn remaining(&self) -> usize {
        self.script.len()
    }
}

impl RandomSource for ScriptedRandom {
    fn fill(&mut self, out: &mut [u8]) {
        match self.script.front() {
            Some(next) if next.len() == out.len() => {
                out.copy_from_slice(next);
                self.script.pop_front();
            }
            _ => self.fallback.fill(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drbg_is_deterministic_and_seed_dependent() {
        let mut a = Drbg::new([7; 32]);
        let mut b = Drbg::new([7; 32]);
        let mut c = Drbg::new([8; 32]);
        let (mut x, mut y, mut z) = ([0u8; 48], [0u8; 48], [0u8; 48]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(x, [0u8; 48]);
    }

    #[test]
    fn drbg_is_chacha20_keystream() {
        // RFC 8439 §2.3.2 block function with key 00..1f would need a nonce; with the
        // zero key and zero nonce the first block is the RFC 7539 A.1 test vector #1.
        let mut d = Drbg::new([0; 32]);
        let mut out = [0u8; 16];
        d.fill(&mut out);
        assert_eq!(crate::tls::hex(&out), "76b8e0ada0f13d90405d6ae55386bd28");
    }

    #[test]
    fn scripted_serves_in_order_then_falls_back() {
        let mut s = ScriptedRandom::new(vec![vec![1; 4], vec![2; 2]]);
        let mut a = [0u8; 4];
        s.fill(&mut a);
        assert_eq!(a, [1; 4]);
        let mut b = [0u8; 3];
        s.fill(&mut b); // length mismatch: fallback, script untouched
        assert_eq!(s.remaining(), 1);
        let mut c = [0u8; 2];
        s.fill(&mut c);
        assert_eq!(c, [2; 2]);
        assert_eq!(s.remaining(), 0);
    }
}
