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
/// run of them for each `turn`, then as many files, in order, as fit.
pub fn fit(found: Vec<FileMatch>, turn: u64) -> Vec<FileMatch> {
    let mut budget = MAX_FRAME - SLACK;
    let mut fitted = Vec::new();
    for mut one in found {
        if one.holders.len() > HOLDERS_PER_FILE {
            let start = (turn.wrapping_mul(HOLDERS_PER_FILE as u64) % one.holders.len() as u64) as usize;
            one.holders.rotate_left(start);
            one.holders.truncate(HOLDERS_PER_FILE);
        }
        let size = protocol::encode(&one).map_or(usize::MAX, |frame| frame.len());
        if size > budget {
            break;
        }
        budget -= size;
        fitted.push(one);
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Digest, FileInfo, Holder, TrackerResponse};

    fn file(n: u32, holders: usize) -> FileMatch {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        let name = format!("{n:0>200}");
        let holder =
            |h: usize| Holder { peer_id: format!("peer-{h}"), addr: ([10, 0, 0, 1], h as u16).into(), fingerprint: Digest([7; 32]) };
        FileMatch { file: FileInfo { id: Digest(id), name, size: 1, folder: None }, holders: (0..holders).map(holder).collect() }
    }

    #[test]
    fn a_popular_file_names_some_holders_and_takes_turns() {
        let first = fit(vec![file(1, 300)], 0);
        let next = fit(vec![file(1, 300)], 1);
        assert_eq!(first[0].holders.len(), HOLDERS_PER_FILE);
        assert_eq!(first[0].holders[0].peer_id, "peer-0");
        assert_eq!(next[0].holders[0].peer_id, "peer-50", "the next reply names the next 50");
        assert_eq!(fit(vec![file(2, 10)], 7)[0].holders.len(), 10, "a few holders are all named");
    }

    #[test]
    fn a_huge_listing_is_cut_to_one_frame() {
        let found: Vec<FileMatch> = (0..3000).map(|n| file(n, 20)).collect();
        let fitted = fit(found, 0);
        assert!(!fitted.is_empty() && fitted.len() < 3000, "{} files kept", fitted.len());
        let frame = protocol::encode(&TrackerResponse::Matches(fitted)).unwrap();
        assert!(frame.len() <= MAX_FRAME + 4, "{} bytes", frame.len());
    }
}
