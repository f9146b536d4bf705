//! An upload rate limit: one token bucket shared by every chunk this peer sends.
//!
//! Senders reserve bytes before writing them; a reservation beyond the bucket's balance makes
//! the sender wait until the rate has paid it off. The bucket holds at most a quarter second of
//! the rate, so a limit is a limit even after an idle spell.
//!
//! Streams sending at once share the rate, so each one's turn comes round less often the more
//! there are; a downloader gives up on a stream that goes 5 s without a byte. So
//! slices shrink as senders grow, keeping every stream's turn about a second apart: 16 streams
//! at 50 KB/s used to wait 5.2 s between 16 KiB slices and were dropped as stalled.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most bytes a sender writes between reservations.
pub const SLICE: usize = 16 * 1024;
/// Fewest: below this, per-write overhead would outweigh the pacing it buys.
const MIN_SLICE: usize = 1024;
/// How far apart each sending stream's turns should be at most, when the rate allows.
const TURN: Duration = Duration::from_secs(1);

/// A shared upload budget of `rate` bytes per second.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    /// Streams sending at the moment.
    senders: AtomicUsize,
}

/// One stream sending through the throttle; counted while it lives.
pub struct Sending<'a>(&'a Throttle);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.senders.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Throttle {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 4.0).max(SLICE as f64);
        let now = tokio::time::Instant::now().into_std();
        Throttle { rate, burst, state: Mutex::new((burst, now)), senders: AtomicUsize::new(0) }
    }

    /// Counts a stream as sending until the guard is dropped.
    pub fn sending(&self) -> Sending<'_> {
        self.senders.fetch_add(1, Ordering::Relaxed);
        Sending(self)
    }

    /// How long `bytes` take at this rate.
    pub fn time_for(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate)
    }

    /// Bytes the next slice should have, given the streams sending now.
    pub fn slice(&self) -> usize {
        slice_for(self.rate, self.senders.load(Ordering::Relaxed))
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

    /// Waits until `n` more bytes may be sent. A reservation made later is paid off no
    /// sooner, so waiters go first come, first served.
    pub async fn take(&self, n: usize) {
        // tokio's clock is the system's, except in tests that pause it.
        let wait = self.reserve(n, tokio::time::Instant::now().into_std());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The slice that gives each of `senders` streams a turn every [`TURN`] at `rate`, within
/// [`MIN_SLICE`]..=[`SLICE`].
fn slice_for(rate: f64, senders: usize) -> usize {
    let share = rate * TURN.as_secs_f64() / senders.max(1) as f64;
    (share as usize).clamp(MIN_SLICE, SLICE)
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
    fn slices_shrink_as_senders_grow_so_every_stream_moves_each_second() {
        assert_eq!(slice_for(2.0 * 1024.0 * 1024.0, 16), SLICE);
        assert_eq!(slice_for(50_000.0, 1), SLICE);
        let slice = slice_for(50_000.0, 16);
        let turn = 16.0 * slice as f64 / 50_000.0;
        assert!(slice < SLICE && turn <= 1.0, "slice {slice}, a turn every {turn} s");
        assert_eq!(slice_for(100.0, 16), MIN_SLICE);
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

    #[test]
    fn reservations_are_paid_off_in_the_order_they_were_made() {
        let t = Throttle::new(1 << 20);
        let start = Instant::now();
        assert_eq!(t.reserve(256 << 10, start), Duration::ZERO);
        // Each reservation, a little later than the one before, is paid off after it: when all
        // the bytes reserved so far have been paid.
        let mut reserved = 0u64;
        let mut paid_before = start;
        for k in 1..=20u32 {
            let at = start + Duration::from_millis(k.into());
            let n = SLICE >> (k % 3);
            reserved += n as u64;
            let paid = at + t.reserve(n, at);
            assert!(paid >= paid_before, "reservation {k} paid at {paid:?}, before the one ahead of it");
            let want = start + t.time_for(reserved);
            assert!(paid.max(want) - paid.min(want) < Duration::from_micros(10), "reservation {k}: {paid:?}, not {want:?}");
            paid_before = paid;
        }
    }
}
