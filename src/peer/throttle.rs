//! An upload rate limit: one token bucket shared by every chunk this peer sends.
//!
//! Senders reserve bytes before writing them; a reservation beyond the bucket's balance makes
//! the sender wait until the rate has paid it off. The bucket holds at most a quarter second of
//! the rate, so a limit is a limit even after an idle spell.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes a sender writes between reservations: fine enough to keep streams interleaved.
pub const SLICE: usize = 16 * 1024;

/// A shared upload budget of `rate` bytes per second.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Throttle {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 4.0).max(SLICE as f64);
        Throttle { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Reserves `n` bytes and returns how long to wait before sending them.
    pub fn reserve(&self, n: usize, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let earned = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + earned).min(self.burst) - n as f64;
        *last = now;
        if *tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-*tokens / self.rate) }
    }

    /// Waits until `n` more bytes may be sent.
    pub async fn take(&self, n: usize) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses a rate such as `500K`, `2M`, `1.5G` or `1048576` (bytes per second, binary units).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim().trim_end_matches("/s").trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" => 1u64,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?} (use K, M or G)")),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("{number:?} is not a number"))?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err("the rate must be at least 1 byte per second".into());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_binary_units() {
        assert_eq!(parse_rate("1048576"), Ok(1 << 20));
        assert_eq!(parse_rate("500K"), Ok(500 << 10));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("1.5GiB/s"), Ok(3 << 29));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn a_bucket_paces_senders_to_the_rate() {
        let t = Throttle::new(1 << 20);
        let start = Instant::now();
        // The burst is free, then one second of rate costs one second.
        assert_eq!(t.reserve(256 << 10, start), Duration::ZERO);
        let wait = t.reserve(1 << 20, start);
        assert!((wait.as_secs_f64() - 1.0).abs() < 0.01, "{wait:?}");
        // Time that passes pays the debt back.
        assert_eq!(t.reserve(0, start + Duration::from_secs(2)), Duration::ZERO);
    }
}
