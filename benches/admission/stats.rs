//! Latency samples and their percentiles.

use std::time::Duration;

/// Latencies of one series, in the order measured.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: Vec<Duration>,
}

impl Samples {
    pub fn push(&mut self, value: Duration) {
        self.values.push(value);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.values.clone();
        sorted.sort();
        let total: Duration = sorted.iter().sum();
        Summary {
            p50: nearest_rank(&sorted, 50.0),
            p90: nearest_rank(&sorted, 90.0),
            p99: nearest_rank(&sorted, 99.0),
            mean: if sorted.is_empty() {
                Duration::ZERO
            } else {
                total / sorted.len() as u32
            },
        }
    }
}

/// The nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[Duration], percentile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((percentile / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a table row shows of a series.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

/// `1.234 ms`, or `456 µs` below a millisecond.
pub fn ms(value: Duration) -> String {
    let micros = value.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}

/// `×2.31`: how many times `value` is `base`.
pub fn ratio(value: Duration, base: Duration) -> String {
    if base.is_zero() {
        return "n/a".to_string();
    }
    format!("×{:.2}", value.as_secs_f64() / base.as_secs_f64())
}

/// `×0.87` for two plain numbers.
pub fn ratio_f(value: f64, base: f64) -> String {
    if base == 0.0 {
        return "n/a".to_string();
    }
    format!("×{:.2}", value / base)
}

/// The median of a few numbers (the middle one, the lower middle for an even count).
pub fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    order[(order.len().saturating_sub(1)) / 2]
}
