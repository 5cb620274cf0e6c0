//! A fixed-memory latency histogram for the load generator.
//!
//! Keeping every sample would grow without bound on long runs; logarithmic
//! buckets 1% wide keep quantiles within 1% using ~15 KiB whatever the count.

use std::time::Duration;

/// Ratio between consecutive bucket bounds.
const GROWTH: f64 = 1.01;
/// 1 µs · 1.01^1900 ≈ 160 s: past any request timeout we would use.
const BUCKETS: usize = 1900;

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    count: u64,
    sum: Duration,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: Duration::ZERO,
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, d: Duration) {
        let micros = d.as_secs_f64() * 1e6;
        let idx = if micros <= 1.0 {
            0
        } else {
            // Saturating float-to-int cast, then clamped: huge values land in
            // the last bucket instead of panicking.
            ((micros.ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
        };
        self.counts[idx] += 1;
        self.count += 1;
        self.sum += d;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> Option<Duration> {
        u32::try_from(self.count)
            .ok()
            .filter(|&n| n > 0)
            .map(|n| self.sum / n)
    }

    /// The `q` quantile (0..=1), as the upper bound of its bucket (so within
    /// 1% above the true value); `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_secs_f64(GROWTH.powi(i as i32) / 1e6));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 1000);
        for (q, want_ms) in [(0.5, 500.0), (0.99, 990.0), (1.0, 1000.0), (0.001, 1.0)] {
            let got = h.quantile(q).unwrap().as_secs_f64() * 1e3;
            assert!(
                got >= want_ms * 0.999 && got <= want_ms * 1.011,
                "q{q}: {got} vs {want_ms}"
            );
        }
        assert_eq!(h.mean(), Some(Duration::from_micros(500_500)));
    }

    #[test]
    fn empty_and_extreme_values() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.count(), 2);
        assert!(h.quantile(1.0).unwrap() > Duration::from_secs(100));
    }
}
