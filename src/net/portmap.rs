//! Port mapping on the home router: ask it to forward a UDP port to our endpoint, so that
//! downloaders reach us directly even where hole punching cannot (a NAT that picks a new port
//! for every destination).
//!
//! Two families of protocol are tried at once, each bounded by [`ATTEMPT_TIMEOUT`]: UPnP IGD
//! (`igd-next`: an SSDP multicast to find the router, then SOAP over HTTP) and NAT-PMP with
//! its successor PCP (`crab_nat`: one UDP exchange with the default gateway, PCP first). The
//! first that works is kept and the other's mapping, if it also worked, is removed again.
//! `crab_nat` rather than iroh's `portmapper`: the latter brings its own UPnP client, probing
//! loop and metrics, and wants to own the socket's life; here the peer owns the task, renews
//! the lease at half its life ([`renew_in`]) and removes the mapping on exit.
//!
//! Nothing here is tried when the peer listens on loopback or its tracker is on loopback
//! ([`skip_reason`]): such a peer has no router between it and its tracker, and tests that run
//! peers on loopback then send nothing beyond it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use crab_nat::{InternetProtocol, PortMapping, PortMappingOptions, TimeoutConfig};
use igd_next::PortMappingProtocol;
use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;

/// Longest one protocol may take to find the router and map the port: a router that does not
/// answer costs this much, once, in the background.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Lease asked for: an hour, renewed at half time, so a peer that died frees it soon enough.
const LEASE: Duration = Duration::from_secs(3600);
/// Least time between renewals, whatever short lease a router grants.
const MIN_RENEW: Duration = Duration::from_secs(30);
/// Longest removing a mapping may take on exit.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(1);
/// How the mapping is labelled on the router (UPnP lists it under this name).
const DESCRIPTION: &str = "p2pq";
/// Where Linux lists its IPv4 routes (the default gateway is NAT-PMP's server).
const ROUTES: &str = "/proc/net/route";

/// Which protocol made a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// UPnP IGD.
    Upnp,
    /// NAT-PMP or PCP.
    NatPmp,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Upnp => "UPnP",
            Method::NatPmp => "NAT-PMP/PCP",
        })
    }
}

/// A port mapped on the router, to renew and remove.
pub struct Mapping {
    /// The address the router forwards to us.
    pub external: SocketAddr,
    /// Which protocol made it.
    pub method: Method,
    /// The lease the router granted.
    pub lease: Duration,
    held: Held,
}

enum Held {
    Upnp { gateway: Gateway<Tokio>, local: SocketAddr },
    Pmp(Box<PortMapping>),
}

/// Why mapping is not even tried for an endpoint at `listen` whose tracker is at `tracker`.
pub fn skip_reason(listen: SocketAddr, tracker: SocketAddr) -> Option<&'static str> {
    if listen.ip().is_loopback() {
        return Some("listening on loopback");
    }
    if tracker.ip().is_loopback() {
        return Some("the tracker is on loopback");
    }
    None
}

/// When to renew a lease of `lease`: at half its life, not more often than [`MIN_RENEW`].
pub fn renew_in(lease: Duration) -> Duration {
    (lease / 2).max(MIN_RENEW)
}

/// The default IPv4 gateway in a `/proc/net/route` table (little-endian hex fields).
pub fn default_gateway(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (dest, gateway) = (fields.get(1)?, fields.get(2)?);
        if *dest != "00000000" {
            return None;
        }
        let raw = u32::from_str_radix(gateway, 16).ok()?;
        Some(Ipv4Addr::from(raw.to_le_bytes())).filter(|ip| !ip.is_unspecified())
    })
}

/// Maps UDP `port` on the router by whichever protocol answers; the reason when none did.
pub async fn map(port: u16) -> Result<Mapping, String> {
    let Some(port) = NonZeroU16::new(port) else { return Err("no port to map".into()) };
    let (upnp, pmp) = tokio::join!(bounded(upnp(port)), bounded(nat_pmp(port)));
    match (upnp, pmp) {
        (Ok(kept), Ok(extra)) => {
            // One mapping is enough. A router that speaks both protocols may keep one rule for
            // both (miniupnpd does): removing the same port again would remove the one kept.
            if extra.external != kept.external {
                extra.remove().await;
            }
            Ok(kept)
        }
        (Ok(kept), Err(_)) | (Err(_), Ok(kept)) => Ok(kept),
        (Err(upnp), Err(pmp)) => Err(format!("no UPnP/NAT-PMP router answered (UPnP: {upnp}; NAT-PMP/PCP: {pmp})")),
    }
}

/// `attempt`, given up after [`ATTEMPT_TIMEOUT`].
async fn bounded(attempt: impl Future<Output = Result<Mapping, String>>) -> Result<Mapping, String> {
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await.unwrap_or_else(|_| Err("no answer".into()))
}

/// Our address on the link towards `router` (no packet is sent: a UDP `connect` only picks it).
async fn local_ip_towards(router: IpAddr) -> Result<IpAddr, String> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.map_err(|e| e.to_string())?;
    socket.connect((router, 9)).await.map_err(|e| format!("no route to the router {router}: {e}"))?;
    Ok(socket.local_addr().map_err(|e| e.to_string())?.ip())
}

