//! A peer's addresses beyond the one the tracker observes: which of this machine's interface
//! addresses are worth telling (its home network's, its global IPv6), and what kind of
//! address one is, so a downloader tries a holder's home-network address only from the same
//! home (behind the same public address) and its IPv6 address only when it has IPv6 itself.
//!
//! A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 (`::ffff:a.b.c.d`);
//! [`canonical`] turns those back into IPv4 for comparing and showing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where a peer listens unless told: any free port on every interface, dual-stack (IPv4 too),
/// so a peer that meets its tracker over IPv4 is still reached over IPv6.
pub const ANYWHERE: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

/// Most further addresses a peer tells the tracker (and a holder is listed with).
pub const MAX_PEER_ADDRESSES: usize = 8;

/// What kind of network an address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A home or office network behind a NAT: RFC 1918, carrier-grade NAT (100.64/10), IPv6
    /// unique local (fc00::/7). Reachable from the same network only.
    Home,
    /// Global IPv6 unicast (2000::/3): reachable from anywhere with IPv6 that the holder's
    /// firewall lets in.
    Global6,
    /// Anything else (loopback, link-local, multicast, unspecified, a public IPv4 address, which
    /// only the tracker's observation vouches for): never told nor tried.
    Other,
}

/// The kind of network `ip` belongs to.
pub fn scope(ip: IpAddr) -> Scope {
    match canonical_ip(ip) {
        IpAddr::V4(v4) if v4.is_private() || is_shared(v4) => Scope::Home,
        IpAddr::V4(_) => Scope::Other,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => Scope::Home,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xe000) == 0x2000 => Scope::Global6,
        IpAddr::V6(_) => Scope::Other,
    }
}

/// 100.64.0.0/10, the carrier-grade NAT range (RFC 6598).
fn is_shared(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (b & 0xc0) == 64
}

/// `addr` with an IPv4-mapped IPv6 address turned back into IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// This machine's interface addresses (empty if they cannot be read).
pub fn interfaces() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        Err(err) => {
            tracing::debug!("cannot list network interfaces: {err}");
            Vec::new()
        }
    }
}

/// The further addresses a socket bound to `bound` is reached at, from this machine's
/// interface addresses `interfaces`: each home-network or global IPv6 address of a family the
/// socket serves (an unspecified IPv6 socket is dual-stack), with the socket's port; at most
/// [`MAX_PEER_ADDRESSES`], home networks first.
pub fn further(bound: SocketAddr, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    let serves = |ip: &IpAddr| match bound.ip() {
        IpAddr::V6(v6) if v6 == Ipv6Addr::UNSPECIFIED => true,
        IpAddr::V4(v4) if v4 == Ipv4Addr::UNSPECIFIED => ip.is_ipv4(),
        _ => false,
    };
    let mut out: Vec<SocketAddr> =
        interfaces.iter().filter(|ip| serves(ip) && scope(**ip) != Scope::Other).map(|ip| SocketAddr::new(*ip, bound.port())).collect();
    out.sort_by_key(|a| (scope(a.ip()) != Scope::Home, a.is_ipv6()));
    out.dedup();
    out.truncate(MAX_PEER_ADDRESSES);
    out
}

