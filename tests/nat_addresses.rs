//! Peers reached at the further addresses they tell the tracker (`Addresses`): two peers
//! behind one router, and IPv6 between peers that met over IPv4, with and without IPv6
//! firewalls on their routers. Real `p2pq` processes in network namespaces
//! (`tests/common/netns.rs`); needs root, `ip` and `iptables`, skipped with one line otherwise.

mod common;

use std::time::{Duration, Instant};

use common::bytes;
use common::nat::{assert_got, can_run, connected_line, folder, start_get, start_get_in, start_holder, start_tracker};
use common::netns::{Bed, Nat, PUBLIC6};

#[test]
fn two_peers_with_global_ipv6_connect_directly_over_it() {
    let test = "two_peers_with_global_ipv6_connect_directly_over_it";
    if !can_run(test) {
        return;
    }
    let mut bed = Bed::new("v6");
    let ((holder_ns, _), (getter_ns, _)) = (bed.public_host(1), bed.public_host(2));
    bed.ipv6(&[(&holder_ns, 1), (&getter_ns, 2)]);
    let data = bytes(1 << 20, "v6");
    let dir = folder(&["six"], &data);
    let tracker6 = format!("[{PUBLIC6}::1]:6771");
    let mut tracker = bed.spawn("tracker", &bed.public(), dir.path(), &["tracker", "--listen", &tracker6], &[]);
    tracker.expect("tracker listening on ");
    // No --listen: the default for an IPv6 tracker is [::], dual-stack.
    let args = ["peer", "six", "--tracker", &tracker6, "--heartbeat", "1", "--data-dir", "six-data"];
    let mut holder = bed.spawn("peer six", &holder_ns, dir.path(), &args, &[]);
    holder.expect("connected to tracker");
    holder.command("share file.bin", "shared ");
    let peers = tracker.command("peers", "live peer");
    assert!(peers.iter().any(|l| l.contains(&format!("[{PUBLIC6}::21]:"))), "the tracker sees the holder's IPv6 address: {peers:?}");
    let args = ["get", "file.bin", "--tracker", &tracker6, "--download-dir", "dl"];
    let mut get = bed.spawn("get", &getter_ns, dir.path(), &args, &[("RUST_LOG", "p2pq::peer::punch=debug")]);
    assert_got(&mut get, dir.path(), &data);
    let connected = connected_line(&get);
    assert!(connected.contains(&format!("[{PUBLIC6}::21]:")) && connected.contains("directly"), "{}", get.transcript());
}

/// Two peers behind one router that does not loop packets for its public address back
/// inside: the holder's public address leads nowhere from its own home, punching through it
/// neither, so the downloader must use the home-network address the holder told the tracker.
#[test]
fn two_peers_behind_one_router_connect_over_their_home_network() {
    let test = "two_peers_behind_one_router_connect_over_their_home_network";
    if !can_run(test) {
        return;
    }
    let mut bed = Bed::new("hair");
    let home = bed.home(1, Nat::PortPreserving);
    let neighbour = bed.neighbour(&home);
    let data = bytes(1 << 20, "hairpin");
    let dir = folder(&["near"], &data);
    let mut tracker = start_tracker(&bed, dir.path());
    let _holder = start_holder(&bed, &home.host, dir.path(), "near", &[]);
    let told = |peers: &[String]| peers.iter().any(|l| l.contains(&format!("\"also\":[\"{}:", home.lan_host())));
    let peers = tracker.poll("peers --json", "]", Duration::from_secs(10), told);
    assert!(told(&peers), "the tracker lists the holder's home-network address: {peers:?}");
    let started = Instant::now();
    let mut get = start_get_in(&bed, &neighbour, dir.path(), "dl", &[]);
    assert_got(&mut get, dir.path(), &data);
    let line = connected_line(&get);
    let lan = format!("{}:", home.lan_host());
    assert!(line.contains(&lan) && line.contains("directly"), "reached at its home-network address {lan}, directly: {}", get.transcript());
    assert!(started.elapsed() < Duration::from_secs(10), "the get took {:?}", started.elapsed());
}

/// Two peers behind routers that give every destination a new port (no IPv4 path at all,
/// punched or not), each with global IPv6, and a tracker they reach over IPv4 only: the
/// holder's IPv6 address comes with the lookup, and the downloader connects over it directly.
#[test]
fn peers_that_met_over_ipv4_connect_over_ipv6_when_no_ipv4_path_exists() {
    ipv6_behind_port_randomizing_nats("peers_that_met_over_ipv4_connect_over_ipv6_when_no_ipv4_path_exists", false, "directly");
}

/// As above, but each router's IPv6 firewall drops new inbound packets: the downloader's
/// direct IPv6 attempt is dropped at the holder's router until the holder, introduced, sends
/// towards the downloader's IPv6 address too (`PunchAll`), which opens it.
#[test]
fn peers_behind_ipv6_firewalls_punch_through_over_ipv6() {
    ipv6_behind_port_randomizing_nats("peers_behind_ipv6_firewalls_punch_through_over_ipv6", true, "by hole punching");
}

/// A get between two homes behind `--random-fully` NATs with routed IPv6 (behind an IPv6
/// firewall with `firewall`), checked to connect over the holder's IPv6 address `how`.
fn ipv6_behind_port_randomizing_nats(test: &str, firewall: bool, how: &str) {
    if !can_run(test) {
        return;
    }
    let mut bed = Bed::new(if firewall { "six4fw" } else { "six4" });
    let (home1, home2) = (bed.home(1, Nat::Random), bed.home(2, Nat::Random));
    bed.ipv6_homes(&[&home1, &home2], firewall);
    let data = bytes(1 << 20, test);
    let dir = folder(&["dual"], &data);
    let _tracker = start_tracker(&bed, dir.path());
    // On [::], dual-stack: what a peer listens on unless told (start_holder's own is IPv4).
    let _holder = start_holder(&bed, &home1.host, dir.path(), "dual", &["--listen", "[::]:0"]);
    let mut get = start_get(&bed, &home2, dir.path(), "dl", &[]);
    assert_got(&mut get, dir.path(), &data);
    let line = connected_line(&get);
    assert!(line.contains("[2001:db8:91::2]:") && line.contains(how), "reached over IPv6, {how}: {}", get.transcript());
}
