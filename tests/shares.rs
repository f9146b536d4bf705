//! Sharing as a person meets it: big files hash with a bar in the background and stop at once
//! when cancelled, several hash together up to the number of cores, shares survive a restart,
//! and `unshare` withdraws a file everywhere.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::inproc::Net;
use common::{Swarm, TIMEOUT, b3sum, bytes};
use p2pq::net::linksim::Link;
use p2pq::peer::events::Hashing;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A file far bigger than any test may hash to its end; sparse, so it takes no disk.
const HUGE: u64 = 64 << 30;
/// How soon hashing must stop once cancelled.
const STOP_WITHIN: Duration = Duration::from_secs(1);

fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).and_then(|f| f.set_len(len)).expect("make a sparse file");
}

/// The next hashing event, within [`TIMEOUT`].
async fn next(events: &mut mpsc::UnboundedReceiver<Hashing>) -> Option<Hashing> {
    tokio::time::timeout(TIMEOUT, events.recv()).await.expect("a hashing event in time")
}

/// Waits until `events` reports bytes hashed.
async fn hashing_under_way(events: &mut mpsc::UnboundedReceiver<Hashing>) {
    while !matches!(next(events).await, Some(Hashing::Hashed { .. })) {}
}

/// Whether the hashing thread ended (it holds the last sender) within [`STOP_WITHIN`].
async fn hashing_ends(events: &mut mpsc::UnboundedReceiver<Hashing>) -> bool {
    let drained = async {
        while let Some(event) = events.recv().await {
            assert!(matches!(event, Hashing::Hashed { .. } | Hashing::Done), "{event:?} after cancel");
        }
    };
    tokio::time::timeout(STOP_WITHIN, drained).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_share_returns_at_once_its_hashing_stops_and_status_no_longer_lists_it() {
    let mut net = Net::start().await.unwrap();
    let (peer, _) = net.add_peer("1", Link::default()).await.unwrap();
    sparse(&net.write_data(&peer, "huge.bin", b"").unwrap(), HUGE);
    let (events, mut seen) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let sharing = tokio::spawn({
        let (peer, cancel) = (peer.clone(), cancel.clone());
        async move { peer.share_with("huge.bin", Some(events), &cancel).await }
    });
    hashing_under_way(&mut seen).await;
    // A Hashed event is sent after the bytes it reports are counted for status.
    let now = peer.hashing();
    assert_eq!((now.len(), now[0].name.as_str(), now[0].size, now[0].waiting), (1, "huge.bin", HUGE, false), "{now:?}");
    assert!(now[0].bytes > 0, "status shows how far it is: {now:?}");
    cancel.cancel();
    let result = tokio::time::timeout(STOP_WITHIN, sharing).await.expect("share returns within a second of cancel").unwrap();
    assert!(result.err().unwrap().to_string().contains("cancelled"));
    assert!(hashing_ends(&mut seen).await, "hashing went on after cancel");
    assert!(peer.uploads().is_empty());
    assert!(peer.hashing().is_empty(), "a cancelled share is no longer listed: {:?}", peer.hashing());
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_dropped_midway_stops_hashing_too() {
    // The prompt drops a running command on Ctrl-C; the blocking thread must not go on.
    let mut net = Net::start().await.unwrap();
    let (peer, _) = net.add_peer("1", Link::default()).await.unwrap();
    sparse(&net.write_data(&peer, "huge.bin", b"").unwrap(), HUGE);
    let (events, mut seen) = mpsc::unbounded_channel();
    let sharing = tokio::spawn({
        let peer = peer.clone();
        async move { peer.share_with("huge.bin", Some(events), &CancellationToken::new()).await }
    });
    hashing_under_way(&mut seen).await;
    sharing.abort();
    assert!(hashing_ends(&mut seen).await, "hashing went on after the share was dropped");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_hash_as_many_at_once_as_there_are_cores_and_the_rest_wait_their_turn() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let mut net = Net::start().await.unwrap();
    let (peer, _) = net.add_peer("1", Link::default()).await.unwrap();
    let mut running = Vec::new();
    for i in 0..=cores {
        let name = format!("huge-{i}.bin");
        sparse(&net.write_data(&peer, &name, b"").unwrap(), HUGE);
        let (events, mut seen) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (peer, cancel) = (peer.clone(), cancel.clone());
            async move { peer.share_with(&name, Some(events), &cancel).await }
        });
        let first = next(&mut seen).await.unwrap();
        running.push((first, seen, cancel, task));
    }
    let started = running.iter().filter(|r| matches!(r.0, Hashing::Start { .. })).count();
    let (queued, others): (Vec<_>, Vec<_>) = running.into_iter().partition(|r| matches!(r.0, Hashing::Queued { .. }));
    assert_eq!((started, queued.len()), (cores, 1), "one hasher per core, the last share waits");
    // One hasher freed: the waiting share starts.
    let mut others = others.into_iter();
    let (_, _, cancel, task) = others.next().unwrap();
    cancel.cancel();
    assert!(task.await.unwrap().is_err());
    let (_, mut waiting, cancel, task) = queued.into_iter().next().unwrap();
    assert!(matches!(next(&mut waiting).await, Some(Hashing::Start { .. })));
    cancel.cancel();
    assert!(task.await.unwrap().is_err());
    for (_, _, cancel, task) in others {
        cancel.cancel();
        assert!(task.await.unwrap().is_err());
    }
    net.stop().await;
}