/// Of the further addresses a peer told the tracker, the ones worth listing: a home-network
/// or global IPv6 address with a port, not the observed `addr` itself, without repeats, at
/// most [`MAX_PEER_ADDRESSES`]; the reason when there are more than that.
pub fn listable(told: &[SocketAddr], addr: SocketAddr) -> Result<Vec<SocketAddr>, String> {
    if told.len() > MAX_PEER_ADDRESSES {
        return Err(format!("at most {MAX_PEER_ADDRESSES} further addresses, not {}", told.len()));
    }
    let mut out: Vec<SocketAddr> = Vec::with_capacity(told.len());
    for a in told.iter().map(|a| canonical(*a)) {
        if a.port() != 0 && scope(a.ip()) != Scope::Other && a != canonical(addr) && !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Which of a holder's further addresses `also` to try from here, beside the address the
/// tracker observed (`holder`): its home-network ones when we come from the same public
/// address (`us`, as the tracker observed us), its global IPv6 ones when we have global
/// IPv6 (`ipv6`). None for a holder at a loopback address: it runs on this machine (or on
/// the tracker's, which nobody else reaches).
pub fn worth_trying(holder: SocketAddr, also: &[SocketAddr], us: Option<SocketAddr>, ipv6: bool) -> Vec<SocketAddr> {
    if canonical(holder).ip().is_loopback() {
        return Vec::new();
    }
    let same_home = us.is_some_and(|us| canonical(us).ip() == canonical(holder).ip());
    let wanted = |a: &SocketAddr| match scope(a.ip()) {
        Scope::Home => same_home,
        Scope::Global6 => ipv6,
        Scope::Other => false,
    };
    let mut out: Vec<SocketAddr> = also.iter().copied().filter(wanted).filter(|a| *a != holder).collect();
    out.dedup();
    out.truncate(MAX_PEER_ADDRESSES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn scopes_follow_the_address_ranges() {
        for (ip, want) in [
            ("192.168.1.5", Scope::Home),
            ("10.0.0.1", Scope::Home),
            ("172.16.3.4", Scope::Home),
            ("100.64.0.9", Scope::Home),
            ("100.128.0.9", Scope::Other),
            ("8.8.8.8", Scope::Other),
            ("127.0.0.1", Scope::Other),
            ("169.254.1.1", Scope::Other),
            ("fd12::1", Scope::Home),
            ("2001:db8::5", Scope::Global6),
            ("fe80::1", Scope::Other),
            ("::1", Scope::Other),
            ("ff02::1", Scope::Other),
            ("::ffff:192.168.0.2", Scope::Home),
        ] {
            assert_eq!(scope(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn a_mapped_address_shows_as_ipv4() {
        assert_eq!(canonical(sa("[::ffff:10.1.2.3]:7")), sa("10.1.2.3:7"));
        assert_eq!(canonical(sa("[2001:db8::1]:7")), sa("[2001:db8::1]:7"));
    }

    #[test]
    fn further_addresses_follow_the_socket_family() {
        let all = ips(&["127.0.0.1", "192.168.1.5", "2001:db8::5", "fe80::1", "8.8.4.4", "::1"]);
        assert_eq!(further(sa("[::]:4000"), &all), vec![sa("192.168.1.5:4000"), sa("[2001:db8::5]:4000")]);
        assert_eq!(further(sa("0.0.0.0:4000"), &all), vec![sa("192.168.1.5:4000")]);
        assert!(further(sa("127.0.0.1:4000"), &all).is_empty(), "a socket on one address is reached there only");
        let many: Vec<IpAddr> = (1..=20).map(|n| IpAddr::from([10, 0, 0, n])).collect();
        assert_eq!(further(sa("[::]:1"), &many).len(), MAX_PEER_ADDRESSES);
    }

    #[test]
    fn the_tracker_lists_only_usable_addresses() {
        let observed = sa("5.6.7.8:4000");
        let told = [sa("192.168.1.5:4000"), sa("192.168.1.5:4000"), sa("8.8.8.8:53"), sa("10.0.0.1:0"), sa("[::1]:4000")];
        assert_eq!(listable(&told, observed).unwrap(), vec![sa("192.168.1.5:4000")]);
        assert!(listable(&[sa("10.0.0.1:1"); 9], observed).unwrap_err().contains("at most 8"));
        let home = sa("192.168.1.5:4000");
        assert!(listable(&[home], home).unwrap().is_empty(), "the observed address is listed already");
    }

    #[test]
    fn home_addresses_are_tried_from_the_same_home_only() {
        let holder = sa("5.6.7.8:4000");
        let also = [sa("192.168.1.5:4000"), sa("[2001:db8::5]:4000")];
        assert_eq!(worth_trying(holder, &also, Some(sa("5.6.7.8:5000")), false), vec![also[0]]);
        assert_eq!(worth_trying(holder, &also, Some(sa("9.9.9.9:5000")), true), vec![also[1]]);
        assert!(worth_trying(holder, &also, None, false).is_empty());
        assert_eq!(worth_trying(holder, &also, Some(sa("[::ffff:5.6.7.8]:1")), true), also.to_vec());
        let local = sa("127.0.0.1:4000");
        assert!(worth_trying(local, &also, Some(sa("127.0.0.1:5000")), true).is_empty(), "a holder on this machine is reached on loopback");
    }
}
