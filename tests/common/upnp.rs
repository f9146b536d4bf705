//! miniupnpd (UPnP IGD, NAT-PMP and PCP) on a home router of the NAT test bed, so a peer's
//! port mapping meets a real router daemon.
//!
//! Debian's miniupnpd is built for nftables: it adds its rules to chains it is told of, in a
//! table the test makes first ([`RULES`]), with policies that accept, so the bed's own
//! iptables firewall stays what decides. `secure_mode` lets a LAN host map ports only to
//! itself, and the permission rules only ports from 1024 up for the router's own LAN, as a
//! packaged router's defaults do.

use std::path::Path;
use std::process::Command;

use super::netns::{Bed, Home};
use super::{Proc, Stream, TIMEOUT};

/// The nftables table miniupnpd writes to: a forward chain it adds accepts to, and the NAT
/// chains it adds a mapping's DNAT (and PCP's SNAT) to.
const RULES: &str = "table inet p2pq {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
";

/// Why miniupnpd cannot run here, if it cannot (the bed's own needs are checked apart).
pub fn unavailable() -> Option<String> {
    for tool in ["miniupnpd", "nft"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("needs `{tool}` (apt-get install -y miniupnpd nftables)"));
        }
    }
    None
}

/// The daemon's configuration for router `n`'s LAN `10.99.n.0/24`, files kept in `dir`.
fn config(n: &str, dir: &Path) -> String {
    let (leases, uuid) = (dir.join("upnp.leases"), format!("3b7a3a2e-14b0-4c1e-9a51-2d0c7e0b14{n:0>2}"));
    format!(
        "ext_ifname=wan\nlistening_ip=lan\nhttp_port=0\nenable_upnp=yes\nenable_natpmp=yes\nsecure_mode=yes\n\
         system_uptime=yes\nlease_file={}\nuuid={uuid}\nupnp_table_name=p2pq\nupnp_nat_table_name=p2pq\n\
         upnp_forward_chain=miniupnpd\nupnp_nat_chain=prerouting_miniupnpd\nupnp_nat_postrouting_chain=postrouting_miniupnpd\n\
         allow 1024-65535 10.99.{n}.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
        leases.display()
    )
}

/// Starts miniupnpd on `home`'s router (its files in `dir`) and waits until it answers.
pub fn start(bed: &Bed, home: &Home, dir: &Path) -> Proc {
    let n = home.lan_host().split('.').nth(2).unwrap_or("0").to_string();
    let (rules, conf, pid) = (dir.join("upnp.nft"), dir.join("miniupnpd.conf"), dir.join("miniupnpd.pid"));
    std::fs::write(&rules, RULES).expect("nft rules");
    std::fs::write(&conf, config(&n, dir)).expect("miniupnpd config");
    bed.exec(&home.router, &["nft", "-f", &rules.display().to_string()]);
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &home.router, "miniupnpd", "-d", "-f"]).arg(&conf).arg("-P").arg(&pid);
    let mut daemon = Proc::spawn_command("miniupnpd", command);
    daemon.expect_on(Stream::Err, |l| l.contains("Listening for NAT-PMP/PCP traffic"), TIMEOUT);
    daemon
}

/// Whether `home`'s router forwards UDP port `port` now (miniupnpd's DNAT rule for it).
pub fn forwards(home: &Home, port: &str) -> bool {
    let args = ["netns", "exec", &home.router, "nft", "list", "chain", "inet", "p2pq", "prerouting_miniupnpd"];
    let listed = Command::new("ip").args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    listed.lines().any(|l| l.contains("dnat") && l.contains(&format!("dport {port} ")))
}
