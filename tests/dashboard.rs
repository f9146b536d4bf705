//! The tracker's web dashboard and metrics (`p2pq tracker --http ADDR`), read over real HTTP on
//! loopback as a browser or Prometheus would, and the page itself in a real headless Chromium
//! (`browser`), which skips, saying why, where Chromium is not installed.

#[path = "dashboard/browser.rs"]
mod browser;
mod common;
#[path = "dashboard/prometheus.rs"]
mod prometheus;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Swarm, TIMEOUT};
use prometheus::exposition;
use serde_json::json;

/// `METHOD path` on `addr` with an optional JSON body: the status line and the body, read to
/// its `Content-Length` (ChromeDriver keeps the connection open after it), else to the end.
fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let body = body.unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n");
    write!(stream, "{head}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut reader = BufReader::new(stream);
    let (mut status, mut length) = (String::new(), None);
    reader.read_line(&mut status).expect("read the status line");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a header");
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut answer = Vec::new();
    match length {
        Some(length) => reader.take(length as u64).read_to_end(&mut answer),
        None => reader.read_to_end(&mut answer),
    }
    .expect("read the answer");
    (status.trim_end().to_string(), String::from_utf8_lossy(&answer).into_owned())
}

/// `GET path` on `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    request(addr, "GET", path, None)
}

/// A tracker serving its dashboard on an OS-chosen port, and the dashboard's address.
fn tracker_with_dashboard() -> (Swarm, String) {
    let mut swarm = Swarm::start_with(&["--http", "127.0.0.1:0"]);
    let line = swarm.tracker.expect("dashboard on http://");
    let addr = line.split("http://").nth(1).and_then(|rest| rest.split('/').next()).expect("dashboard address").to_string();
    (swarm, addr)
}

/// An open `/api/events` stream, read as a browser's `EventSource` reads it.
struct Events {
    status: String,
    head: String,
    lines: BufReader<TcpStream>,
}

