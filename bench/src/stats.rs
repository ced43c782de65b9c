//! Percentiles and the small formatting helpers the report uses.

use std::time::Duration;

/// The p-th percentile (0..=100, nearest rank) of `samples`; `None` when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Microseconds below 1 ms, milliseconds with one decimal below 10 ms, whole above.
pub fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 1.0 {
        format!("{:.0} µs", m * 1000.0)
    } else if m < 10.0 {
        format!("{m:.1} ms")
    } else {
        format!("{m:.0} ms")
    }
}

/// A rate such as `98.2k/s`.
pub fn per_sec(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 99.0),
            Some(Duration::from_millis(7))
        );
    }

    #[test]
    fn formats_read_naturally() {
        assert_eq!(ms(Duration::from_micros(2_340)), "2.3 ms");
        assert_eq!(ms(Duration::from_millis(180)), "180 ms");
        assert_eq!(ms(Duration::from_micros(52)), "52 µs");
        assert_eq!(per_sec(1_234_567.0), "1.23M/s");
        assert_eq!(per_sec(98_200.0), "98.2k/s");
        assert_eq!(per_sec(450.0), "450/s");
    }
}
