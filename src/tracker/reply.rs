//! Fitting lookup and listing replies into one frame.
//!
//! A reply is one frame of at most `protocol::MAX_FRAME` (1 MiB), and a peer refuses a longer one.
//! A popular file can have thousands of holders and a busy tracker thousands of files, so a
//! reply names at most [`HOLDERS_PER_FILE`] holders of each file (taking turns through the
//! rest, so load spreads over every holder across lookups) and as many files as fit.

use crate::protocol::{self, FileMatch, MAX_FRAME};

/// Holders named for one file: more than a download can use at once (it connects to each),
/// and what BitTorrent trackers hand out by default.
pub const HOLDERS_PER_FILE: usize = 50;
/// Room kept for the frame's length prefix and the reply's own encoding around the matches.
const SLACK: usize = 4096;

/// Trims `found` to fit one frame: at most [`HOLDERS_PER_FILE`] holders per file, a different
/// run of them for each `turn`, then as many files, in order, as fit, counting the holders'
/// further addresses too when they go along (`with_reach`, a `MatchesAt`).
pub fn fit(found: Vec<FileMatch>, turn: u64, with_reach: bool) -> Vec<FileMatch> {
    let mut budget = MAX_FRAME - SLACK;
    let mut fitted = Vec::new();
    for mut one in found {
        if one.holders.len() > HOLDERS_PER_FILE {
            let start = (turn.wrapping_mul(HOLDERS_PER_FILE as u64) % one.holders.len() as u64) as usize;
            one.holders.rotate_left(start);
            one.holders.truncate(HOLDERS_PER_FILE);
        }
        let reach = if with_reach { one.holders.iter().map(reach_size).sum() } else { 0 };
        let size = protocol::encode(&one).map_or(usize::MAX, |frame| frame.len()).saturating_add(reach);
        if size > budget {
            break;
        }
        budget -= size;
        fitted.push(one);
    }
    fitted
}

/// Most bytes a holder's further addresses take in a `MatchesAt` (its id, and each address
/// at its IPv6 size), counted even when another match names it too.
fn reach_size(holder: &protocol::Holder) -> usize {
    match holder.also.len() {
        0 => 0,
        n => holder.peer_id.len() + 2 + n * 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Digest, FileInfo, Holder, TrackerResponse};

    fn file(n: u32, holders: usize) -> FileMatch {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        let name = format!("{n:0>200}");
        let holder = |h: usize| Holder {
            peer_id: format!("peer-{h}"),
            addr: ([10, 0, 0, 1], h as u16).into(),
            fingerprint: Digest([7; 32]),
            also: Vec::new(),
        };
        FileMatch { file: FileInfo { id: Digest(id), name, size: 1, folder: None }, holders: (0..holders).map(holder).collect() }
    }

    #[test]
    fn a_popular_file_names_some_holders_and_takes_turns() {
        let first = fit(vec![file(1, 300)], 0, false);
        let next = fit(vec![file(1, 300)], 1, false);
        assert_eq!(first[0].holders.len(), HOLDERS_PER_FILE);
        assert_eq!(first[0].holders[0].peer_id, "peer-0");
        assert_eq!(next[0].holders[0].peer_id, "peer-50", "the next reply names the next 50");
        assert_eq!(fit(vec![file(2, 10)], 7, false)[0].holders.len(), 10, "a few holders are all named");
    }

    #[test]
    fn a_huge_listing_is_cut_to_one_frame() {
        let found: Vec<FileMatch> = (0..3000).map(|n| file(n, 20)).collect();
        let fitted = fit(found, 0, false);
        assert!(!fitted.is_empty() && fitted.len() < 3000, "{} files kept", fitted.len());
        let frame = protocol::encode(&TrackerResponse::Matches(fitted)).unwrap();
        assert!(frame.len() <= MAX_FRAME + 4, "{} bytes", frame.len());
    }

    #[test]
    fn holders_further_addresses_are_counted_against_the_frame() {
        let with_also = |n: u32| {
            let mut one = file(n, 50);
            for h in &mut one.holders {
                h.also = (0..8u16).map(|p| std::net::SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], p))).collect();
            }
            one
        };
        let fitted = fit((0..3000).map(with_also).collect(), 0, true);
        let plain = fit((0..3000).map(with_also).collect(), 0, false);
        assert!(fitted.len() < plain.len(), "{} files with addresses, {} without", fitted.len(), plain.len());
        let frame = protocol::encode(&TrackerResponse::matches(fitted, true)).unwrap();
        assert!(frame.len() <= MAX_FRAME + 4, "{} bytes", frame.len());
    }
}
