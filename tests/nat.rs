//! Peers behind home routers (NAT): real `p2pq` processes in network namespaces
//! (`tests/common/netns.rs`), the tracker on a public segment, a holder and a downloader each
//! behind a router of its own. Needs root, `ip` and `iptables`; skipped with one line where
//! they are missing. The two measurements (200 connection attempts; punched against
//! port-forwarded throughput) are `#[ignore]`d: run them with
//! `cargo test --test nat -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::nat::{TRACKER, assert_got, can_run, connected_line, folder, start_get, start_holder, start_tracker};
use common::netns::{Bed, Nat, has_conntrack};
use common::{Stream, TIMEOUT, bytes};

#[test]
fn a_get_crosses_two_port_preserving_nats_by_hole_punching() {
    if !can_run("a_get_crosses_two_port_preserving_nats_by_hole_punching") {
        return;
    }
    let mut bed = Bed::new("pp");
    let (home1, home2) = (bed.home(1, Nat::PortPreserving), bed.home(2, Nat::PortPreserving));
    let data = bytes(3 << 20, "nat");
    let dir = folder(&["a"], &data);
    let mut tracker = start_tracker(&bed, dir.path());
    let started = Instant::now();
    let mut holder = start_holder(&bed, &home1.host, dir.path(), "a", &[]);
    // Its router runs no UPnP or NAT-PMP daemon: said once, within the attempt's bound.
    let said = "no port mapping: no UPnP/NAT-PMP router answered";
    if !holder.saw(said) {
        holder.expect(said);
    }
    assert!(started.elapsed() < Duration::from_secs(3), "the port mapping attempt took {:?}", started.elapsed());
    let mut get = start_get(&bed, &home2, dir.path(), "dl", &[]);
    get.expect("downloaded");
    let done = Instant::now();
    assert_got(&mut get, dir.path(), &data);
    // An attempt left unanswered lingers, and leaving waits for it up to 2 s.
    assert!(done.elapsed() < Duration::from_millis(1500), "the get took {:?} to leave after its download", done.elapsed());
    assert!(get.saw("by hole punching"), "the holder is behind a NAT, so only punching reaches it:\n{}", get.transcript());
    // The downloader reports how the introduction went; the tracker's view says so.
    let is_reported = |peers: &[String]| {
        let reached = |p: &serde_json::Value| p["id"] == "a" && p["reached"].as_str().is_some_and(|r| r.starts_with("punched (introduced"));
        let json = peers.last().and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        json.and_then(|all| all.as_array().cloned())
            .is_some_and(|all| all.iter().any(|p| reached(p) && p["reached"].as_str().is_some_and(|r| r.contains(" 1 connected"))))
    };
    let peers = tracker.poll("peers --json", "]", Duration::from_secs(10), is_reported);
    assert!(is_reported(&peers), "the tracker says it introduced and a connection came of it: {peers:?}");
}

#[test]
fn a_symmetric_nat_is_explained_within_3_s_and_the_get_goes_on_from_a_public_holder() {
    if !can_run("a_symmetric_nat_is_explained_within_3_s_and_the_get_goes_on_from_a_public_holder") {
        return;
    }
    let mut bed = Bed::new("sym");
    let (behind, home) = (bed.home(1, Nat::Random), bed.home(2, Nat::PortPreserving));
    let (public_ns, _) = bed.public_host(1);
    let data = bytes(2 << 20, "sym");
    let dir = folder(&["hidden", "open"], &data);
    let _tracker = start_tracker(&bed, dir.path());
    let _hidden = start_holder(&bed, &behind.host, dir.path(), "hidden", &[]);
    let _open = start_holder(&bed, &public_ns, dir.path(), "open", &[]);
    let started = Instant::now();
    let mut get = start_get(&bed, &home, dir.path(), "dl", &[]);
    let line = get.expect_on(Stream::Err, |l| l.contains("cannot reach peer hidden"), TIMEOUT);
    let took = started.elapsed();
    assert!(line.contains("no path"), "the reason is given: {line}");
    assert!(took < Duration::from_secs(3), "explained after {took:?}, not within 3 s: {line}");
    assert_got(&mut get, dir.path(), &data);
}