/// The line containing `text`, already seen (restored shares may be announced before the
/// tracker link is) or still to come.
fn line_with(peer: &mut common::Proc, text: &str) -> String {
    match peer.seen.iter().find(|(_, l)| l.contains(text)) {
        Some((_, line)) => line.clone(),
        None => peer.expect(text),
    }
}

#[test]
fn a_restarted_peer_shares_again_what_it_shared_and_downloaded() {
    let swarm = Swarm::start("15");
    let (kept, edited) = (bytes(700_000, "kept"), bytes(300_000, "edited"));
    swarm.write_data("kept.bin", &kept);
    swarm.write_data("edited.bin", &edited);
    swarm.write_data("gone.bin", b"soon gone");
    let mut one = swarm.peer("1");
    one.command("share kept.bin edited.bin gone.bin", "shared gone.bin");
    let mut two = swarm.peer("2");
    two.command("get kept.bin", "downloaded kept.bin");
    for peer in [&mut one, &mut two] {
        peer.command("exit", "bye");
        peer.wait_exit(TIMEOUT);
    }

    let edited_now = bytes(300_001, "edited again");
    swarm.write_data("edited.bin", &edited_now);
    std::fs::remove_file(swarm.path().join("data/gone.bin")).unwrap();
    // Peer 1 runs again with the same id and state folder.
    let mut one = swarm.peer("1");
    let gone = line_with(&mut one, "gone.bin");
    assert!(gone.contains("gone since the last run; no longer shared"), "{gone}");
    let summary = line_with(&mut one, "from the last run");
    assert!(summary.contains("sharing 1 file from the last run") && summary.contains("hashing 1 file again"), "{summary}");
    let changed = line_with(&mut one, "edited.bin changed since the last run");
    assert!(changed.contains(&b3sum(&edited_now)[..12]), "{changed}");
    let status = one.command("status", "shared file");
    let row = |name: &str| status.iter().find(|l| l.starts_with(name)).cloned().unwrap_or_default();
    assert!(row("kept.bin").contains("restored (shared)") && row("edited.bin").contains("restored (shared)"), "{status:?}");
    assert!(status.last().unwrap().contains("2 shared files"), "{status:?}");

    let mut two = swarm.peer("2");
    line_with(&mut two, "sharing 1 file from the last run");
    let json = two.command("status --json", "\"shared\"");
    let json: serde_json::Value = serde_json::from_str(json.last().unwrap()).unwrap();
    let shared = &json["shared"][0];
    assert_eq!(
        (shared["name"].as_str(), shared["origin"].as_str(), shared["restored"].as_bool()),
        (Some("kept.bin"), Some("downloaded"), Some(true))
    );

    // The tracker hears of the restored files: a new peer gets them, bytes equal.
    two.command("exit", "bye");
    let mut three = swarm.peer("3");
    three.command("get edited.bin", "downloaded edited.bin");
    three.command("get kept.bin", "downloaded kept.bin");
    assert_eq!(std::fs::read(swarm.downloaded("3", "edited.bin")).unwrap(), edited_now);
    assert_eq!(std::fs::read(swarm.downloaded("3", "kept.bin")).unwrap(), kept);
}

#[test]
fn unshare_withdraws_a_file_at_the_tracker_and_for_the_next_start() {
    let mut swarm = Swarm::start("15");
    swarm.write_data("a.txt", b"alpha");
    swarm.write_data("b.txt", b"beta");
    let mut one = swarm.peer("1");
    one.command("share a.txt b.txt", "shared b.txt");
    let id = b3sum(b"beta");
    let out = one.command(&format!("unshare {}", &id[..8]), "stopped sharing");
    assert!(out.last().unwrap().contains(&format!("stopped sharing b.txt (id {})", &id[..12])), "{out:?}");
    one.send("unshare nothing.txt");
    assert!(one.expect_err("error:").contains("not sharing \"nothing.txt\""));
    let files = swarm.tracker.command("files", " file");
    assert_eq!(files.last().unwrap(), "1 file", "{files:?}");
    assert!(files.iter().all(|l| !l.contains("b.txt")), "{files:?}");
    one.command("exit", "bye");
    one.wait_exit(TIMEOUT);
    let mut one = swarm.peer("1");
    line_with(&mut one, "sharing 1 file from the last run");
    let status = one.command("status", "shared file");
    assert!(status.iter().any(|l| l.starts_with("a.txt")) && !status.iter().any(|l| l.starts_with("b.txt")), "{status:?}");
}

