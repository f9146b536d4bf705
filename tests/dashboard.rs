//! The tracker's web dashboard and metrics (`p2pq tracker --http ADDR`), read over real HTTP on
//! loopback as a browser or Prometheus would.

mod common;

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
    assert!(metrics.contains("p2pq_tracker_requests_total{kind=\"alive\"} "), "{metrics}");
    assert!(metrics.contains("# TYPE p2pq_tracker_peers gauge\np2pq_tracker_peers 1\n"), "{metrics}");
    assert!(metrics.contains("p2pq_tracker_requests_total{kind=\"share\"} 1\n"), "{metrics}");
    assert!(metrics.contains("p2pq_tracker_registrations_total 1\n"), "{metrics}");

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
