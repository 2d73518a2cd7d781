//! Poll-interval jitter, so agents that started together (a site powered on at
//! 8:00, a fleet re-imaged at once) do not keep polling central in lockstep.
//!
//! Each poll answer carries the configured `poll_interval` moved by a uniform
//! random amount within ±[`POLL_JITTER_PERCENT`] %, in whole seconds (the wire
//! field is seconds), never below 1 s. The randomness is behind [`Random`] so
//! tests can pin it.

use rand_core::{OsRng, RngCore};

/// How far, in percent of `poll_interval`, each poll answer may move either way.
pub const POLL_JITTER_PERCENT: u64 = 20;

/// A source of uniform random numbers.
pub trait Random: Send + Sync + 'static {
    /// A number drawn uniformly from `0..=max`.
    fn up_to(&self, max: u64) -> u64;
}

/// The operating system's generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn up_to(&self, max: u64) -> u64 {
        match max.checked_add(1) {
            // The modulo bias is below 2^-40 for any interval a human configures.
            Some(span) => OsRng.next_u64() % span,
            None => OsRng.next_u64(),
        }
    }
}

/// The lowest and highest interval a poll answer may carry for `base_s` seconds.
pub fn poll_interval_bounds(base_s: u64) -> (u64, u64) {
    let base = u128::from(base_s);
    // Rounded inwards, so every answer stays within ±20 % of the configured value.
    let lo = (base * u128::from(100 - POLL_JITTER_PERCENT)).div_ceil(100);
    let hi = base * u128::from(100 + POLL_JITTER_PERCENT) / 100;
    let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX).max(1);
    (clamp(lo), clamp(hi).max(clamp(lo)))
}

/// The interval to hand one poll: uniform within [`poll_interval_bounds`].
pub fn poll_interval(base_s: u64, random: &dyn Random) -> u64 {
    let (lo, hi) = poll_interval_bounds(base_s);
    lo + random.up_to(hi - lo).min(hi - lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always draws the same fraction of the range.
    struct Fixed(fn(u64) -> u64);

    impl Random for Fixed {
        fn up_to(&self, max: u64) -> u64 {
            (self.0)(max)
        }
    }

    #[test]
    fn bounds_are_twenty_percent_either_way_and_never_below_one_second() {
        assert_eq!(poll_interval_bounds(60), (48, 72));
        assert_eq!(poll_interval_bounds(5), (4, 6));
        assert_eq!(poll_interval_bounds(1), (1, 1));
        assert_eq!(poll_interval_bounds(0), (1, 1));
        assert_eq!(poll_interval_bounds(3), (3, 3));
        // No overflow at the extreme: the top is clamped.
        assert_eq!(poll_interval_bounds(u64::MAX).1, u64::MAX);
    }

    #[test]
    fn the_draw_spans_the_whole_range() {
        assert_eq!(poll_interval(60, &Fixed(|_| 0)), 48);
        assert_eq!(poll_interval(60, &Fixed(|max| max)), 72);
        assert_eq!(poll_interval(60, &Fixed(|max| max / 2)), 60);
        // A generator that overshoots cannot push the answer past the bound.
        assert_eq!(poll_interval(60, &Fixed(|_| u64::MAX)), 72);
        assert_eq!(poll_interval(0, &Fixed(|max| max)), 1);
    }

    #[test]
    fn the_os_generator_stays_in_range_and_varies() {
        let draws: Vec<u64> = (0..200).map(|_| OsRandom.up_to(24)).collect();
        assert!(draws.iter().all(|d| *d <= 24));
        assert!(draws.iter().any(|d| *d != draws[0]));
        assert_eq!(OsRandom.up_to(0), 0);
        let _ = OsRandom.up_to(u64::MAX);
    }
}
