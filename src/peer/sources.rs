//! Where a peer's holders come from, set up at its start: the tracker link (or none, with
//! `no_tracker`), the DHT node if it runs one, and the discovery that asks them both.

use std::sync::Arc;

use anyhow::Result;

use super::{Peer, PeerConfig};
use crate::discovery::tracker::TrackerLink;
use crate::discovery::{Discovery, dht};
use crate::net::tls::{self, Identity};
use crate::protocol::{self, TRACKER_ALPN};

/// The link to the tracker and its pinned fingerprint; no link with `no_tracker`.
pub(super) fn tracker_link(config: &PeerConfig, identity: &Identity) -> Result<(TrackerLink, protocol::Fingerprint)> {
    if config.no_tracker {
        return Ok((TrackerLink::none(), protocol::Holder::UNVOUCHED));
    }
    let tracker_fp = match config.tracker_pin {
        Some(pin) => pin,
        None => tls::pinned_fingerprint(&config.tracker_cert.clone().unwrap_or_else(|| tls::paths(&config.certs, "tracker").0))?,
    };
    let mut addrs = vec![config.tracker];
    addrs.extend(config.tracker_alternates.iter().filter(|a| **a != config.tracker));
    Ok((TrackerLink::new(addrs, tls::client_config(identity, TRACKER_ALPN, tracker_fp)?), tracker_fp))
}

/// This peer's DHT node, if it runs one: on the IPv4 address the endpoint listens on (all of
/// them for an IPv6 or unspecified one), announcing the endpoint's port.
pub(super) async fn start_dht(config: &PeerConfig, endpoint: &quinn::Endpoint) -> Result<Option<Arc<dht::DhtNode>>> {
    let Some(bootstrap) = config.dht.clone() else { return Ok(None) };
    let local = endpoint.local_addr()?;
    let bind = match local.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
    };
    Ok(Some(Arc::new(dht::DhtNode::start(bootstrap, bind, local.port()).await?)))
}

/// Where holders come from: the tracker, the DHT, or both (the tracker first: it knows names
/// and vouches for fingerprints).
pub(super) fn discovery_of(config: &PeerConfig, link: &Arc<TrackerLink>, node: Option<&Arc<dht::DhtNode>>) -> Arc<dyn Discovery> {
    let Some(node) = node else { return link.clone() };
    let source = Arc::new(dht::source::DhtSource::new(node.clone(), config.no_tracker));
    if config.no_tracker {
        return source;
    }
    Arc::new(crate::discovery::many::Many::new(vec![("tracker".into(), link.clone()), ("dht".into(), source)]))
}

impl Peer {
    /// Says once where the DHT node listens and whether its bootstrap reached anyone.
    pub(super) async fn say_dht_reached(&self) {
        let Some(node) = &self.inner.dht else { return };
        let reached = tokio::select! {
            reached = node.bootstrapped() => reached,
            _ = self.inner.shutdown.cancelled() => return,
        };
        let addr = node.local_addr().await;
        let text = match (reached, self.has_tracker()) {
            (true, _) => format!("DHT node on {addr} is up"),
            (false, true) => format!("DHT node on {addr} reached no other node; going on with the tracker"),
            (false, false) => format!("DHT node on {addr} reached no other node; nothing can be found until one answers"),
        };
        self.inner.sharing.notify(text);
    }
}
