//! The one pseudo-random generator of the pure core: SplitMix64 and the few draws built on it.
//!
//! Written out because what a seed stands for (a random split, a random topology) must never change,
//! and `rand`'s `StdRng` reserves the right to change its algorithm between versions.

/// SplitMix64 (Steele, Lea and Flood, 2014); the field is the state, which is also the seed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0): draws past the last whole multiple of `bound` are redrawn,
    /// as a plain `% bound` would favour small values.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let x = self.next();
            if x < zone {
                return x % bound;
            }
        }
    }

    /// Uniform in `0..bound` as an index (`bound` > 0).
    pub(crate) fn index(&mut self, bound: usize) -> usize {
        self.below(bound as u64) as usize
    }

    /// Uniform in `[0, 1)`, from the 53 high bits of one draw.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fisher–Yates shuffle from the end: position `i` swaps with `below(i + 1)`.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference() {
        // First outputs of the reference implementation (Vigna's splitmix64.c) seeded with 0.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn below_stays_below_and_reaches_every_value() {
        let mut rng = SplitMix64(7);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let x = rng.below(5);
            assert!(x < 5);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn unit_is_in_the_half_open_interval() {
        let mut rng = SplitMix64(1);
        let draws: Vec<f64> = (0..1000).map(|_| rng.unit()).collect();
        assert!(draws.iter().all(|&u| (0.0..1.0).contains(&u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
        // The 53 high bits of the first reference output.
        assert_eq!(
            SplitMix64(0).unit(),
            (0xe220_a839_7b1d_cdafu64 >> 11) as f64 / 2f64.powi(53)
        );
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        for n in 0..=20 {
            let mut items: Vec<usize> = (0..n).collect();
            SplitMix64(n as u64).shuffle(&mut items);
            let mut again: Vec<usize> = (0..n).collect();
            SplitMix64(n as u64).shuffle(&mut again);
            assert_eq!(items, again);
            items.sort_unstable();
            assert_eq!(items, (0..n).collect::<Vec<_>>());
        }
    }
}
