//! Keeping this peer's UDP port mapped on its home router for as long as it runs: map it once
//! at start (in the background, bounded by [`portmap::ATTEMPT_TIMEOUT`]), say once what
//! happened, tell every tracker the mapped address after each registration, renew the lease
//! at half its life, and remove the mapping when the peer stops.
//!
//! A peer whose router maps nothing still works as before: it is listed at its observed
//! address and reached directly or by hole punching (`punch`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Peer;
use crate::discovery::tracker::TrackerLink;
use crate::net::portmap::{self, Mapping};
use crate::protocol::{TrackerRequest, TrackerResponse};

impl Peer {
    /// Starts keeping the port mapped, unless turned off or pointless here (loopback);
    /// returns the tasks to await on exit.
    pub(super) fn keep_port_mapped(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let inner = &self.inner;
        let Ok(local) = inner.endpoint.local_addr() else { return Vec::new() };
        if !inner.config.port_mapping || inner.config.no_tracker {
            return Vec::new();
        }
        if let Some(why) = portmap::skip_reason(local, inner.config.tracker) {
            tracing::debug!("no port mapping: {why}");
            return Vec::new();
        }
        let (mapped, _) = watch::channel(None);
        let me = inner.config.id.as_str();
        let links = std::iter::once(&inner.link).chain(&inner.others);
        let mut tasks: Vec<_> = links
            .map(|link| crate::net::task::spawn(tracing::info_span!("port mapping", me), tell(link.clone(), mapped.subscribe())))
            .collect();
        let (peer, stop) = (self.clone(), inner.shutdown.clone());
        tasks.push(crate::net::task::spawn(tracing::info_span!("port mapping", me), async move {
            peer.hold_mapping(local.port(), mapped, stop).await
        }));
        tasks
    }

    /// Maps `port`, says how that went, then renews until `stop`, and removes the mapping.
    /// Stopped while the router is still being asked (a one-shot get that is already done),
    /// it does not wait: a mapping made meanwhile lapses with its lease.
    async fn hold_mapping(&self, port: u16, mapped: watch::Sender<Option<SocketAddr>>, stop: CancellationToken) {
        let made = tokio::select! {
            made = portmap::map(port) => made,
            () = stop.cancelled() => return,
        };
        let mut mapping = match made {
            Ok(mapping) => mapping,
            Err(reason) => return self.inner.sharing.notify(format!("no port mapping: {reason}")),
        };
        self.inner.sharing.notify(said(&mapping));
        mapped.send_replace(Some(mapping.external));
        loop {
            tokio::select! {
                () = tokio::time::sleep(portmap::renew_in(mapping.lease)) => {}
                () = stop.cancelled() => break,
            }
            match mapping.renew().await {
                Ok(()) => {
                    mapped.send_if_modified(|now| now.replace(mapping.external) != Some(mapping.external));
                }
                Err(err) => tracing::warn!("cannot renew the port mapping on the router: {err}"),
            }
        }
        mapping.remove().await;
    }
}

/// The one line said when the port is mapped.
fn said(mapping: &Mapping) -> String {
    format!("port mapped on the router: {} ({})", mapping.external, mapping.method)
}

/// Tells `link`'s tracker the mapped address whenever the link registers and whenever the
/// address changes; ends when the mapping's holder does.
async fn tell(link: Arc<TrackerLink>, mut mapped: watch::Receiver<Option<SocketAddr>>) {
    let mut up = link.watch_up();
    loop {
        let addr = *mapped.borrow_and_update();
        let registered = *up.borrow_and_update() == Some(true);
        if let (Some(addr), true) = (addr, registered) {
            match link.request(&TrackerRequest::Mapped { addr }).await {
                Ok(TrackerResponse::Ok) => tracing::debug!(%addr, "the tracker lists us at our mapped address"),
                Ok(other) => tracing::debug!(%addr, "the tracker did not take our mapped address: {other:?}"),
                Err(err) => tracing::debug!(%addr, "cannot tell the tracker our mapped address: {err:#}"),
            }
        }
        tokio::select! {
            changed = mapped.changed() => if changed.is_err() { return },
            changed = up.changed() => if changed.is_err() { return },
        }
    }
}
