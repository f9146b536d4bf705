//! The DHT as a [`Discovery`] source: a full id in, the addresses announced under its key out.
//!
//! What the DHT gives is an address and nothing else: each holder comes back with
//! [`Holder::UNVOUCHED`] as its fingerprint (any certificate is accepted on connecting, and the
//! one it proves is what strikes and bans are kept by), named `dht:ADDR` in messages, and the
//! file with an empty name and size 0, to be asked of a holder (`Describe`) when no other
//! source knows it. Our own announcements come back too; they are left out here.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{DhtNode, full_id};
use crate::discovery::{Discovery, Found};
use crate::protocol::{FileId, FileInfo, FileMatch, Holder};

/// Holders from the DHT, through this peer's node.
pub struct DhtSource {
    node: Arc<DhtNode>,
    /// This machine's addresses: an announced address at one of them, on our port, is us.
    own_ips: HashSet<IpAddr>,
    /// Whether the DHT is the only source: then a name is refused with the reason, else it
    /// is left to the tracker quietly.
    alone: bool,
}

impl DhtSource {
    /// Looks up through `node`; `alone` when there is no other source.
    pub fn new(node: Arc<DhtNode>, alone: bool) -> DhtSource {
        let mut own_ips: HashSet<IpAddr> = if_addrs::get_if_addrs().map(|l| l.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
        own_ips.insert(IpAddr::from([127, 0, 0, 1]));
        DhtSource { node, own_ips, alone }
    }

    /// The file `id` with the holders the DHT knows of; nothing if it knows none.
    async fn matches(&self, id: FileId) -> Vec<FileMatch> {
        let holders: Vec<Holder> = self
            .node
            .addresses(&id)
            .await
            .into_iter()
            .filter(|addr| !self.is_us(addr))
            .map(|addr| Holder { peer_id: format!("dht:{addr}"), addr, fingerprint: Holder::UNVOUCHED, also: Vec::new() })
            .collect();
        if holders.is_empty() {
            return Vec::new();
        }
        vec![FileMatch { file: undescribed(id), holders }]
    }

    fn is_us(&self, addr: &SocketAddr) -> bool {
        addr.port() == self.node.port && self.own_ips.contains(&addr.ip())
    }
}

/// A file known by its id only (no name, no size), as the DHT finds it.
pub fn undescribed(id: FileId) -> FileInfo {
    FileInfo { id, name: String::new(), size: 0, folder: None }
}

/// Whether a source knew no more of `file` than its id.
pub fn is_undescribed(file: &FileInfo) -> bool {
    file.name.is_empty()
}

impl Discovery for DhtSource {
    fn find<'a>(&'a self, query: &'a str) -> Found<'a> {
        Box::pin(async move {
            match full_id(query) {
                Ok(id) => Ok(self.matches(id).await),
                Err(_) if !self.alone => Ok(Vec::new()),
                Err(why) => Err(why),
            }
        })
    }

    fn holders(&self, id: FileId) -> Found<'_> {
        Box::pin(async move { Ok(self.matches(id).await) })
    }
}
