//! The chaos test's random numbers: SplitMix64, small and seedable, so a seed replays
//! the same choices without a crate.

use std::hash::{BuildHasher, Hasher};

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed nobody chose: std's randomly keyed hasher.
    pub fn fresh_seed() -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.finish()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            return None;
        }
        xs.get((self.next_u64() % xs.len() as u64) as usize)
    }

    /// One of `xs`, each as likely as its weight.
    pub fn weighted<T: Copy>(&mut self, xs: &[(u64, T)]) -> T {
        let total: u64 = xs.iter().map(|(w, _)| w).sum();
        let mut n = self.next_u64() % total.max(1);
        for (w, x) in xs {
            if n < *w {
                return *x;
            }
            n -= w;
        }
        xs[xs.len() - 1].1
    }

    /// An independent generator (for a task that draws in its own order).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[test]
fn same_seed_same_numbers() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    let xs: Vec<u64> = (0..5).map(|_| a.range(3, 9)).collect();
    let ys: Vec<u64> = (0..5).map(|_| b.range(3, 9)).collect();
    assert_eq!(xs, ys);
    assert!(xs.iter().all(|x| (3..=9).contains(x)));
}