#[test]
fn a_transfer_survives_both_routers_forgetting_their_mappings() {
    if !can_run("a_transfer_survives_both_routers_forgetting_their_mappings") {
        return;
    }
    if !has_conntrack() {
        println!("skipped a_transfer_survives_both_routers_forgetting_their_mappings: needs `conntrack` (apt-get install -y conntrack)");
        return;
    }
    let mut bed = Bed::new("flush");
    let (home1, home2) = (bed.home(1, Nat::PortPreserving), bed.home(2, Nat::PortPreserving));
    let data = bytes(4 << 20, "flush");
    let dir = folder(&["slow"], &data);
    let _tracker = start_tracker(&bed, dir.path());
    // 4 MiB at 2 MiB/s: about two seconds, so the flush lands mid-transfer.
    let _holder = start_holder(&bed, &home1.host, dir.path(), "slow", &["--upload-limit", "2MiB"]);
    let mut get = start_get(&bed, &home2, dir.path(), "dl", &["--json"]);
    get.expect_on(Stream::Out, |l| l.contains("\"event\":\"progress\"") && !l.contains("\"bytes\":0,"), TIMEOUT);
    bed.flush_conntrack(&home1.router);
    bed.flush_conntrack(&home2.router);
    assert_got(&mut get, dir.path(), &data);
}

#[test]
fn a_holder_behind_a_symmetric_nat_is_reached_through_the_port_its_router_mapped() {
    let test = "a_holder_behind_a_symmetric_nat_is_reached_through_the_port_its_router_mapped";
    if !can_run(test) {
        return;
    }
    if let Some(why) = common::upnp::unavailable() {
        println!("skipped {test}: {why}");
        return;
    }
    let mut bed = Bed::new("upnp");
    // A symmetric NAT: punching cannot work, only the mapping can.
    let home = bed.routable_home(1, Nat::Random);
    let data = bytes(2 << 20, "upnp");
    let dir = folder(&["mapped"], &data);
    let _upnpd = common::upnp::start(&bed, &home, dir.path());
    let mut tracker = start_tracker(&bed, dir.path());
    let args = ["peer", "mapped", "--tracker", TRACKER, "--heartbeat", "1", "--data-dir", "mapped-data", "--listen", "0.0.0.0:0"];
    let mut holder = bed.spawn("peer mapped", &home.host, dir.path(), &args, &[]);
    let line = holder.expect("port mapped on the router: ");
    let mapped = line.rsplit(": ").next().and_then(|rest| rest.split(' ').next()).unwrap_or_default().to_string();
    assert!(mapped.starts_with(&format!("{}:", home.wan)), "mapped on the router's public address: {line}");
    holder.command("share file.bin", "shared ");
    let peers = tracker.poll("peers", "live peer", TIMEOUT, |out| out.iter().any(|l| l.contains(&format!("mapped {mapped}"))));
    assert!(peers.iter().any(|l| l.starts_with("mapped ") || l.contains(" mapped ")), "{peers:?}");
    // The downloader on the public segment connects to the mapped port, with no introduction.
    let args = ["get", "file.bin", "--tracker", TRACKER, "--download-dir", "dl"];
    let mut get = bed.spawn("get", &bed.public(), dir.path(), &args, &[("RUST_LOG", "p2pq::peer::punch=debug")]);
    assert_got(&mut get, dir.path(), &data);
    let connected = connected_line(&get);
    assert!(connected.contains(&mapped) && connected.contains("directly"), "reached at the mapped address directly:\n{}", get.transcript());
    // Leaving removes the mapping from the router.
    let port = mapped.rsplit(':').next().unwrap_or_default().to_string();
    assert!(common::upnp::forwards(&home, &port), "the router forwards port {port} while the holder runs");
    holder.send("exit");
    assert!(holder.wait_exit(TIMEOUT).success(), "{}", holder.transcript());
    assert!(!common::upnp::forwards(&home, &port), "the mapping of port {port} is removed on exit");
}

