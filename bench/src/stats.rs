//! Percentiles of timings, their summary, and how far a difference of two medians can
//! move by chance alone.

use std::time::Duration;

use crate::results::Summary;

/// p-th percentile (0..=100) of durations, in milliseconds.
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Count, p50, p90, p99 and max of `v`, in milliseconds (sorts `v`).
pub fn summary(v: &mut [Duration]) -> Summary {
    v.sort();
    Summary {
        n: v.len(),
        p50_ms: pct(v, 50.0),
        p90_ms: pct(v, 90.0),
        p99_ms: pct(v, 99.0),
        max_ms: pct(v, 100.0),
        p50_minus_direct_p50_95ci_ms: None,
    }
}

/// A 95% bootstrap interval of median(`a`) − median(`b`), in ms: how far the
/// difference of two p50s can move by chance alone with these samples.
pub fn median_difference_interval(a: &[Duration], b: &[Duration]) -> [f64; 2] {
    if a.is_empty() || b.is_empty() {
        return [f64::NAN, f64::NAN];
    }
    // xorshift64*: a fixed seed keeps the interval repeatable for the same samples.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    };
    let median = |v: &[Duration], next: &mut dyn FnMut(usize) -> usize| {
        let mut r: Vec<Duration> = (0..v.len()).map(|_| v[next(v.len())]).collect();
        r.sort();
        pct(&r, 50.0)
    };
    let mut diffs: Vec<f64> = (0..2000)
        .map(|_| median(a, &mut next) - median(b, &mut next))
        .collect();
    diffs.sort_by(f64::total_cmp);
    [diffs[50], diffs[1949]]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::median_difference_interval;

    #[test]
    fn median_difference_interval_brackets_a_shift() {
        let a: Vec<Duration> = (0..101)
            .map(|i| Duration::from_micros(5_000 + i * 5))
            .collect();
        let b: Vec<Duration> = a.iter().map(|d| *d + Duration::from_millis(1)).collect();
        let [lo, hi] = median_difference_interval(&b, &a);
        assert!(lo <= 1.0 && 1.0 <= hi && hi - lo < 1.0, "{lo} {hi}");
        let [lo, hi] = median_difference_interval(&a, &a);
        assert!(lo <= 0.0 && 0.0 <= hi, "{lo} {hi}");
    }
}
