//! The peer prompt in a real pseudo-terminal, typed at like a person would: Tab completion,
//! a live progress bar above the prompt, the summary line, help, history, Ctrl-D.
#![cfg(unix)]

mod common;

use common::{Swarm, TIMEOUT, b3sum, bytes};
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
    command.args(["peer", "2", "--tracker", &swarm.addr, "--heartbeat", "0.2", "--listen", "127.0.0.1:0"]);
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
    assert!(done.contains("downloaded movie.bin (6.0 MiB)") && done.contains(&b3sum(&data)), "{done}");
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