impl Events {
    /// Opens the stream (HTTP/1.0, so the body is plain text until the server closes it).
    fn open(addr: &str) -> Events {
        let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(stream, "GET /api/events HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
        let mut lines = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") && lines.read_line(&mut head).expect("read the head") > 0 {}
        let status = head.lines().next().unwrap_or_default().to_string();
        Events { status, head, lines }
    }

    /// The next event's data (keep-alive comments and `retry:` lines skipped).
    fn next(&mut self) -> String {
        loop {
            let mut line = String::new();
            assert!(self.lines.read_line(&mut line).expect("read an event") > 0, "the stream ended");
            if let Some(data) = line.strip_prefix("data: ") {
                return data.trim_end().to_string();
            }
        }
    }

    /// The next event, parsed.
    fn next_json(&mut self) -> serde_json::Value {
        let data = self.next();
        serde_json::from_str(&data).unwrap_or_else(|e| panic!("not JSON ({e}): {data}"))
    }
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

#[test]
fn the_dashboard_shows_live_peers_and_files_and_metrics_count_requests() {
    let (swarm, addr) = tracker_with_dashboard();
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
    assert_eq!((&state["peer_rows"][0]["upload_bps"], &state["download_bps"]), (&json!(0), &json!(0)), "nothing moved yet");
    assert_eq!(state["file_rows"][0]["name"], "<img src=x onerror=alert(1)>.txt", "names as given, escaped by JSON only");
    assert_eq!(state["file_rows"][0]["holders"], 1);
    // The event log is written by a thread of its own: the events land within moments.
    let logged = |kind: &str| {
        let (_, state) = get(&addr, "/api/state");
        let state: serde_json::Value = serde_json::from_str(&state).expect("JSON state");
        state["events"].as_array().is_some_and(|events| events.iter().any(|e| e["kind"] == kind && e["peer"] == "alice"))
    };
    common::wait_until(TIMEOUT, || logged("register") && logged("share"));

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
    assert_eq!(samples["p2pq_tracker_upload_bytes_per_second"], 0.0, "nothing moved: {metrics}");
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

/// The dashboard's JSON state.
fn state(addr: &str) -> serde_json::Value {
    serde_json::from_str(&get(addr, "/api/state").1).expect("JSON state")
}

#[test]
fn a_download_under_way_is_a_partial_holder_with_an_availability_bar_until_it_completes() {
    let (mut swarm, addr) = tracker_with_dashboard();
    let data = common::bytes(2 << 20, "partial holder");
    let _seed = swarm.slow_holder("seed", "part.bin", &data, "300K");
    let mut getter = swarm.peer("getter");
    getter.send("get part.bin");

    // Once the getter has a chunk it is listed, and its reports make it a partial holder: the
    // bar counts the seed everywhere and the getter where it has the segment.
    let partial = || state(&addr)["file_rows"][0]["partial"] == 1;
    common::wait_until(TIMEOUT, partial);
    let row = state(&addr)["file_rows"][0].clone();
    let bar: Vec<u64> = row["bar"].as_array().expect("a bar").iter().filter_map(|n| n.as_u64()).collect();
    assert_eq!((bar.len(), row["holders"].as_u64()), (256, Some(2)), "{row}");
    assert!(bar.iter().all(|n| (1..=2).contains(n)), "the seed has it all, the getter part: {bar:?}");
    assert!(bar.contains(&1), "the getter is not done yet: {bar:?}");
    let files = swarm.tracker.command("files --json", "]").pop().unwrap();
    let files: serde_json::Value = serde_json::from_str(&files).expect("files --json");
    let have = files[0]["partial"]["getter"].as_f64().unwrap_or(-1.0);
    assert!((0.0..1.0).contains(&have) && files[0]["partial"].get("seed").is_none(), "{files}");

    // Done, it says so once more and holds the file whole.
    getter.expect("downloaded part.bin");
    assert!(std::fs::read(swarm.downloaded("getter", "part.bin")).unwrap() == data);
    let whole = || {
        let row = &state(&addr)["file_rows"][0];
        row["partial"] == 0 && row["holders"] == 2 && row["bar"] == json!([])
    };
    common::wait_until(TIMEOUT, whole);
    let files = swarm.tracker.command("files", "part.bin").pop().unwrap();
    assert!(files.contains("getter") && !files.contains('%'), "{files}");
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

#[test]
fn snapshots_are_pushed_to_every_viewer_from_one_build_at_most_once_a_second() {
    let (swarm, addr) = tracker_with_dashboard();
    let mut first = Events::open(&addr);
    assert!(first.status.contains(" 200 "), "{}", first.head);
    assert!(first.head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{}", first.head);
    assert_eq!(first.next_json()["peers"], 0, "the first snapshot comes at once");

    // A peer that joins is pushed, unasked. Its heartbeats (every 0.2 s) change every snapshot.
    let _carol = swarm.peer("carol");
    let deadline = Instant::now() + TIMEOUT;
    while first.next_json()["peer_rows"][0]["id"] != "carol" {
        assert!(Instant::now() < deadline, "carol never pushed");
    }
    let (mut gaps, mut latest) = (Vec::new(), String::new());
    for _ in 0..3 {
        let at = Instant::now();
        latest = first.next();
        gaps.push(at.elapsed());
    }
    assert!(gaps.iter().all(|gap| *gap >= Duration::from_millis(800)), "one snapshot a second at most: {gaps:?}");

    // A second viewer is handed the very text the first got: one snapshot, built once for both
    // (built apart, the peer's age in milliseconds would differ).
    let mut second = Events::open(&addr);
    let shared = second.next();
    let mut seen_by_first = vec![latest];
    while !seen_by_first.contains(&shared) {
        assert!(seen_by_first.len() < 6, "the second viewer's snapshot never reached the first: {shared}\n{seen_by_first:#?}");
        seen_by_first.push(first.next());
    }

    // The snapshots are counted, with the time they took, so their cost can be watched.
    let samples = exposition(&get(&addr, "/metrics").1);
    assert!(samples["p2pq_dashboard_snapshots_total"] >= 5.0, "{samples:?}");
    let spent = samples["p2pq_dashboard_snapshot_seconds_total"];
    assert!(spent > 0.0 && spent < 5.0, "a few snapshots of one peer take moments, not {spent} s");
}

#[test]
fn viewers_past_the_limit_are_refused_until_one_leaves() {
    let (swarm, addr) = tracker_with_dashboard();
    // A peer heartbeating changes every snapshot, so the streams are written to each second
    // and the tracker soon sees a viewer that left.
    let _erin = swarm.peer("erin");
    // MAX_VIEWERS in src/app/dashboard/sse.rs.
    let mut viewers: Vec<Events> = (0..32).map(|_| Events::open(&addr)).collect();
    assert!(viewers.iter().all(|v| v.status.contains(" 200 ")), "32 viewers are served");
    let refused = Events::open(&addr);
    assert!(refused.status.contains(" 503 "), "{}", refused.head);
    assert!(refused.head.to_ascii_lowercase().contains("retry-after: "), "{}", refused.head);
    viewers[0].next_json();
    drop(viewers.remove(0));
    // The place is given back once the server notices the closed connection (a write fails).
    common::wait_until(TIMEOUT, || Events::open(&addr).status.contains(" 200 "));
}

#[test]
fn the_page_in_a_real_browser_shows_a_peer_join_and_leave_without_a_reload() {
    let Some(browser) = browser::Browser::start_or_skip() else { return };
    let (mut swarm, addr) = tracker_with_dashboard();
    browser.open(&format!("http://{addr}/"));
    // Gone if the page ever reloads.
    browser.run("window.p2pqLoadedOnce = true");
    let live = "return document.getElementById('status').dataset.state === 'live'";
    browser.wait_for("the page streams", live);
    assert_eq!(browser.run("return document.getElementById('peer-rows').rows.length"), 0, "nobody yet");

    let listed = "[...document.querySelectorAll('#peer-rows td:first-child')].some(td => td.textContent === 'dora')";
    let hostile = "<img src=x onerror=window.p2pqInjected=1>.txt";
    swarm.write_data(hostile, b"dashboard");
    let mut dora = swarm.peer("dora");
    browser.wait_for("dora appears", &format!("return {listed}"));
    dora.command(&format!("share \"{hostile}\""), "shared ");
    let shown = format!("return [...document.querySelectorAll('#file-rows td:first-child')].some(td => td.textContent === {hostile:?})");
    browser.wait_for("her file is listed by its name, as text", &shown);
    let logged = "return [...document.querySelectorAll('#event-rows tr')].some(tr => tr.cells[1].textContent === 'register' && tr.cells[2].textContent === 'dora')";
    browser.wait_for("her registration is among the recent events", logged);
    assert_eq!(browser.run("return document.querySelectorAll('img').length + (window.p2pqInjected ?? 0)"), 0, "a name is never HTML");

    dora.send("exit");
    assert!(dora.wait_exit(TIMEOUT).success());
    browser.wait_for("dora disappears", &format!("return !{listed}"));
    assert_eq!(browser.run("return window.p2pqLoadedOnce === true"), true, "the page was never reloaded");

    // The tracker goes away: the page says so, and keeps trying.
    swarm.tracker.send("exit");
    assert!(swarm.tracker.wait_exit(TIMEOUT).success(), "open streams do not hold the tracker's shutdown");
    let disconnected =
        "const s = document.getElementById('status'); return s.dataset.state === 'disconnected' && s.textContent.includes('retrying')";
    browser.wait_for("the page says it is disconnected", disconnected);
    assert_eq!(browser.run("return window.p2pqLoadedOnce === true"), true, "still the same page");
}

#[test]
fn the_page_draws_a_download_under_way_as_a_partial_holder_with_its_availability_bar() {
    let Some(browser) = browser::Browser::start_or_skip() else { return };
    let (swarm, addr) = tracker_with_dashboard();
    let data = common::bytes(2 << 20, "partial in the page");
    let _seed = swarm.slow_holder("seed", "drawn.bin", &data, "300K");
    browser.open(&format!("http://{addr}/"));
    browser.wait_for("the page streams", "return document.getElementById('status').dataset.state === 'live'");
    let mut getter = swarm.peer("getter");
    getter.send("get drawn.bin");
    // Columns: name, id, size, complete, partial, availability.
    let row = "const tr = [...document.querySelectorAll('#file-rows tr')].find(tr => tr.cells[0].textContent === 'drawn.bin')";
    let drawn = format!(
        "{row}; const c = tr && tr.cells[5].querySelector('canvas.bar'); \
         return !!c && c.width === 256 && tr.cells[3].textContent === '1' && tr.cells[4].textContent === '1'"
    );
    browser.wait_for("the getter is a partial holder with a bar", &drawn);
    let painted = format!(
        "{row}; const c = tr.cells[5].querySelector('canvas.bar'); const px = c.getContext('2d').getImageData(0, 6, 256, 1).data; \
         return [...Array(256).keys()].every(x => px[4 * x + 3] > 0)"
    );
    assert_eq!(browser.run(&painted), true, "every segment is painted");
    getter.expect("downloaded drawn.bin");
    let whole =
        format!("{row}; return tr.cells[3].textContent === '2' && tr.cells[4].textContent === '0' && !tr.cells[5].querySelector('canvas')");
    browser.wait_for("done, the getter holds it whole and the bar goes", &whole);
}