#[test]
fn seed_stops_at_once_on_ctrl_c_while_hashing() {
    let swarm = Swarm::start("15");
    sparse(&swarm.path().join("data/huge.bin"), HUGE);
    let args = ["seed", "huge.bin", "--tracker", &swarm.addr, "--data-dir", "data"];
    let mut seed = common::Proc::spawn("seed", swarm.path(), &args);
    seed.expect_err("connecting to the tracker");
    // The hashing is under way once the process burns CPU.
    common::wait_until(TIMEOUT, || cpu_time(seed.pid()) > Duration::from_millis(300));
    seed.signal("INT");
    let asked = Instant::now();
    let status = seed.wait_exit(TIMEOUT);
    assert!(asked.elapsed() < Duration::from_secs(3), "seed took {:?} to stop", asked.elapsed());
    assert_eq!(status.code(), Some(130), "{}", seed.transcript());
    assert!(seed.saw("interrupted while hashing huge.bin"), "{}", seed.transcript());
}

/// CPU time the process `pid` has used so far (user + system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

#[cfg(target_os = "linux")]
#[test]
fn at_a_terminal_a_big_share_hashes_with_a_bar_behind_a_usable_prompt_and_ctrl_c_stops_it() {
    use expectrl::{Eof, Expect, Session};
    let swarm = Swarm::start("15");
    sparse(&swarm.path().join("data/huge.bin"), HUGE);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_p2pq"));
    command.args(["peer", "1", "--tracker", &swarm.addr, "--heartbeat", "0.2", "--listen", "127.0.0.1:0", "--no-dht"]);
    command.current_dir(swarm.path()).env("NO_COLOR", "1").env("TERM", "xterm").env_remove("RUST_LOG");
    let mut pty = Session::spawn(command).expect("start p2pq in a pty");
    pty.get_process_mut().set_window_size(120, 30).expect("window size");
    pty.set_expect_timeout(Some(TIMEOUT));
    pty.expect("connected to tracker").unwrap();
    pty.expect("peer 1> ").unwrap();

    pty.send("share huge.bin\r").unwrap();
    pty.expect("hashing").unwrap();
    pty.expect("ETA").unwrap();
    // The prompt answers while the file hashes.
    pty.send("status\r").unwrap();
    pty.expect("0 shared files").unwrap();
    pty.expect("peer 1> ").unwrap();
    // Ctrl-C on the empty line cancels the share, and the hashing stops with it.
    pty.send([3u8]).unwrap();
    pty.expect("cancelled share huge.bin").unwrap();
    let pid = pty.get_process().pid().as_raw() as u32;
    let quiet = wait_cpu_quiet(pid);
    assert!(quiet, "the peer kept burning CPU after the share was cancelled");
    pty.send([4u8]).unwrap();
    pty.expect("bye").unwrap();
    pty.expect(Eof).unwrap();
}

/// Whether the process's CPU use drops to almost nothing within [`STOP_WITHIN`] plus one
/// measuring window (a window is how CPU use is measured, not a wait for an event).
#[cfg(target_os = "linux")]
fn wait_cpu_quiet(pid: u32) -> bool {
    const WINDOW: Duration = Duration::from_millis(500);
    let deadline = Instant::now() + STOP_WITHIN + WINDOW;
    while Instant::now() < deadline {
        let before = cpu_time(pid);
        std::thread::sleep(WINDOW);
        if cpu_time(pid).saturating_sub(before) < WINDOW / 5 {
            return true;
        }
    }
    false
}

#[test]
fn an_unchanged_file_is_served_again_from_its_saved_manifest_without_being_read() {
    let swarm = Swarm::start("15");
    let first = bytes(500_000, "first");
    let path = swarm.write_data("same.bin", &first);
    let mut one = swarm.peer("1");
    one.command("share same.bin", "shared same.bin");
    one.command("exit", "bye");
    one.wait_exit(TIMEOUT);
    // Other bytes behind the same size and modification time: only a peer that reads the file
    // again could tell, so the restored id shows whether it did.
    let stamp = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, bytes(500_000, "second")).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(stamp).unwrap();
    let mut one = swarm.peer("1");
    line_with(&mut one, "sharing 1 file from the last run");
    let status = one.command("status", "shared file");
    let row = status.iter().find(|l| l.starts_with("same.bin")).cloned().unwrap_or_default();
    assert!(row.contains(&b3sum(&first)[..12]) && row.contains("restored (shared)"), "{status:?}");
}
