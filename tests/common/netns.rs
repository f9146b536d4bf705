//! A NAT test bed in Linux network namespaces: a "public" segment (a bridge in a namespace of
//! its own, where the tracker and any public peer run) and home routers, each a namespace
//! with a WAN leg on the bridge and a LAN leg to one host namespace behind it:
//!
//! ```text
//!   home N host 10.99.N.2 ── lan 10.99.N.1 [router N: MASQUERADE, firewall] wan 10.99.0.1N ──┐
//!                                                                  public 10.99.0.1 (br0) ───┤
//!                                                    public host 10.99.0.2X ─────────────────┘
//! ```
//!
//! A router does what a home router does: `MASQUERADE` out of its WAN leg (keeping the source
//! port when it can, or `--random-fully`, a new one for every destination), and a stateful
//! firewall that drops new inbound packets on the WAN leg, as OpenWrt's default zone does.
//! That firewall matters to hole punching on Linux: without it, a first packet that arrives
//! before the host behind has sent is delivered to the router itself, conntrack records it,
//! and the host's own packet towards the same address is then given another port, so the
//! port the other side aims at is never the one that answers.
//!
//! Nothing is made in the root namespace (veth pairs are created inside ours), so no traffic
//! can leave the test bed. Every namespace is named `p2pqn-PID-TAG-ROLE`; the bed removes its
//! own in `Drop` (ending whatever runs in them first), and removes those of killed runs (whose
//! PID is gone) when it starts.

use std::path::Path;
use std::process::Command;

use super::Proc;

/// Prefix of every namespace the NAT tests make.
const PREFIX: &str = "p2pqn-";
/// The public segment's /24.
pub const PUBLIC: &str = "10.99.0";
/// The public segment's IPv6 /64 (a documentation prefix, never routed anywhere).
pub const PUBLIC6: &str = "2001:db8:99";
/// A second /24 on the public segment, from an ordinary unicast range: miniupnpd maps nothing
/// on a router whose WAN address is private or reserved (documentation ranges included), as
/// nothing could reach it from the internet. Nothing leaves the namespaces, so these
/// addresses are never used outside them.
pub const ROUTABLE: &str = "11.99.0";

/// How a home router maps ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Keeps the inside port when it is free (Linux's MASQUERADE default): "endpoint-independent".
    PortPreserving,
    /// A new random port for every destination (`--random-fully`): "symmetric".
    Random,
}

/// Why the bed cannot run here, if it cannot: not root, or `ip`/`iptables` missing.
pub fn unavailable() -> Option<String> {
    let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if !root {
        return Some("needs root (network namespaces and iptables)".into());
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| o.status.success());
        if !found.unwrap_or(false) {
            return Some(format!("needs `{tool}` (apt-get install -y iproute2 iptables)"));
        }
    }
    None
}

/// Whether `conntrack` (the tool) is here.
pub fn has_conntrack() -> bool {
    Command::new("sh").args(["-c", "command -v conntrack"]).output().is_ok_and(|o| o.status.success())
}

/// Runs `ip ARGS` (or any command) and panics with its stderr if it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// The namespaces of one test, removed on drop.
pub struct Bed {
    base: String,
    made: Vec<String>,
    /// Whether the public segment holds `ROUTABLE.1` yet.
    routable: bool,
}

/// One home network: its router's and its host's namespaces, and the host's address.
#[derive(Clone, Debug)]
pub struct Home {
    /// The router's namespace.
    pub router: String,
    /// The host's namespace.
    pub host: String,
    /// The router's public address (what the tracker sees the host at).
    pub wan: String,
    /// Its number (1–9).
    pub n: u8,
}

impl Home {
    /// The host's address on its home network.
    pub fn lan_host(&self) -> String {
        format!("10.99.{}.2", self.n)
    }
}

impl Bed {
    /// A public segment, for the test named `tag`; leftovers of killed runs go first.
    pub fn new(tag: &str) -> Bed {
        remove_stale();
        let mut bed = Bed { base: format!("{PREFIX}{}-{tag}", std::process::id()), made: Vec::new(), routable: false };
        let public = bed.add("pub");
        bed.ip(&public, &["link", "add", "br0", "type", "bridge"]);
        bed.ip(&public, &["addr", "add", &format!("{PUBLIC}.1/24"), "dev", "br0"]);
        bed.ip(&public, &["link", "set", "br0", "up"]);
        bed
    }

    /// The public segment's namespace (the tracker runs there, at `PUBLIC.1`).
    pub fn public(&self) -> String {
        format!("{}-pub", self.base)
    }

