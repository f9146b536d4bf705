//! How many chunk requests to keep in flight at one holder: plain state, no I/O.
//!
//! Too few and a long or fast link idles between chunks (each holder can deliver at most what
//! is in flight per round trip); too many and a slow link is asked for minutes of data at once,
//! which overfills its router's queue and makes every request wait behind the others. So the
//! window follows the link: twice the measured bandwidth-delay product (the rate delivered
//! times the smallest round trip seen) plus [`MARGIN`], in chunks, between [`MIN_CHUNKS`] and
//! [`MAX_BYTES`]. It starts at [`INITIAL_BYTES`]; while the window is what limits the rate,
//! each sample (one round trip long) sees the rate it allowed and the next window is about
//! twice as deep, so it grows like slow start until the link, not the window, is the limit.

use std::time::{Duration, Instant};

/// Window before the first rate sample: the fixed window p2pq had before it measured links
/// (16 chunks of 256 KiB), which starts a LAN at full speed and a long link at 40 MB/s per
/// 100 ms. On a slow link the surplus only waits at the holder; the first sample shrinks it.
pub const INITIAL_BYTES: u64 = 4 << 20;
/// Added to twice the bandwidth-delay product: what covers the time a request spends in both
/// programs rather than on the wire (task wake-ups, the holder's read), which quinn's round
/// trip does not see. On loopback, where the round trip is ~0.1 ms, 512 KiB (2-3 chunks in
/// all) left the holder idle between requests: e2e 1 GiB 12-20% slower than 16 chunks.
pub const MARGIN: u64 = 1 << 20;
/// Fewest chunks in flight: with one, the holder idles a round trip after every chunk.
pub const MIN_CHUNKS: usize = 2;
/// Most bytes in flight at one holder: covers 1 Gbit/s at 100 ms twice over (12.5 MB), and
/// bounds the chunk streams one holder may have open (32 MiB / 256 KiB = 128).
pub const MAX_BYTES: u64 = 32 << 20;
/// Most chunks in flight at one holder, whatever their size: half the chunk streams a
/// connection may have open (`tls::MAX_UNI_STREAMS`), so two downloads fit on one link.
pub const MAX_CHUNKS: usize = 128;
/// Shortest rate sample: shorter ones measure bursts, not the link. Past it a sample lasts one
/// round trip, so a window that limits the rate doubles every round trip, as slow start does.
const MIN_SAMPLE: Duration = Duration::from_millis(50);
/// Rate samples the window keeps the best of, so one sample where the window went unused (a
/// pause between downloads, the endgame) does not shrink it at once.
const SAMPLES: usize = 4;

/// The in-flight window of one holder link.
#[derive(Debug, Clone)]
pub struct Window {
    fixed: Option<usize>,
    delivered: u64,
    sample: (Instant, u64),
    rates: [f64; SAMPLES],
    next_rate: usize,
    min_rtt: Option<Duration>,
}

impl Window {
    /// A window that follows the link, or is always `fixed` chunks if given.
    pub fn new(fixed: Option<usize>, now: Instant) -> Window {
        Window { fixed, delivered: 0, sample: (now, 0), rates: [0.0; SAMPLES], next_rate: 0, min_rtt: None }
    }

    /// `bytes` of chunk data arrived.
    pub fn delivered(&mut self, bytes: u64) {
        self.delivered += bytes;
    }

    /// Takes a round-trip measurement and, once a sample is long enough, a rate sample.
    pub fn observe(&mut self, now: Instant, rtt: Duration) {
        if !rtt.is_zero() {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        let (since, at) = self.sample;
        let elapsed = now.saturating_duration_since(since);
        if elapsed < MIN_SAMPLE.max(rtt) {
            return;
        }
        self.rates[self.next_rate] = (self.delivered - at) as f64 / elapsed.as_secs_f64();
        self.next_rate = (self.next_rate + 1) % SAMPLES;
        self.sample = (now, self.delivered);
    }

    /// Best recent rate, in bytes per second (0 before the first sample).
    pub fn rate(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    /// Bytes to keep in flight now.
    pub fn target_bytes(&self) -> u64 {
        let rate = self.rate();
        let Some(rtt) = self.min_rtt.filter(|_| rate > 0.0) else { return INITIAL_BYTES };
        let bdp = rate * rtt.as_secs_f64();
        ((2.0 * bdp) as u64 + MARGIN).min(MAX_BYTES)
    }

    /// Chunks of `chunk_len` bytes to keep in flight now.
    pub fn chunks(&self, chunk_len: u64) -> usize {
        if let Some(fixed) = self.fixed {
            return fixed.max(1);
        }
        let chunks = self.target_bytes().div_ceil(chunk_len.max(1)) as usize;
        chunks.clamp(MIN_CHUNKS, MAX_CHUNKS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u64 = 256 << 10;

    /// Feeds a link of `rate` bytes/s and `rtt` to a window for `secs`, delivering what the
    /// window allows (at most its bytes per round trip); returns the window's chunks.
    fn run(rate: f64, rtt: Duration, secs: f64) -> (Window, Vec<usize>) {
        let start = Instant::now();
        let mut w = Window::new(None, start);
        let mut seen = Vec::new();
        let step = Duration::from_millis(10);
        let mut t = Duration::ZERO;
        while t.as_secs_f64() < secs {
            let allowed = (w.chunks(CHUNK) as u64 * CHUNK) as f64 / rtt.as_secs_f64();
            w.delivered((rate.min(allowed) * step.as_secs_f64()) as u64);
            t += step;
            w.observe(start + t, rtt);
            seen.push(w.chunks(CHUNK));
        }
        (w, seen)
    }

    #[test]
    fn a_long_fast_link_gets_its_bandwidth_delay_product_within_a_second() {
        // 1 Gbit/s at 100 ms: 12.5 MB per round trip, 48 chunks.
        let (w, seen) = run(125e6, Duration::from_millis(100), 3.0);
        let first_full = seen.iter().position(|&c| c as u64 * CHUNK >= 12_500_000).expect("never reached the BDP");
        assert!(first_full <= 100, "took {} ms", first_full * 10);
        assert!(w.chunks(CHUNK) <= MAX_CHUNKS && w.target_bytes() <= MAX_BYTES);
    }

    #[test]
    fn a_slow_link_is_asked_for_a_few_seconds_of_data_at_most() {
        // 5 Mbit/s at 20 ms.
        let rate = 5e6 / 8.0;
        let (w, _) = run(rate, Duration::from_millis(20), 3.0);
        let seconds = (w.chunks(CHUNK) as u64 * CHUNK) as f64 / rate;
        assert!(w.chunks(CHUNK) >= MIN_CHUNKS);
        assert!(seconds < 3.0, "{} chunks = {seconds:.1} s of data", w.chunks(CHUNK));
    }

    #[test]
    fn a_fixed_window_stays_fixed_and_one_idle_sample_does_not_shrink_the_window() {
        let now = Instant::now();
        assert_eq!(Window::new(Some(7), now).chunks(CHUNK), 7);
        let (mut w, _) = run(50e6, Duration::from_millis(40), 2.0);
        let before = w.chunks(CHUNK);
        w.observe(now + Duration::from_secs(10), Duration::from_millis(40));
        assert_eq!(w.chunks(CHUNK), before, "one empty sample is outvoted by the best recent ones");
    }

    #[test]
    fn big_chunks_are_counted_by_bytes() {
        let w = Window::new(None, Instant::now());
        assert_eq!(w.chunks(CHUNK), 16);
        assert_eq!(w.chunks(8 << 20), MIN_CHUNKS);
    }
}
