//! An upload rate limit: one token bucket shared by every chunk this peer sends, and shared
//! equally by the downloaders it serves.
//!
//! Senders reserve bytes before writing them; a reservation beyond the bucket's balance makes
//! the sender wait until the rate has paid it off. Reservations are paid off in the order they
//! were made, so the bucket serves its waiters first come, first served. The bucket holds at
//! most a quarter second of the rate, so a limit is a limit even after an idle spell.
//!
//! The rate is shared per downloader, not per stream: a downloader with 16 chunks sending at
//! once used to get 16 times the share of one with a single chunk. Each downloader (by its
//! certificate's fingerprint) has a turn, a first-come-first-served lock held while one of its
//! streams reserves and waits, so at most one stream of each downloader waits on the bucket at
//! a time: the downloaders' slices go round robin, and each one's streams take turns within
//! its share.
//!
//! A stream's turn thus comes round less often the more downloaders are sending and the more
//! streams its own downloader has; a downloader gives up on a stream that goes 5 s without a
//! byte. So slices shrink as these grow, keeping every stream's turn about a second apart: 16
//! streams at 50 KB/s used to wait 5.2 s between 16 KiB slices and were dropped as stalled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::Fingerprint;

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
    /// The downloaders with streams sending at the moment.
    lanes: Mutex<HashMap<Fingerprint, Lane>>,
    /// Bytes of the next slice, for the streams sending now (see [`slice_for`]).
    slice: AtomicUsize,
}

/// One downloader's place at the bucket.
#[derive(Debug)]
struct Lane {
    /// Held by the one stream of this downloader that waits on the bucket; tokio's mutex
    /// queues the others first come, first served.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Its streams sending now.
    streams: usize,
}

/// One stream sending through the throttle to one downloader; counted while it lives.
pub struct Sending<'a> {
    throttle: &'a Throttle,
    peer: Fingerprint,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Sending<'_> {
    /// Waits for this downloader's turn, then until the next slice, at most `left` bytes, may
    /// be sent; returns its size. The slice is sized when its turn comes, for the streams
    /// sending then.
    pub async fn take(&self, left: usize) -> usize {
        let _turn = self.turn.lock().await;
        let n = self.throttle.slice().min(left);
        self.throttle.take(n).await;
        n
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        let mut lanes = self.throttle.lanes();
        if let Some(lane) = lanes.get_mut(&self.peer) {
            lane.streams -= 1;
            if lane.streams == 0 {
                lanes.remove(&self.peer);
            }
        }
        self.throttle.reslice(&lanes);
    }
}

