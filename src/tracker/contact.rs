//! The addresses a tracker tells its peers to put in tickets.
//!
//! A peer knows the tracker by the address it dialled, often `127.0.0.1` on the tracker's own
//! machine: useless in a ticket pasted on another machine. The tracker knows better: what it
//! was told to advertise (`--advertise`, host names welcome), else, listening on all
//! interfaces, each interface's address, else the one address it listens on. Loopback comes
//! last, so a ticket still works on the machine it was made on.

use std::net::{IpAddr, SocketAddr};

use crate::protocol::{MAX_CONTACT_ADDRESSES, MAX_CONTACT_LEN};

/// The contact list for a tracker bound to `bound`, given the `advertise` flags (each
/// `host[:port]`; the port defaults to the bound one) and this machine's interface addresses.
pub fn addresses(bound: SocketAddr, advertise: &[String], interfaces: &[IpAddr]) -> Vec<String> {
    let mut out: Vec<String> = if !advertise.is_empty() {
        advertise.iter().map(|a| with_port(a, bound.port())).collect()
    } else if bound.ip().is_unspecified() {
        let mut ips: Vec<IpAddr> = interfaces.iter().copied().filter(|ip| usable(ip, bound.is_ipv6())).collect();
        // Loopback last, IPv4 before IPv6 (more home networks route it), otherwise as listed.
        ips.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
        ips.into_iter().map(|ip| SocketAddr::new(ip, bound.port()).to_string()).collect()
    } else {
        vec![bound.to_string()]
    };
    out.retain(|a| !a.is_empty() && a.len() <= MAX_CONTACT_LEN && a.bytes().all(|b| b.is_ascii_graphic()));
    out.dedup();
    out.truncate(MAX_CONTACT_ADDRESSES);
    out
}

/// Whether an interface address is worth advertising from a socket of this family.
fn usable(ip: &IpAddr, dual_stack: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_link_local(),
        // Link-local IPv6 needs a scope id no ticket reader can know.
        IpAddr::V6(v6) => dual_stack && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// `host` with `:port` added unless it has one (`[v6]:port`, `host:port`; a bare IPv6 address
/// gets brackets).
fn with_port(host: &str, port: u16) -> String {
    let host = host.trim();
    if host.parse::<SocketAddr>().is_ok() {
        return host.to_string();
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    match host.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => host.to_string(),
        _ => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn all_interfaces_are_listed_loopback_last() {
        let bound: SocketAddr = "0.0.0.0:6771".parse().unwrap();
        let got = addresses(bound, &[], &ips(&["127.0.0.1", "192.168.1.5", "169.254.3.3", "10.0.0.7", "fe80::1", "2001:db8::5"]));
        assert_eq!(got, ["192.168.1.5:6771", "10.0.0.7:6771", "127.0.0.1:6771"]);
        let bound: SocketAddr = "[::]:6771".parse().unwrap();
        let got = addresses(bound, &[], &ips(&["::1", "192.168.1.5", "fe80::1", "2001:db8::5"]));
        assert_eq!(got, ["192.168.1.5:6771", "[2001:db8::5]:6771", "[::1]:6771"]);
    }

    #[test]
    fn one_bound_address_or_the_advertised_ones() {
        let bound: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(addresses(bound, &[], &ips(&["192.168.1.5"])), ["127.0.0.1:4000"]);
        let advertise = ["tracker.example".to_string(), "203.0.113.9:7000".into(), "2001:db8::5".into(), "bad\u{7}".into()];
        assert_eq!(addresses(bound, &advertise, &[]), ["tracker.example:4000", "203.0.113.9:7000", "[2001:db8::5]:4000"]);
    }
}