async fn upnp(port: NonZeroU16) -> Result<Mapping, String> {
    let mut options = igd_next::SearchOptions::default();
    options.timeout = Some(ATTEMPT_TIMEOUT);
    let gateway = igd_next::aio::tokio::search_gateway(options).await.map_err(|e| e.to_string())?;
    let local = SocketAddr::new(local_ip_towards(gateway.addr.ip()).await?, port.get());
    let lease = LEASE.as_secs() as u32;
    // The same port outside as inside first (what a person expects to see), else any.
    let external = match gateway.add_port(PortMappingProtocol::UDP, port.get(), local, lease, DESCRIPTION).await {
        Ok(()) => port.get(),
        Err(_) => gateway.add_any_port(PortMappingProtocol::UDP, local, lease, DESCRIPTION).await.map_err(|e| e.to_string())?,
    };
    let ip = match gateway.get_external_ip().await {
        Ok(ip) => ip,
        Err(err) => {
            let _ = gateway.remove_port(PortMappingProtocol::UDP, external).await;
            return Err(format!("mapped, but the router would not say its address: {err}"));
        }
    };
    let external = SocketAddr::new(ip, external);
    Ok(Mapping { external, method: Method::Upnp, lease: LEASE, held: Held::Upnp { gateway, local } })
}

async fn nat_pmp(port: NonZeroU16) -> Result<Mapping, String> {
    let table = tokio::fs::read_to_string(ROUTES).await.map_err(|e| format!("cannot read {ROUTES}: {e}"))?;
    let router = default_gateway(&table).ok_or("no default gateway")?;
    let client = local_ip_towards(router.into()).await?;
    let timeouts =
        TimeoutConfig { initial_timeout: Duration::from_millis(250), max_retries: 2, max_retry_timeout: Some(Duration::from_millis(500)) };
    let options =
        PortMappingOptions { external_port: Some(port), lifetime_seconds: Some(LEASE.as_secs() as u32), timeout_config: Some(timeouts) };
    let mapping = PortMapping::new(router.into(), client, InternetProtocol::Udp, port, options).await.map_err(|e| e.to_string())?;
    let ip = match mapping.mapping_type() {
        crab_nat::PortMappingType::Pcp { external_ip, .. } => external_ip,
        crab_nat::PortMappingType::NatPmp => {
            crab_nat::natpmp::external_address(router.into(), Some(timeouts)).await.map_err(|e| e.to_string())?.into()
        }
    };
    let (external, lease) = (SocketAddr::new(ip, mapping.external_port().get()), Duration::from_secs(mapping.lifetime().into()));
    Ok(Mapping { external, method: Method::NatPmp, lease, held: Held::Pmp(Box::new(mapping)) })
}

impl Mapping {
    /// Asks the router to extend the lease; `external` may change (a router that restarted).
    pub async fn renew(&mut self) -> Result<(), String> {
        let renewing = async {
            match &mut self.held {
                Held::Upnp { gateway, local } => {
                    let lease = LEASE.as_secs() as u32;
                    gateway
                        .add_port(PortMappingProtocol::UDP, self.external.port(), *local, lease, DESCRIPTION)
                        .await
                        .map_err(|e| e.to_string())
                }
                Held::Pmp(mapping) => {
                    mapping.renew().await.map_err(|e| e.to_string())?;
                    self.external.set_port(mapping.external_port().get());
                    self.lease = Duration::from_secs(mapping.lifetime().into());
                    Ok(())
                }
            }
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, renewing).await.unwrap_or_else(|_| Err("no answer".into()))
    }

    /// Removes the mapping from the router, giving up after [`REMOVE_TIMEOUT`].
    pub async fn remove(self) {
        let removing = async {
            match self.held {
                Held::Upnp { gateway, .. } => {
                    gateway.remove_port(PortMappingProtocol::UDP, self.external.port()).await.map_err(|e| e.to_string())
                }
                Held::Pmp(mapping) => mapping.try_drop().await.map_err(|(e, _)| e.to_string()),
            }
        };
        match tokio::time::timeout(REMOVE_TIMEOUT, removing).await {
            Ok(Ok(())) => tracing::debug!("port mapping removed"),
            Ok(Err(err)) => tracing::debug!("cannot remove the port mapping: {err}"),
            Err(_) => tracing::debug!("the router did not answer the removal of the port mapping"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t00630A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t01630A0A\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(default_gateway(table), Some(Ipv4Addr::new(10, 10, 99, 1)));
        assert_eq!(default_gateway("Iface Destination Gateway\n"), None);
    }

    #[test]
    fn loopback_peers_and_trackers_are_never_mapped() {
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let lan: SocketAddr = "10.99.0.1:6771".parse().unwrap();
        assert_eq!(skip_reason("127.0.0.1:0".parse().unwrap(), lan), Some("listening on loopback"));
        assert_eq!(skip_reason(any, "127.0.0.1:6771".parse().unwrap()), Some("the tracker is on loopback"));
        assert_eq!(skip_reason(any, lan), None);
    }

    #[test]
    fn a_lease_is_renewed_at_half_life_but_not_too_often() {
        assert_eq!(renew_in(Duration::from_secs(3600)), Duration::from_secs(1800));
        assert_eq!(renew_in(Duration::from_secs(10)), MIN_RENEW);
    }
}
