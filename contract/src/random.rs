//! One small, fast random generator for everything that needs one: the
//! agent's trace and span ids and its `sample=` draws, the demo's load, the
//! benchmarks' data and the tests' corruptions. It is xorshift64* (Vigna,
//! 2016): one state word, three shifts and a multiply, no atomics, so a draw
//! on an application thread costs a few cycles. It is not cryptographic; ids
//! need only be unlikely to collide.
//!
//! A generator that must live in a `Cell` (the agent's per-thread state) keeps
//! its `u64` there and calls [`step`]; everything else holds a [`Rng`].

use std::hash::{BuildHasher, Hasher};

/// Advances `state` (never zero) and returns the next draw.
#[inline]
pub fn step(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A seed from the operating system's randomness (through the standard
/// library's hash seeds, so no dependency and no file to read); never zero.
pub fn seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        | 1
}

/// A generator that owns its state.
#[derive(Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator repeating the same draws for the same `seed`, for tests
    /// and load generators.
    pub fn seeded(seed: u64) -> Rng {
        // xorshift stays at zero forever from a zero state.
        Rng { state: seed | 1 }
    }

    /// A generator seeded from the operating system's randomness.
    pub fn from_entropy() -> Rng {
        Rng { state: seed() }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        step(&mut self.state)
    }

    /// A draw in `0..bound` (with a bias of at most `bound / 2^64`).
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::{seed, step, Rng};

    #[test]
    fn the_same_seed_repeats_the_same_draws_and_others_differ() {
        let draws = |seed| {
            let mut rng = Rng::seeded(seed);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        // A zero seed still draws.
        assert!(draws(0).iter().all(|&d| d != 0));
    }

    #[test]
    fn step_and_rng_draw_the_same_sequence() {
        let mut state = 0x2545_F491_4F6C_DD1D;
        let mut rng = Rng::seeded(state);
        for _ in 0..100 {
            assert_eq!(step(&mut state), rng.next_u64());
        }
    }

    #[test]
    fn draws_below_a_bound_cover_it_evenly() {
        let mut rng = Rng::seeded(42);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&n| (9_000..11_000).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn entropy_seeds_differ_and_are_never_zero() {
        let (a, b) = (seed(), seed());
        assert_ne!(a, b);
        assert!(a != 0 && b != 0);
        assert_ne!(
            Rng::from_entropy().next_u64(),
            Rng::from_entropy().next_u64()
        );
    }
}