impl Throttle {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 4.0).max(SLICE as f64);
        let now = tokio::time::Instant::now().into_std();
        let slice = AtomicUsize::new(slice_for(rate, 1));
        Throttle { rate, burst, state: Mutex::new((burst, now)), lanes: Mutex::default(), slice }
    }

    /// Counts a stream to downloader `peer` as sending until the guard is dropped; its slices
    /// go through the guard.
    pub fn sending(&self, peer: Fingerprint) -> Sending<'_> {
        let mut lanes = self.lanes();
        let lane = lanes.entry(peer).or_insert_with(|| Lane { turn: Arc::default(), streams: 0 });
        lane.streams += 1;
        let turn = lane.turn.clone();
        self.reslice(&lanes);
        Sending { throttle: self, peer, turn }
    }

    /// Bytes the next slice should have, given the streams sending now.
    fn slice(&self) -> usize {
        self.slice.load(Ordering::Relaxed)
    }

    fn lanes(&self) -> MutexGuard<'_, HashMap<Fingerprint, Lane>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sizes slices for the streams in `lanes`: one of them waits for every other stream of
    /// its downloader, and each of those turns for one slice of every downloader.
    fn reslice(&self, lanes: &HashMap<Fingerprint, Lane>) {
        let most = lanes.values().map(|lane| lane.streams).max().unwrap_or(0);
        self.slice.store(slice_for(self.rate, lanes.len() * most), Ordering::Relaxed);
    }

    /// How long `bytes` take at this rate.
    pub fn time_for(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate)
    }

    /// How long `bytes` to one downloader may take at its share of the rate: the downloaders
    /// sending now and one more (it may not be sending yet) have a turn each.
    pub fn time_for_share(&self, bytes: u64) -> Duration {
        self.time_for(bytes) * (self.lanes().len() as u32 + 1)
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

/// The slice that makes `turns` slices, one after another, last a [`TURN`] at `rate`, within
/// [`MIN_SLICE`]..=[`SLICE`].
fn slice_for(rate: f64, turns: usize) -> usize {
    let share = rate * TURN.as_secs_f64() / turns.max(1) as f64;
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
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::peer::gate::SENDS_PER_PEER;
    use crate::protocol::Digest;

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

    /// What downloaders got through a throttle in a run.
    struct Run {
        /// Bytes sent to each.
        bytes: [u64; 2],
        /// Longest any stream waited between two of its slices, after the first [`TURN`].
        longest_gap: Duration,
    }

    /// Runs `run` of (paused) time through `throttle`, downloader `k` sending on `streams[k]`
    /// streams at once, each taking slice after slice.
    async fn share(throttle: Arc<Throttle>, streams: [usize; 2], run: Duration) -> Run {
        let bytes = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let start = tokio::time::Instant::now();
        let end = start + run;
        let mut tasks = tokio::task::JoinSet::new();
        for (peer, &n) in streams.iter().enumerate() {
            for _ in 0..n {
                let (throttle, bytes) = (throttle.clone(), bytes.clone());
                tasks.spawn(async move {
                    let sending = throttle.sending(Digest([peer as u8; 32]));
                    let (mut last, mut longest) = (None, Duration::ZERO);
                    loop {
                        let slice = sending.take(usize::MAX).await;
                        let now = tokio::time::Instant::now();
                        if now > end {
                            return longest;
                        }
                        // The first round's slices were sized before every stream had come.
                        longest = last.filter(|&last| last > start + TURN).map_or(longest, |last| longest.max(now - last));
                        last = Some(now);
                        bytes[peer].fetch_add(slice as u64, Ordering::Relaxed);
                        // Writing the slice to the stream.
                        tokio::task::yield_now().await;
                    }
                });
            }
        }
        let longest_gap = tasks.join_all().await.into_iter().max().unwrap_or_default();
        Run { bytes: [bytes[0].load(Ordering::Relaxed), bytes[1].load(Ordering::Relaxed)], longest_gap }
    }

    #[tokio::test(start_paused = true)]
    async fn downloaders_share_the_limit_equally_whatever_their_streams() {
        const RATE: u64 = 1 << 20;
        let run = Duration::from_secs(4);
        let [many, one] = share(Arc::new(Throttle::new(RATE)), [SENDS_PER_PEER, 1], run).await.bytes;
        let total = (many + one) as f64;
        // Once both are waiting, rounds alternate one slice each, so they differ by a slice or
        // two, and by the burst the bucket starts with (a quarter second of the rate), which
        // the first downloader's streams take before the other has asked: 0.3 MiB of 4.25 MiB,
        // where sharing per stream differs by 3.75 MiB (16:1).
        let burst = RATE / 4;
        let within = burst + 2 * SLICE as u64;
        assert!(many.abs_diff(one) <= within, "{SENDS_PER_PEER} streams got {many} bytes, 1 stream got {one}");
        // The limit is still the limit: the rate over the run, plus the burst it started with.
        let allowed = RATE as f64 * run.as_secs_f64() + burst as f64;
        assert!(total <= allowed * 1.01 && total >= allowed * 0.95, "{total} bytes sent, {allowed} allowed");
    }

    #[tokio::test(start_paused = true)]
    async fn every_stream_still_moves_each_second_when_downloaders_take_turns() {
        // 16 streams of one downloader wait for each other and for the other downloader's
        // slices: 32 turns a round. Slices sized for 17 streams would leave each 1.9 s apart.
        let run = share(Arc::new(Throttle::new(50_000)), [SENDS_PER_PEER, 1], Duration::from_secs(20)).await;
        // Up to a millisecond of timer rounding a slice, 32 slices a turn.
        assert!(run.longest_gap <= TURN + Duration::from_millis(40), "a stream waited {:?} between slices", run.longest_gap);
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

    #[test]
    fn slices_shrink_with_the_downloaders_and_their_streams() {
        let t = Throttle::new(50_000);
        let many: Vec<Sending> = (0..SENDS_PER_PEER).map(|_| t.sending(Digest([1; 32]))).collect();
        assert_eq!(t.slice(), slice_for(50_000.0, SENDS_PER_PEER));
        let one = t.sending(Digest([2; 32]));
        assert_eq!(t.slice(), slice_for(50_000.0, 2 * SENDS_PER_PEER));
        assert_eq!(t.time_for_share(50_000), Duration::from_secs(3));
        drop(many);
        assert_eq!(t.slice(), slice_for(50_000.0, 1));
        drop(one);
        assert!(t.lanes().is_empty(), "a downloader with no streams keeps no lane");
    }
}
