//! A download's coarse progress, as a partial holder tells the tracker
//! ([`TrackerRequest::Progress`](super::TrackerRequest::Progress)): the file's bytes cut into
//! at most [`MAX_SEGMENTS`] equal segments, one bit each (least significant first), set when
//! every chunk that touches the segment is verified. The cut depends on the file's size only,
//! not on its chunk size, so the tracker checks a report's length against the size it knows
//! and adds up the reports of every holder, segment by segment, into an availability bar.

/// Most segments a file is cut into: 32 bytes a report, however big the file.
pub const MAX_SEGMENTS: u64 = 256;

/// How many segments a file of `size` bytes is cut into (one a byte below [`MAX_SEGMENTS`]).
pub fn segment_count(size: u64) -> usize {
    size.min(MAX_SEGMENTS) as usize
}

/// The length in bytes of a report on a file of `size` bytes.
pub fn report_len(size: u64) -> usize {
    segment_count(size).div_ceil(8)
}

/// The bytes `[start, end)` of segment `k` of a file of `size` bytes.
fn segment(size: u64, k: usize) -> (u64, u64) {
    let n = segment_count(size) as u128;
    let at = |k: usize| (size as u128 * k as u128 / n) as u64;
    (at(k), at(k + 1))
}

/// The report on a file of `size` bytes in chunks of `chunk_size`, where `has` says which
/// chunks are verified.
pub fn report(size: u64, chunk_size: u32, has: impl Fn(u32) -> bool) -> Vec<u8> {
    let mut bits = vec![0u8; report_len(size)];
    let chunk = u64::from(chunk_size.max(1));
    for k in 0..segment_count(size) {
        let (start, end) = segment(size, k);
        let (first, last) = ((start / chunk) as u32, ((end - 1) / chunk) as u32);
        if (first..=last).all(&has) {
            bits[k / 8] |= 1 << (k % 8);
        }
    }
    bits
}

/// Whether segment `k` is set in `bits`.
pub fn has_segment(bits: &[u8], k: usize) -> bool {
    bits.get(k / 8).is_some_and(|byte| byte & (1 << (k % 8)) != 0)
}

/// How many segments of a file of `size` bytes `bits` says are there.
pub fn segments_set(bits: &[u8], size: u64) -> usize {
    (0..segment_count(size)).filter(|&k| has_segment(bits, k)).count()
}

/// Whether `bits` says every segment of a file of `size` bytes is there (the holder is complete).
pub fn complete(bits: &[u8], size: u64) -> bool {
    segments_set(bits, size) == segment_count(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_file_is_cut_into_256_segments_of_equal_bytes() {
        let size = 1000 * 1024 * 1024 + 7;
        assert_eq!((segment_count(size), report_len(size)), (256, 32));
        assert_eq!(segment(size, 0).0, 0);
        assert_eq!(segment(size, 255).1, size);
        for k in 0..255 {
            assert_eq!(segment(size, k).1, segment(size, k + 1).0);
        }
        assert_eq!((segment_count(10), report_len(10)), (10, 2));
        assert_eq!(segment_count(0), 0);
    }

    #[test]
    fn a_segment_is_set_only_when_every_chunk_it_touches_is_there() {
        // 4 chunks of 100 bytes in 256 segments: chunk 1 alone sets the segments wholly in 100..200.
        let (size, chunk) = (400, 100);
        let bits = report(size, chunk, |i| i == 1);
        let set: Vec<usize> = (0..256).filter(|&k| has_segment(&bits, k)).collect();
        assert!(set.iter().all(|&k| segment(size, k).0 >= 100 && segment(size, k).1 <= 200), "{set:?}");
        assert_eq!(set.len(), 64);
        assert!(complete(&report(size, chunk, |_| true), size));
        assert!(!complete(&report(size, chunk, |i| i != 3), size));
        // Chunks bigger than segments, and segments bigger than chunks (a 1 GiB file).
        let big = 1 << 30;
        let half = report(big, 1 << 20, |i| i < 512);
        assert_eq!(segments_set(&half, big), 128);
        assert_eq!(segments_set(&report(big, 1 << 20, |i| i != 700), big), 255);
    }

    #[test]
    fn bits_past_the_end_or_a_short_report_count_nothing() {
        assert!(!has_segment(&[], 3));
        assert_eq!(segments_set(&[0xff, 0xff], 10), 10);
        assert!(complete(&[0xff, 0x03], 10));
        assert!(!complete(&[0xff], 10));
    }
}
