//! The peer prompt in a real pseudo-terminal, typed at like a person would: Tab completion,
//! a live progress bar above the prompt, the summary line, help, history, Ctrl-D.
#![cfg(unix)]

mod common;

use common::{Swarm, TIMEOUT, b3sum, bytes};
use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Session};
use std::process::Command;

#[test]
fn a_person_at_the_prompt_completes_downloads_with_a_bar_and_leaves_with_ctrl_d() {
    let swarm = Swarm::start("15");
    let data = bytes(6 << 20, "pty");
    swarm.write_data("movie.bin", &data);
    // The holder sends at 3 MiB/s, so the download lasts long enough to draw its bar.
    let mut holder = swarm.peer_with("1", &["--upload-limit", "3M"]);
    holder.command("share movie.bin", "shared movie.bin");

    let mut command = Command::new(env!("CARGO_BIN_EXE_p2pq"));
    command.args(["peer", "2", "--tracker", &swarm.addr, "--heartbeat", "0.2", "--listen", "127.0.0.1:0", "--no-dht"]);
    command.current_dir(swarm.path()).env("NO_COLOR", "1").env("TERM", "xterm").env_remove("RUST_LOG");
    let mut pty = Session::spawn(command).expect("start p2pq in a pty");
    pty.get_process_mut().set_window_size(120, 30).expect("window size");
    pty.set_expect_timeout(Some(TIMEOUT));
    pty.expect("connected to tracker").unwrap();
    pty.expect("peer 2> ").unwrap();

    // Tab completes the command, then the file name the tracker knows.
    pty.send("ge\t").unwrap();
    pty.expect("get ").unwrap();
    pty.send("mov\t").unwrap();
    pty.expect("movie.bin").unwrap();
    pty.send("\r").unwrap();
    // The bar, drawn above the prompt while the download runs, then the summary.
    pty.expect("ETA").unwrap();
    pty.expect("1 peer").unwrap();
    let done = pty.expect("saved to").unwrap();
    let done = String::from_utf8_lossy(done.before()).to_string();
    assert!(done.contains("downloaded movie.bin (6.0 MiB)") && done.contains(&b3sum(&data)[..12]), "{done}");
    assert!(std::fs::read(swarm.downloaded("2", "movie.bin")).unwrap() == data);

    // The prompt stays usable: help for one command, an unknown command suggests the nearest.
    pty.send("help get\r").unwrap();
    pty.expect("example: get").unwrap();
    pty.send("stauts\r").unwrap();
    pty.expect("did you mean \"status\"").unwrap();

    // Ctrl-D leaves gracefully; the history is kept for the next run. Wait for the prompt
    // first: a Ctrl-D typed while no line editor is reading hits the terminal's cooked mode,
    // where it is an end-of-file marker that never reaches the editor.
    pty.expect("peer 2> ").unwrap();
    pty.send([4u8]).unwrap();
    pty.expect("bye").unwrap();
    pty.expect(Eof).unwrap();
    let status = pty.get_process().wait().unwrap();
    assert!(matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)), "{status:?}");
    let history = std::fs::read_to_string(swarm.path().join(".p2pq/peer-2/history")).expect("history file");
    assert!(history.contains("get movie.bin"), "{history}");
}

/// `p2pq peer ID` in a pty in `dir`, against `tracker`.
fn pty_peer(dir: &std::path::Path, id: &str, tracker: &str) -> OsSession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_p2pq"));
    command.args(["peer", id, "--tracker", tracker, "--heartbeat", "0.2", "--listen", "127.0.0.1:0", "--no-dht"]);
    command.current_dir(dir).env("NO_COLOR", "1").env("TERM", "xterm").env_remove("RUST_LOG");
    let mut pty = Session::spawn(command).expect("start p2pq in a pty");
    pty.get_process_mut().set_window_size(120, 30).expect("window size");
    pty.set_expect_timeout(Some(TIMEOUT));
    pty
}

/// What the pty printed up to and including `text`; on a timeout, fails showing what it did print.
fn upto(pty: &mut OsSession, text: &str) -> String {
    match pty.expect(text) {
        Ok(found) => format!("{}{}", String::from_utf8_lossy(found.before()), String::from_utf8_lossy(found.as_bytes())),
        Err(err) => {
            let mut printed = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pty.try_read(&mut buf) {
                printed.extend_from_slice(&buf[..n]);
            }
            panic!("waiting for {text:?}: {err}; printed instead: {:?}", String::from_utf8_lossy(&printed))
        }
    }
}

#[test]
fn tab_shows_only_names_that_are_safe_to_show_and_type_and_skips_download_folders() {
    let swarm = Swarm::start("15");
    for name in ["alice.txt", "bob.txt", "a\x1b[31mred.txt", "b\nline.txt", "c.part", ".p2pq-state"] {
        swarm.write_data(name, b"x");
    }
    // Peer 1's download folder, as `p2pq peer 1` leaves it: never something to share.
    std::fs::create_dir_all(swarm.path().join("data/peer-1/.p2pq-partial")).unwrap();
    swarm.write_data("peer-1/got.bin", b"downloaded");
    let mut pty = pty_peer(swarm.path(), "2", &swarm.addr);
    pty.expect("connected to tracker").unwrap();
    pty.expect("peer 2> ").unwrap();

    pty.send("share \t\t").unwrap();
    let listed = format!("{}{}", upto(&mut pty, "bob.txt"), upto(&mut pty, "peer 2> share"));
    assert!(listed.contains("alice.txt"), "{listed:?}");
    for unwanted in ["\x1b[31m", "red.txt", "line.txt", "got.bin", "peer-1", "c.part", ".p2pq-state"] {
        assert!(!listed.contains(unwanted), "{unwanted:?} offered: {listed:?}");
    }
    // What Tab inserts is a name the prompt reads back.
    pty.send("al\t").unwrap();
    pty.expect("alice.txt").unwrap();
    pty.send("\r").unwrap();
    pty.expect("shared alice.txt").unwrap();

    // clear clears the screen (and help lists it).
    pty.expect("peer 2> ").unwrap();
    pty.send("clear\r").unwrap();
    pty.expect("\x1b[H\x1b[2J").unwrap();
    pty.send("help\r").unwrap();
    pty.expect("clear the screen").unwrap();
    pty.send("exit\r").unwrap();
    pty.expect(Eof).unwrap();
}

#[test]
fn the_prompt_shows_at_once_and_every_line_typed_ahead_runs_in_order() {
    let swarm = Swarm::start("15");
    // A tracker address where nothing ever answers: the first attempt lasts its whole timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut pty = pty_peer(swarm.path(), "2", &addr);
    // Typed before the prompt shows, as someone does who does not wait.
    pty.send("help get\rhelp status\r").unwrap();
    let before = upto(&mut pty, "peer 2> ");
    assert!(before.contains(&format!("connecting to the tracker at {addr}…")), "{before:?}");
    assert!(!before.contains("unreachable"), "the prompt waited for the tracker: {before:?}");
    upto(&mut pty, "example: get");
    upto(&mut pty, "example: status");
    // Lines pasted in one go while the editor waits at the prompt all run too.
    upto(&mut pty, "peer 2> ");
    pty.send("help share\rhelp logs\r").unwrap();
    upto(&mut pty, "example: share");
    upto(&mut pty, "example: logs");
    // Still usable while the link keeps trying, and the notice says how it went.
    upto(&mut pty, "tracker unreachable");
    pty.send("exit\r").unwrap();
    pty.expect(Eof).unwrap();
}
