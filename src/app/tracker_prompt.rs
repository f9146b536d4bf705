//! The tracker's prompt: `logs request`, `logs-all`, `logs_file NAME`, `peers`, `files`, `help`,
//! `exit`. It reads the tracker's state through its handle and prints tables, or one line of
//! JSON with `--json`.
//!
//! On a terminal, Ctrl-D stops the tracker like `exit`; from a pipe, end of input leaves it
//! serving until `exit`, Ctrl-C or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::console::{self, CommandHelp, Complete, Console, Input, Setup};
use crate::logbook::{Event, Table, events_table};
use crate::tracker::Tracker;

/// A parsed tracker command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    LogsRequest { json: bool },
    LogsAll { json: bool },
    LogsFile { name: String, json: bool },
    Peers { json: bool },
    Files { json: bool },
    Help(String),
    Exit,
}

const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "logs",
        usage: "request [--json]",
        summary: "share and get events",
        details: "Who shared or looked up which file, and when (local time). Also: logs all, logs file NAME. With --json, the events as one JSON array on one line.",
        example: "logs request",
    },
    CommandHelp {
        name: "logs-all",
        usage: "[--json]",
        summary: "every event: register, alive, share, get, exit, expire",
        details: "The whole event log, oldest first, heartbeats included.",
        example: "logs-all --json",
    },
    CommandHelp {
        name: "logs_file",
        usage: "<name> [--json]",
        summary: "events about one file (name or id prefix)",
        details: "Shares, lookups and automatic re-shares of one file, by its name or the first hex digits of its id (4 or more).",
        example: "logs_file some-file.iso",
    },
    CommandHelp {
        name: "peers",
        usage: "[--json]",
        summary: "live peers: id, address, files, last alive, fingerprint",
        details: "Peers registered now; the address is the one the tracker sees, the fingerprint that of the peer's certificate.",
        example: "peers",
    },
    CommandHelp {
        name: "files",
        usage: "[--json]",
        summary: "known files: name, id, size, holders",
        details: "Every file some live peer holds, with the peers holding it.",
        example: "files --json",
    },
    CommandHelp {
        name: "help",
        usage: "[command]",
        summary: "this text, or one command in detail",
        details: "",
        example: "help logs_file",
    },
    CommandHelp {
        name: "exit",
        usage: "",
        summary: "stop the tracker (also Ctrl-D)",
        details: "Peers notice and reconnect once a tracker is back.",
        example: "exit",
    },
];

const KEYS: &str = "keys: Tab completes, Up/Down recall history, Ctrl-C drops the line, Ctrl-D stops the tracker";

fn parse(line: &str) -> Result<Option<Command>> {
    let mut words = console::words(line)?;
    if words.is_empty() {
        return Ok(None);
    }
    let word = words.remove(0);
    let before = words.len();
    words.retain(|w| w != "--json");
    let json = words.len() != before;
    let rest = words.join(" ");
    let command = match (word.as_str(), rest.as_str()) {
        ("logs", "request" | "requests") => Command::LogsRequest { json },
        ("logs-all", "") | ("logs", "all") => Command::LogsAll { json },
        ("logs_file" | "logs-file" | "logs", name) if !name.is_empty() => {
            let name = name.strip_prefix("file ").unwrap_or(name).trim();
            Command::LogsFile { name: name.to_string(), json }
        }
        ("peers", "") => Command::Peers { json },
        ("files", "") => Command::Files { json },
        ("help" | "?", topic) => Command::Help(topic.to_string()),
        ("exit" | "quit", "") => Command::Exit,
        (word, _) => match COMMANDS.iter().find(|c| c.name == word) {
            Some(c) => bail!("usage: {} {} (try help {})", c.name, c.usage, c.name),
            None => bail!("{}", console::unknown(word, &names())),
        },
    };
    if json && matches!(command, Command::Help(_) | Command::Exit) {
        bail!("--json goes with logs, peers and files");
    }
    Ok(Some(command))
}

fn names() -> Vec<&'static str> {
    COMMANDS.iter().map(|c| c.name).collect()
}

/// Tab completion: commands, and the files the tracker knows after `logs_file`.
struct Completion {
    tracker: Tracker,
}

impl Complete for Completion {
    fn commands(&self) -> Vec<&'static str> {
        names()
    }

    fn arguments(&self, command: &str, index: usize) -> Vec<String> {
        let files = || self.tracker.files().into_iter().map(|m| m.file.name).collect();
        match (command, index) {
            ("logs", 0) => ["request", "all", "file"].map(String::from).to_vec(),
            ("logs_file", 0) | ("logs", 1) => files(),
            ("help", 0) => names().into_iter().map(String::from).collect(),
            ("exit" | "help", _) => Vec::new(),
            _ => vec!["--json".into()],
        }
    }
}