/// The target: at least 98% of 200 connection attempts between peers behind two
/// port-preserving NATs connect within 1 s. Each attempt is a fresh `p2pq get` (a new port,
/// so new NAT mappings) of a small file from a holder behind the other router; the time is
/// the downloader's, from its first packet towards the holder to the handshake done.
#[test]
#[ignore = "takes about 75 s: cargo test --test nat -- --ignored --nocapture"]
fn two_hundred_attempts_through_two_port_preserving_nats() {
    if !can_run("two_hundred_attempts_through_two_port_preserving_nats") {
        return;
    }
    let attempts: usize = std::env::var("P2PQ_NAT_ATTEMPTS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let mut bed = Bed::new("measure");
    let (home1, home2) = (bed.home(1, Nat::PortPreserving), bed.home(2, Nat::PortPreserving));
    let dir = folder(&["m"], &bytes(16 << 10, "measure"));
    let _tracker = start_tracker(&bed, dir.path());
    let _holder = start_holder(&bed, &home1.host, dir.path(), "m", &[]);
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for i in 0..attempts {
        let mut get = start_get(&bed, &home2, dir.path(), &format!("dl-{i}"), &[]);
        let status = get.wait_exit(TIMEOUT);
        match connect_ms(&get.said()) {
            Some((ms, how)) if status.success() => times.push((ms, how)),
            _ => failures.push(get.transcript()),
        }
    }
    report(attempts, &mut times, &failures);
}

/// The time to connect and how, from the downloader's `connected to holder` diagnostic.
fn connect_ms(lines: &[String]) -> Option<(f64, String)> {
    let line = lines.iter().find(|l| l.contains("connected to holder"))?;
    // `name="value"` (quoted, may hold spaces) or `name=value`.
    let field = |name: &str| {
        let rest = &line[line.find(&format!("{name}="))? + name.len() + 1..];
        let (rest, end) = match rest.strip_prefix('"') {
            Some(quoted) => (quoted, '"'),
            None => (rest, ' '),
        };
        Some(rest[..rest.find(end).unwrap_or(rest.len())].to_string())
    };
    Some((field("ms")?.parse().ok()?, field("how")?))
}

fn report(attempts: usize, times: &mut [(f64, String)], failures: &[String]) {
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let within = times.iter().filter(|(ms, _)| *ms <= 1000.0).count();
    let punched = times.iter().filter(|(_, how)| how.contains("punching")).count();
    let pct = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).map_or(f64::NAN, |t| t.0);
    let rate = 100.0 * within as f64 / attempts as f64;
    println!(
        "NAT measurement: {within} of {attempts} attempts connected within 1 s ({rate:.1}%), {punched} by hole punching; \
         time to connect p50 {:.0} ms, p99 {:.0} ms; {} failed",
        pct(0.5),
        pct(0.99),
        failures.len()
    );
    if let Some(first) = failures.first() {
        println!("first failure:\n{first}");
    }
    assert!(rate >= 98.0, "target is 98% within 1 s");
}

/// The other target: bytes move through a punched path as fast as through a port forward on
/// the same routers (the same UDP flow, set up differently). Alternates a punched get and a
/// forwarded one of 64 MiB, three of each, and prints the medians.
#[test]
#[ignore = "about 30 s: cargo test --test nat -- --ignored --nocapture"]
fn a_punched_path_moves_bytes_as_fast_as_a_forwarded_port() {
    if !can_run("a_punched_path_moves_bytes_as_fast_as_a_forwarded_port") {
        return;
    }
    let mut bed = Bed::new("rate");
    let (home1, home2, home3) = (bed.home(1, Nat::PortPreserving), bed.home(2, Nat::PortPreserving), bed.home(3, Nat::PortPreserving));
    // Two files of one size, one a holder, so each get has exactly one source.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ids = Vec::new();
    for holder in ["punched", "forwarded"] {
        let data = bytes(64 << 20, holder);
        std::fs::create_dir_all(dir.path().join(format!("{holder}-data"))).expect("data folder");
        std::fs::write(dir.path().join(format!("{holder}-data/file.bin")), &data).expect("data file");
        ids.push(common::b3sum(&data));
    }
    let _tracker = start_tracker(&bed, dir.path());
    let _punched = start_holder(&bed, &home1.host, dir.path(), "punched", &[]);
    bed.forward(&home3, 7000);
    let _forwarded = start_holder(&bed, &home3.host, dir.path(), "forwarded", &["--listen", "0.0.0.0:7000"]);
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..6 {
        let (which, how) = if round % 2 == 0 { (0, "by hole punching") } else { (1, "directly") };
        let dl = format!("dl-{round}");
        let args = ["get", &ids[which], "--tracker", TRACKER, "--download-dir", &dl, "--json"];
        let mut get = bed.spawn("get", &home2.host, dir.path(), &args, &[("RUST_LOG", "p2pq::peer::punch=debug")]);
        let events = get.json_until(|_| false);
        let status = get.wait_exit(TIMEOUT);
        assert!(status.success(), "get failed:\n{}", get.transcript());
        assert!(get.saw(how), "round {round} should connect {how}:\n{}", get.transcript());
        rates[which].push(transfer_rate(&events));
    }
    let [punched, forwarded] = rates.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    let ratio = punched / forwarded;
    println!(
        "64 MiB through two NATs: punched {:.1} MB/s, port forward {:.1} MB/s (medians of 3; ratio {ratio:.2})",
        punched / 1e6,
        forwarded / 1e6
    );
}

/// Bytes per second from the first progress event to `done`: the transfer alone, without
/// the lookup and the connection (whose 200 ms head start is measured above).
fn transfer_rate(events: &[(Instant, serde_json::Value)]) -> f64 {
    let first = events.iter().find(|(_, e)| e["event"] == "progress").expect("a progress event");
    let done = events.last().expect("a done event");
    let (from, to) = (first.1["bytes"].as_f64().unwrap_or(0.0), done.1["size"].as_f64().expect("size"));
    (to - from) / done.0.duration_since(first.0).as_secs_f64()
}
