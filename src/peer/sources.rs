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

/// Links to the further trackers (not with `no_tracker`).
pub(super) fn other_links(config: &PeerConfig, identity: &Identity) -> Result<Vec<Arc<TrackerLink>>> {
    if config.no_tracker {
        return Ok(Vec::new());
    }
    let link =
        |t: &super::OtherTracker| Ok(Arc::new(TrackerLink::new(t.addrs.clone(), tls::client_config(identity, TRACKER_ALPN, t.pin)?)));
    config.other_trackers.iter().map(link).collect()
}

/// Sends `request` to each of `links` in the background: a tracker that is away hears of
/// everything at its next registration, which lists every share.
pub(super) fn tell(links: &[Arc<TrackerLink>], request: protocol::TrackerRequest) {
    for link in links {
        let (link, request) = (link.clone(), request.clone());
        crate::net::task::spawn(tracing::debug_span!("tell tracker", tracker = %link.shown()), async move {
            if let Err(err) = link.request(&request).await {
                tracing::debug!("a further tracker did not hear: {err:#}");
            }
        });
    }
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
pub(super) fn discovery_of(
    config: &PeerConfig,
    link: &Arc<TrackerLink>,
    others: &[Arc<TrackerLink>],
    node: Option<&Arc<dht::DhtNode>>,
) -> Arc<dyn Discovery> {
    let mut sources: Vec<(String, Arc<dyn Discovery>)> = Vec::new();
    if !config.no_tracker {
        sources.push(("tracker".into(), link.clone()));
        sources.extend(others.iter().map(|other| (format!("tracker {}", other.shown()), other.clone() as Arc<dyn Discovery>)));
    }
    if let Some(node) = node {
        sources.push(("dht".into(), Arc::new(dht::source::DhtSource::new(node.clone(), config.no_tracker))));
    }
    match sources.len() {
        1 => sources.remove(0).1,
        _ => Arc::new(crate::discovery::many::Many::new(sources)),
    }
}

impl Peer {
    /// Says once of each public file when it is first on the DHT, until the peer stops.
    pub(super) async fn say_on_dht(&self) {
        let mut on = self.inner.on_dht.subscribe();
        let mut said = std::collections::BTreeSet::new();
        loop {
            let new: Vec<protocol::FileId> = on.borrow_and_update().iter().filter(|id| !said.contains(*id)).copied().collect();
            for id in new {
                said.insert(id);
                let name = self.inner.shares.get(&id).map_or_else(|| id.short(), |f| crate::content::names::printable(&f.info.name));
                self.inner.sharing.notify(format!("{name} is on the DHT now: anyone can find it by its id"));
            }
            tokio::select! {
                changed = on.changed() => if changed.is_err() { return },
                _ = self.inner.shutdown.cancelled() => return,
            }
        }
    }

    /// Sends `request` to the further trackers, in the background.
    pub(super) fn tell_others(&self, request: protocol::TrackerRequest) {
        tell(&self.inner.others, request);
    }

    /// Runs the link to each further tracker, and passes on what it says. A tracker that
    /// refuses this peer for good (its id taken there) ends that link only.
    pub(super) fn run_other_trackers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let inner = &self.inner;
        let mut tasks = Vec::new();
        for link in &inner.others {
            let link = link.clone();
            let (endpoint, id, shares, heartbeat) =
                (inner.endpoint.clone(), inner.config.id.clone(), inner.shares.clone(), inner.config.heartbeat);
            let (stop, peer) = (inner.shutdown.child_token(), self.clone());
            let mut notices = link.notices();
            let span = tracing::info_span!("tracker link", me = %id, tracker = %link.shown());
            tasks.push(crate::net::task::spawn(span, async move {
                let running = link.run(endpoint, id, shares, heartbeat, stop.clone());
                let passing = async {
                    loop {
                        match notices.recv().await {
                            Ok(notice) => peer.inner.sharing.notify(notice),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending().await,
                        }
                    }
                };
                tokio::select! {
                    refused = running => if let Some(reason) = refused { peer.inner.sharing.notify(format!("{reason}; going on without that tracker")) },
                    never = passing => never,
                    () = stop.cancelled() => {}
                }
            }));
        }
        tasks
    }
    /// Says once where the DHT node listens and whether its bootstrap reached anyone.
    pub(super) async fn say_dht_reached(&self) {
        let Some(node) = &self.inner.dht else { return };
        let reached = tokio::select! {
            reached = node.bootstrapped() => reached,
            _ = self.inner.shutdown.cancelled() => return,
        };
        let addr = match node.local_addr().await {
            Ok(addr) => addr,
            Err(err) => return self.inner.sharing.notify(format!("{err:#}; going on without the DHT")),
        };
        let text = match (reached, self.has_tracker()) {
            (true, _) => format!("DHT node on {addr} is up"),
            (false, true) => format!("DHT node on {addr} reached no other node; going on with the tracker"),
            (false, false) => format!("DHT node on {addr} reached no other node; nothing can be found until one answers"),
        };
        self.inner.sharing.notify(text);
    }
}
