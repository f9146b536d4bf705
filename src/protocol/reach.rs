//! Holders' further addresses in lookup answers: [`TrackerResponse::MatchesAt`] carries the
//! matches as `Matches` does, and beside them a [`Reach`] list, so a [`Holder`](super::Holder)
//! encodes as it always did and older peers, answered with plain `Matches`, read every byte.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

use super::{FileMatch, TrackerResponse};

/// One holder's further addresses, in a [`TrackerResponse::MatchesAt`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// The holder's peer id.
    pub peer_id: String,
    /// Its further addresses.
    pub addrs: Vec<SocketAddr>,
}

impl TrackerResponse {
    /// `found` as a lookup answer: `MatchesAt` with its holders' further addresses for a peer
    /// that reads it (`with_reach`), else the `Matches` every peer reads.
    pub fn matches(found: Vec<FileMatch>, with_reach: bool) -> TrackerResponse {
        if !with_reach {
            return TrackerResponse::Matches(found);
        }
        let mut reach: Vec<Reach> = Vec::new();
        for holder in found.iter().flat_map(|f| &f.holders).filter(|h| !h.also.is_empty()) {
            if !reach.iter().any(|r| r.peer_id == holder.peer_id) {
                reach.push(Reach { peer_id: holder.peer_id.clone(), addrs: holder.also.clone() });
            }
        }
        TrackerResponse::MatchesAt { found, reach }
    }

    /// The matches of a `Matches` or `MatchesAt` answer, each holder with its further
    /// addresses (at most `MAX_PEER_ADDRESSES` each); `None` for any other answer.
    pub fn into_matches(self) -> Option<Vec<FileMatch>> {
        match self {
            TrackerResponse::Matches(found) => Some(found),
            TrackerResponse::MatchesAt { mut found, reach } => {
                for holder in found.iter_mut().flat_map(|f| &mut f.holders) {
                    if let Some(r) = reach.iter().find(|r| r.peer_id == holder.peer_id) {
                        holder.also = r.addrs.iter().take(crate::net::addrs::MAX_PEER_ADDRESSES).copied().collect();
                    }
                }
                Some(found)
            }
            _ => None,
        }
    }
}
