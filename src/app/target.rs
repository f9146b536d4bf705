//! Which tracker to use, from what the user typed after `--tracker` (an address, a host name
//! with or without a port, or a ticket) or from a ticket given to `get`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::discovery::ticket::Ticket;
use crate::protocol::{DEFAULT_TRACKER_PORT, Fingerprint};

/// How long resolving one host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Where peers look for the tracker when told nothing.
pub const DEFAULT_TRACKER: &str = "127.0.0.1:6771";

/// One tracker: its addresses (tried together) and, from a ticket, the fingerprint to pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerTarget {
    /// Every address it may be reached at; at least one.
    pub addrs: Vec<SocketAddr>,
    /// The certificate fingerprint to pin instead of reading a certificate file.
    pub pin: Option<Fingerprint>,
}

impl TrackerTarget {
    /// The first address, the one messages name.
    pub fn first(&self) -> SocketAddr {
        self.addrs[0]
    }
}

/// Resolves `--tracker TEXT`: `host[:port]`, `ip[:port]`, `[v6]:port`, or a ticket.
pub async fn resolve(text: &str) -> Result<TrackerTarget> {
    if Ticket::looks_like(text) {
        let ticket = Ticket::parse(text)?;
        return from_ticket(&ticket).await;
    }
    Ok(TrackerTarget { addrs: lookup(text).await?, pin: None })
}

/// Resolves the further `--tracker`s: each a ticket, or `HOST[:PORT]@CERTFILE` (the
/// certificate to pin); a plain address is refused, since no certificate file can be assumed.
pub async fn resolve_others(texts: &[String]) -> Result<Vec<crate::peer::OtherTracker>> {
    let mut out = Vec::new();
    for text in texts {
        let (target, pin) = match text.rsplit_once('@') {
            _ if Ticket::looks_like(text) => {
                let target = resolve(text).await?;
                let pin = target.pin;
                (target, pin)
            }
            Some((addr, cert)) => {
                let pin = crate::net::tls::pinned_fingerprint(std::path::Path::new(cert))
                    .with_context(|| format!("--tracker {text}: cannot read the certificate {cert}"))?;
                (resolve(addr).await?, Some(pin))
            }
            None => bail!("--tracker {text}: a further tracker needs its certificate pinned: give HOST[:PORT]@CERTFILE, or a ticket"),
        };
        let pin = pin.with_context(|| format!("--tracker {text}: no certificate to pin"))?;
        out.push(crate::peer::OtherTracker { addrs: target.addrs, pin });
    }
    Ok(out)
}

/// Resolves `--tracker` as given, or [`DEFAULT_TRACKER`] when it was not.
pub async fn resolve_or_default(text: Option<&str>) -> Result<TrackerTarget> {
    resolve(text.unwrap_or(DEFAULT_TRACKER)).await
}

/// The tracker a ticket names, pinned by its fingerprint; addresses that do not resolve are
/// skipped as long as one does.
pub async fn from_ticket(ticket: &Ticket) -> Result<TrackerTarget> {
    let mut addrs = Vec::new();
    let mut first_err = None;
    for text in &ticket.trackers {
        match lookup(text).await {
            Ok(found) => addrs.extend(found.into_iter().filter(|a| !addrs.contains(a)).collect::<Vec<_>>()),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    match (addrs.is_empty(), first_err) {
        (true, Some(err)) => Err(err.context("no tracker address in the ticket resolves")),
        (true, None) => bail!("the ticket names no tracker"),
        (false, _) => Ok(TrackerTarget { addrs, pin: Some(ticket.tracker_fingerprint) }),
    }
}

/// The addresses of `host[:port]` (port [`DEFAULT_TRACKER_PORT`] if none).
async fn lookup(text: &str) -> Result<Vec<SocketAddr>> {
    let text = text.trim();
    if let Some(addr) = literal(text) {
        return Ok(vec![addr]);
    }
    let (host, port) = split_port(text).with_context(|| format!("{text:?} is not a tracker address (HOST, HOST:PORT or IP:PORT)"))?;
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .with_context(|| format!("looking up the tracker host {host} took over {} s", RESOLVE_TIMEOUT.as_secs()))?
        .with_context(|| format!("cannot resolve the tracker host {host}"))?;
    let mut addrs: Vec<SocketAddr> = found.collect();
    // IPv4 first: more home networks route it; the link tries them all at once anyway.
    addrs.sort_by_key(SocketAddr::is_ipv6);
    addrs.dedup();
    if addrs.is_empty() {
        bail!("the tracker host {host} has no address");
    }
    Ok(addrs)
}

/// An address written out: `ip:port`, `[v6]:port`, or a bare IP with the default port.
fn literal(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, DEFAULT_TRACKER_PORT)))
}

/// `host:port` or `host` → the host and the port (default if none); `None` if it cannot be a
/// host name.
fn split_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (text, DEFAULT_TRACKER_PORT),
    };
    let ok = !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_host_names_and_default_ports() {
        assert_eq!(lookup("10.0.0.5:7000").await.unwrap(), ["10.0.0.5:7000".parse().unwrap()]);
        assert_eq!(lookup("10.0.0.5").await.unwrap(), ["10.0.0.5:6771".parse().unwrap()]);
        assert_eq!(lookup("[::1]:7000").await.unwrap(), ["[::1]:7000".parse().unwrap()]);
        assert_eq!(lookup("::1").await.unwrap(), ["[::1]:6771".parse().unwrap()]);
        let local = lookup("localhost").await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 6771), "{local:?}");
        assert!(lookup("localhost:7000").await.unwrap().iter().all(|a| a.port() == 7000));
        for bad in ["", "a b", "host:port", "x:99999", "evil\u{1b}[31m"] {
            assert!(lookup(bad).await.is_err(), "{bad:?}");
        }
    }
}