    fn add(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.base);
        run("ip", &["netns", "add", &name]);
        self.made.push(name.clone());
        // No duplicate address detection: its second of "tentative" link-local addresses
        // would hold up IPv6 neighbour discovery, so routing, at the start of a test.
        for conf in ["all", "default"] {
            self.exec(&name, &["sysctl", "-qw", &format!("net.ipv6.conf.{conf}.accept_dad=0")]);
        }
        self.ip(&name, &["link", "set", "lo", "up"]);
        name
    }

    fn ip(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Runs `args` in namespace `ns`; panics with its stderr if it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// A leg from `ns` (device `dev`, address `addr`) into the public bridge.
    fn plug(&self, ns: &str, dev: &str, port: &str, addr: &str) {
        self.ip(ns, &["link", "add", dev, "type", "veth", "peer", "name", port, "netns", &self.public()]);
        self.ip(&self.public(), &["link", "set", port, "master", "br0", "up"]);
        self.ip(ns, &["addr", "add", addr, "dev", dev]);
        self.ip(ns, &["link", "set", dev, "up"]);
    }

    /// A host on the public segment at `PUBLIC.(20 + n)`; its namespace.
    pub fn public_host(&mut self, n: u8) -> (String, String) {
        let ns = self.add(&format!("ph{n}"));
        let addr = format!("{PUBLIC}.{}", 20 + n);
        self.plug(&ns, "eth0", &format!("p{n}"), &format!("{addr}/24"));
        (ns, addr)
    }

    /// Gives the public segment global IPv6 too: `PUBLIC6::1` for its own namespace (the
    /// tracker's) and `PUBLIC6::2X` for each public host `(ns, X)` given; no duplicate address
    /// detection, so the addresses are usable at once.
    pub fn ipv6(&self, hosts: &[(&str, u8)]) {
        self.ip(&self.public(), &["-6", "addr", "add", &format!("{PUBLIC6}::1/64"), "dev", "br0", "nodad"]);
        for (ns, n) in hosts {
            self.ip(ns, &["-6", "addr", "add", &format!("{PUBLIC6}::2{n}/64"), "dev", "eth0", "nodad"]);
        }
    }

    /// Home network `n` (1–9): a router at `PUBLIC.1n` doing `nat`, and a host `10.99.n.2`.
    pub fn home(&mut self, n: u8, nat: Nat) -> Home {
        self.home_on(PUBLIC, n, nat)
    }

    /// Home network `n` whose router's WAN leg is at `ROUTABLE.1n`, an address miniupnpd
    /// takes for a public one (the public segment's namespace holds `ROUTABLE.1` too, so the
    /// tracker and a peer there reach it on the link).
    pub fn routable_home(&mut self, n: u8, nat: Nat) -> Home {
        if !self.routable {
            self.ip(&self.public(), &["addr", "add", &format!("{ROUTABLE}.1/24"), "dev", "br0"]);
            self.routable = true;
        }
        let home = self.home_on(ROUTABLE, n, nat);
        self.ip(&home.router, &["route", "add", &format!("{PUBLIC}.0/24"), "dev", "wan"]);
        home
    }

    fn home_on(&mut self, net: &str, n: u8, nat: Nat) -> Home {
        let (router, host) = (self.add(&format!("r{n}")), self.add(&format!("h{n}")));
        let wan = format!("{net}.1{n}");
        self.plug(&router, "wan", &format!("w{n}"), &format!("{wan}/24"));
        self.ip(&router, &["link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", &host]);
        self.ip(&router, &["addr", "add", &format!("10.99.{n}.1/24"), "dev", "lan"]);
        self.ip(&router, &["link", "set", "lan", "up"]);
        self.ip(&host, &["addr", "add", &format!("10.99.{n}.2/24"), "dev", "eth0"]);
        self.ip(&host, &["link", "set", "eth0", "up"]);
        self.ip(&host, &["route", "add", "default", "via", &format!("10.99.{n}.1")]);
        self.exec(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let mut masquerade = vec!["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"];
        if nat == Nat::Random {
            masquerade.push("--random-fully");
        }
        self.exec(&router, &masquerade);
        // What the router itself forwards (a port mapping's DNAT) is let in, as OpenWrt does.
        self.exec(&router, &["iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"]);
        for chain in ["INPUT", "FORWARD"] {
            self.exec(&router, &["iptables", "-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"]);
        }
        Home { router, host, wan, n }
    }

    /// A second host behind `home`'s router (on a LAN leg of its own, `10.99.5N.2`), so two
    /// peers share one public address. Like most home routers, this one does not loop a
    /// packet for its own public address back inside (no hairpin NAT). Its namespace.
    pub fn neighbour(&mut self, home: &Home) -> String {
        let n = home.n;
        let host = self.add(&format!("h{n}b"));
        self.ip(&home.router, &["link", "add", "lan2", "type", "veth", "peer", "name", "eth0", "netns", &host]);
        self.ip(&home.router, &["addr", "add", &format!("10.99.5{n}.1/24"), "dev", "lan2"]);
        self.ip(&home.router, &["link", "set", "lan2", "up"]);
        self.ip(&host, &["addr", "add", &format!("10.99.5{n}.2/24"), "dev", "eth0"]);
        self.ip(&host, &["link", "set", "eth0", "up"]);
        self.ip(&host, &["route", "add", "default", "via", &format!("10.99.5{n}.1")]);
        host
    }

    /// Global IPv6 for `homes`, routed and not translated (as ISPs hand out): home N's host
    /// gets `2001:db8:9N::2`, its router `PUBLIC6::1N` outside and routes to every other
    /// home given; the public segment gets `PUBLIC6::1`. With `firewall`, each router drops
    /// new inbound IPv6 on its WAN leg, as most home routers do by default; else it lets all in.
    pub fn ipv6_homes(&self, homes: &[&Home], firewall: bool) {
        self.ip(&self.public(), &["-6", "addr", "add", &format!("{PUBLIC6}::1/64"), "dev", "br0", "nodad"]);
        for home in homes {
            let n = home.n;
            self.exec(&home.router, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
            self.ip(&home.router, &["-6", "addr", "add", &format!("{PUBLIC6}::1{n}/64"), "dev", "wan", "nodad"]);
            self.ip(&home.router, &["-6", "addr", "add", &format!("2001:db8:9{n}::1/64"), "dev", "lan", "nodad"]);
            self.ip(&home.host, &["-6", "addr", "add", &format!("2001:db8:9{n}::2/64"), "dev", "eth0", "nodad"]);
            self.ip(&home.host, &["-6", "route", "add", "default", "via", &format!("2001:db8:9{n}::1")]);
            self.ip(&self.public(), &["-6", "route", "add", &format!("2001:db8:9{n}::/64"), "via", &format!("{PUBLIC6}::1{n}")]);
            if firewall {
                let drop = ["ip6tables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"];
                self.exec(&home.router, &drop);
            }
            for other in homes.iter().filter(|o| o.n != n) {
                let (net, via) = (format!("2001:db8:9{}::/64", other.n), format!("{PUBLIC6}::1{}", other.n));
                self.ip(&home.router, &["-6", "route", "add", &net, "via", &via]);
            }
        }
    }

    /// Forwards UDP port `port` of `home`'s router to its host, as a user's port forward does:
    /// the host is then reachable directly at `wan:port`.
    pub fn forward(&self, home: &Home, port: u16) {
        let (port, to) = (port.to_string(), format!("{}:{port}", home.lan_host()));
        let dnat = ["iptables", "-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "udp", "--dport", &port, "-j", "DNAT", "--to", &to];
        self.exec(&home.router, &dnat);
        self.exec(&home.router, &["iptables", "-I", "FORWARD", "-i", "wan", "-p", "udp", "--dport", &port, "-j", "ACCEPT"]);
    }

    /// Forgets every NAT mapping of `router` at once, as a router restart does.
    pub fn flush_conntrack(&self, router: &str) {
        self.exec(router, &["conntrack", "-F"]);
    }

    /// Starts `p2pq ARGS` in namespace `ns`, in `dir`, with `envs` set.
    pub fn spawn(&self, name: &str, ns: &str, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_p2pq")]).args(super::offline(args)).current_dir(dir);
        command.envs(envs.iter().copied()).env("NO_COLOR", "1");
        if !envs.iter().any(|(k, _)| *k == "RUST_LOG") {
            command.env_remove("RUST_LOG");
        }
        Proc::spawn_command(name, command)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        remove(&self.made);
    }
}

/// Ends what runs in `namespaces`, then deletes them.
fn remove(namespaces: &[String]) {
    for ns in namespaces {
        let pids = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        for pid in pids.unwrap_or_default().split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    for ns in namespaces {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
}

/// Removes namespaces of ours whose test process is gone (a killed run's).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    let stale: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .filter(|name| {
            let pid = name[PREFIX.len()..].split('-').next().unwrap_or("");
            !Path::new("/proc").join(pid).exists()
        })
        .map(str::to_string)
        .collect();
    remove(&stale);
}
