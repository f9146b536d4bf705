//! The tracker's web dashboard and metrics (`p2pq tracker --http ADDR`), read over real HTTP on
//! loopback as a browser or Prometheus would.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Swarm, TIMEOUT};

/// `GET path` on `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// Peer `id` with a certificate of its own (so another than the first `id`'s), pinning the
/// swarm's tracker.
fn impostor(swarm: &Swarm, id: &str) -> common::Proc {
    let certs = swarm.path().join(format!("{id}-impostor-certs"));
    std::fs::create_dir_all(&certs).unwrap();
    let (certs, tracker_cert) = (certs.to_string_lossy().into_owned(), swarm.path().join("certs/tracker.crt"));
    let tracker_cert = tracker_cert.to_string_lossy().into_owned();
    let state = format!("{id}-impostor-state");
    let args = [
        "peer",
        id,
        "--tracker",
        &swarm.addr,
        "--certs",
        &certs,
        "--tracker-cert",
        &tracker_cert,
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        &state,
    ];
    common::Proc::spawn(&format!("impostor {id}"), swarm.path(), &args)
}

/// Parses Prometheus text as a scraper would, failing on any line that is not a comment or
/// `name{labels} value`, on a sample of a family with no `# TYPE`, and on a histogram whose
/// buckets do not grow or do not end with `le="+Inf"` equal to its `_count`. Returns each
/// sample (`name{labels}` as written) with its value.
fn exposition(text: &str) -> HashMap<String, f64> {
    let mut typed = HashMap::new();
    let mut samples = HashMap::new();
    let mut buckets: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not `name value`: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let (name, labels) = split_series(series);
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"));
        assert!(typed.contains_key(family.unwrap_or(name)), "no # TYPE for {line:?}");
        if name.ends_with("_bucket") {
            let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone()).expect("a bucket has le");
            let rest: Vec<String> = labels.iter().filter(|(k, _)| k != "le").map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            buckets.entry(format!("{}{{{}}}", family.unwrap_or(name), rest.join(","))).or_default().push((le, value));
        }
        assert!(samples.insert(series.to_string(), value).is_none(), "sample twice: {line:?}");
    }
    assert!(!buckets.is_empty(), "no histogram in {text}");
    for (series, list) in &buckets {
        assert!(list.windows(2).all(|w| w[0].1 <= w[1].1), "buckets of {series} are not cumulative: {list:?}");
        let (le, last) = list.last().expect("a bucket");
        assert_eq!(le, "+Inf", "the last bucket of {series}");
        let count = series.replacen('{', "_count{", 1);
        assert_eq!(samples.get(&count), Some(last), "{count} equals the +Inf bucket");
    }
    samples
}

/// `name{a="x",b="y"}` as the name and its labels.
fn split_series(series: &str) -> (&str, Vec<(String, String)>) {
    let Some((name, labels)) = series.split_once('{') else { return (series, Vec::new()) };
    let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {series:?}"));
    let pairs = labels
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("bad label {pair:?} in {series:?}"));
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or_else(|| panic!("unquoted label in {series:?}"));
            (key.to_string(), value.to_string())
        })
        .collect();
    (name, pairs)
}

#[test]
fn the_dashboard_shows_live_peers_and_files_and_metrics_count_requests() {
    let mut swarm = Swarm::start_with(&["--http", "127.0.0.1:0"]);
    let line = swarm.tracker.expect("dashboard on http://");
    let addr = line.split("http://").nth(1).and_then(|rest| rest.split('/').next()).expect("dashboard address").to_string();
    swarm.write_data("<img src=x onerror=alert(1)>.txt", b"dashboard");
    let mut peer = swarm.peer("alice");
    peer.command("share \"<img src=x onerror=alert(1)>.txt\"", "shared ");

    let (status, page) = get(&addr, "/");
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("<title>p2pq tracker</title>"), "the page");
    assert!(page.contains("textContent") && !page.contains("innerHTML"), "values from peers are set as text, never as HTML");

    // The share line comes after the tracker took the share: the state has it already.
    let (_, state) = get(&addr, "/api/state");
    let state: serde_json::Value = serde_json::from_str(&state).expect("JSON state");
    assert_eq!(state["files"], 1, "{state}");
    assert_eq!(state["peers"], 1, "{state}");
    assert_eq!(state["peer_rows"][0]["id"], "alice");
    assert_eq!(state["peer_rows"][0]["reached"], "direct", "on loopback, nobody needed an introduction");
    assert_eq!(state["file_rows"][0]["name"], "<img src=x onerror=alert(1)>.txt", "names as given, escaped by JSON only");
    assert_eq!(state["file_rows"][0]["holders"], 1);

    // Heartbeats land in the background with nothing to wait on but the count itself.
    let heartbeat_counted = || !get(&addr, "/metrics").1.contains("p2pq_tracker_requests_total{kind=\"alive\"} 0\n");
    common::wait_until(TIMEOUT, heartbeat_counted);
    let (_, metrics) = get(&addr, "/metrics");
    let samples = exposition(&metrics);
    assert!(samples["p2pq_tracker_requests_total{kind=\"alive\"}"] >= 1.0, "{metrics}");
    assert!(metrics.contains("# TYPE p2pq_tracker_peers gauge\np2pq_tracker_peers 1\n"), "{metrics}");
    assert_eq!(samples["p2pq_tracker_requests_total{kind=\"share\"}"], 1.0, "{metrics}");
    assert_eq!(samples["p2pq_tracker_registrations_total"], 1.0, "{metrics}");
    assert_eq!(samples["p2pq_tracker_request_duration_seconds_count{kind=\"share\"}"], 1.0, "the share was timed: {metrics}");
    assert!(samples["p2pq_tracker_request_duration_seconds_count{kind=\"alive\"}"] >= 1.0, "{metrics}");
    assert!(samples["p2pq_tracker_request_duration_seconds_sum{kind=\"share\"}"] > 0.0, "{metrics}");
    assert_eq!(samples["p2pq_tracker_refusals_total{reason=\"id_taken\"}"], 0.0, "{metrics}");

    // A second "alice" with another certificate is refused, and the refusal is counted by reason.
    let mut impostor = impostor(&swarm, "alice");
    assert!(impostor.expect_err("error:").contains("taken"));
    let refused = || exposition(&get(&addr, "/metrics").1)["p2pq_tracker_refusals_total{reason=\"id_taken\"}"] == 1.0;
    common::wait_until(TIMEOUT, refused);
    assert!(!impostor.wait_exit(TIMEOUT).success());

    let (status, _) = get(&addr, "/nothing-here");
    assert!(status.contains("404"), "{status}");
    peer.send("exit");
    peer.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_dashboard_address_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2pq"))
        .args(["tracker", "--listen", "127.0.0.1:0", "--http", &addr])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("error: cannot serve the dashboard on {addr}")), "{err}");
}