/// Runs the prompt until `exit`, Ctrl-D on a terminal, Ctrl-C or SIGTERM. End of piped input
/// keeps the tracker serving.
pub async fn prompt(tracker: &Tracker, shutdown: &CancellationToken, state_dir: &Path) {
    let complete: Arc<dyn Complete> = Arc::new(Completion { tracker: tracker.clone() });
    let setup = Setup { prompt: "tracker> ".into(), history: Some(state_dir.join("history")), complete: Some(complete) };
    let mut console = Console::start(setup);
    let mut input_open = true;
    console::cancel_on_signal(shutdown.clone());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            input = console.next(), if input_open => match input {
                Input::End if console.editing => break,
                Input::End => input_open = false,
                Input::Interrupted { typed: true } => {}
                Input::Interrupted { typed: false } => console::say("(type exit or press Ctrl-D to stop the tracker)"),
                Input::Line(line) => match parse(&line) {
                    Ok(Some(Command::Exit)) => break,
                    Ok(Some(command)) => run(tracker, command),
                    Ok(None) => {}
                    Err(err) => console::error(&err),
                },
            },
        }
    }
    console.close();
}

fn run(tracker: &Tracker, command: Command) {
    let text = match command {
        Command::LogsRequest { json } => events(tracker, json, |e| e.kind.is_request()),
        Command::LogsAll { json } => events(tracker, json, |_| true),
        Command::LogsFile { name, json } => events(tracker, json, |e| e.is_about(&name)),
        Command::Peers { json: false } => Ok(peers(tracker)),
        Command::Peers { json: true } => Ok(peers_json(tracker).to_string()),
        Command::Files { json: false } => Ok(files(tracker)),
        Command::Files { json: true } => Ok(files_json(tracker).to_string()),
        Command::Help(topic) => console::help(COMMANDS, &topic, KEYS),
        Command::Exit => Ok(String::new()),
    };
    match text {
        Ok(text) => console::say(&text),
        Err(err) => console::error(&err),
    }
}

fn events(tracker: &Tracker, json: bool, keep: impl Fn(&Event) -> bool) -> Result<String> {
    let events: Vec<Event> = tracker.events()?.into_iter().filter(|e| keep(e)).collect();
    Ok(if json { console::json_line(&events) } else { events_table(&events) })
}

fn peers(tracker: &Tracker) -> String {
    let now = Instant::now();
    let mut table = Table::new(&["PEER", "ADDRESS", "FILES", "LAST ALIVE", "FINGERPRINT"]);
    for (id, peer) in tracker.peers() {
        let ago = format!("{:.1} s ago", now.saturating_duration_since(peer.last_alive).as_secs_f64());
        table.row(vec![id, peer.addr.to_string(), peer.files.len().to_string(), ago, peer.fingerprint.short()]);
    }
    table.render("live peer")
}

fn peers_json(tracker: &Tracker) -> Value {
    let now = Instant::now();
    let peers: Vec<Value> = tracker
        .peers()
        .into_iter()
        .map(|(id, p)| {
            let ago = now.saturating_duration_since(p.last_alive).as_millis() as u64;
            json!({"id": id, "addr": p.addr.to_string(), "files": p.files.len(), "last_alive_ms_ago": ago, "fingerprint": p.fingerprint.to_hex()})
        })
        .collect();
    Value::Array(peers)
}

fn files(tracker: &Tracker) -> String {
    let mut table = Table::new(&["NAME", "ID", "SIZE", "HOLDERS"]);
    for found in tracker.files() {
        let holders: Vec<String> = found.holders.iter().map(|h| h.peer_id.clone()).collect();
        let f = found.file;
        table.row(vec![f.name, f.id.short(), crate::units::bytes(f.size), holders.join(",")]);
    }
    table.render("file")
}

fn files_json(tracker: &Tracker) -> Value {
    let files: Vec<Value> = tracker
        .files()
        .into_iter()
        .map(|m| {
            let holders: Vec<&str> = m.holders.iter().map(|h| h.peer_id.as_str()).collect();
            json!({"name": m.file.name, "id": m.file.id.to_hex(), "size": m.file.size, "holders": holders})
        })
        .collect();
    Value::Array(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_commands_and_suggests_on_typos() {
        assert_eq!(parse("logs request").unwrap(), Some(Command::LogsRequest { json: false }));
        assert_eq!(parse("logs-all").unwrap(), Some(Command::LogsAll { json: false }));
        assert_eq!(parse("logs_file a b.txt").unwrap(), Some(Command::LogsFile { name: "a b.txt".into(), json: false }));
        assert_eq!(parse("logs_file \"a b.txt\" --json").unwrap(), Some(Command::LogsFile { name: "a b.txt".into(), json: true }));
        assert_eq!(parse("files --json").unwrap(), Some(Command::Files { json: true }));
        assert_eq!(parse("  ").unwrap(), None);
        assert!(parse("peer").unwrap_err().to_string().contains("peers"));
        assert!(parse("peers now").unwrap_err().to_string().starts_with("usage: peers"));
    }

    #[test]
    fn every_command_has_help_with_an_example() {
        for c in COMMANDS {
            assert!(console::help(COMMANDS, c.name, KEYS).unwrap().contains("example: "));
        }
    }
}
