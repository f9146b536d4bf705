//! The tracker's prompt: `logs request`, `logs all` (`logs-all`), `logs file NAME`
//! (`logs_file NAME`), each with `--tail N`, `--file`, `--peer`; `peers`, `files`, `clear`,
//! `help`, `exit`. It reads the tracker's state through its handle and prints tables, or one line of
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
use crate::logbook::{Event, FILTER_FLAGS, Filter, Table, events_table};
use crate::tracker::Tracker;

/// A parsed tracker command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Logs { view: View, filter: Filter, json: bool },
    Peers { json: bool },
    Files { json: bool },
    Clear,
    Help(String),
    Exit,
}

/// Which events a `logs` command starts from, before its filter.
#[derive(Debug, PartialEq, Eq)]
enum View {
    /// Shares and gets: `logs request`.
    Requests,
    /// Everything: `logs-all`, `logs all`.
    All,
    /// One file: `logs_file NAME`, `logs file NAME`.
    File(String),
}

/// The flags of `logs-all`, as help shows them.
const LOGS_FLAGS: &str = "[--json] [filters]";

const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "logs",
        usage: "request|all|file NAME [--json] [filters]",
        summary: "share and get events; all events; one file's",
        details: "logs request: who shared or looked up which file, and when (local time). logs all (also logs-all): every event, each peer's runs of heartbeats folded into one row with a count. logs file NAME (also logs_file NAME): one file's events, by name or id prefix. Filters: --tail N keeps the last N events, --file NAME|ID one file's, --peer ID one peer's. With --json, the events as one JSON array on one line, none folded.",
        example: "logs all --peer 2 --tail 20",
    },
    CommandHelp {
        name: "logs-all",
        usage: LOGS_FLAGS,
        summary: "every event: register, alive, share, get, exit, expire",
        details: "The whole event log, oldest first; each peer's runs of heartbeats show as one row (alive ×N, with the time span), --json lists each. Same as logs all; takes the filters of help logs.",
        example: "logs-all --json",
    },
    CommandHelp {
        name: "logs_file",
        usage: "<name> [--json] [filters]",
        summary: "events about one file (name or id prefix)",
        details: "Shares, lookups and automatic re-shares of one file, by its name or the first hex digits of its id (4 or more). Same as logs file NAME; takes the filters of help logs.",
        example: "logs_file some-file.iso",
    },
    CommandHelp {
        name: "peers",
        usage: "[--json]",
        summary: "live peers: id, address, how reached (direct, mapped, punched), files, last alive, fingerprint",
        details: "Peers registered now; the address is the one the tracker sees, the fingerprint that of the peer's certificate.",
        example: "peers",
    },
    CommandHelp {
        name: "files",
        usage: "[--json]",
        summary: "known files: name, id, size, holders",
        details: "Every file some live peer holds, with the peers holding it; a peer still downloading it shows how much it has, as `p2 (41%)`.",
        example: "files --json",
    },
    console::CLEAR_HELP,
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
    let filter = if word.starts_with("logs") { Filter::take(&mut words)? } else { Filter::default() };
    let rest: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match (word.as_str(), rest.as_slice()) {
        ("logs", ["request" | "requests"]) => Command::Logs { view: View::Requests, filter, json },
        ("logs-all", []) | ("logs", ["all"]) => Command::Logs { view: View::All, filter, json },
        ("logs_file" | "logs-file", name) | ("logs", ["file", name @ ..]) if !name.is_empty() => {
            Command::Logs { view: View::File(name.join(" ")), filter, json }
        }
        ("peers", []) => Command::Peers { json },
        ("files", []) => Command::Files { json },
        ("clear", []) => Command::Clear,
        ("help" | "?", topic) => Command::Help(topic.join(" ")),
        ("exit" | "quit", []) => Command::Exit,
        (word, _) => match COMMANDS.iter().find(|c| c.name == word) {
            Some(c) => bail!("usage: {} {} (try help {})", c.name, c.usage, c.name),
            None => bail!("{}", console::unknown(word, &names())),
        },
    };
    if json && matches!(command, Command::Help(_) | Command::Exit | Command::Clear) {
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
        let flags = |with: &[&str]| ["--json"].iter().chain(with).map(|f| f.to_string()).collect::<Vec<_>>();
        match (command, index) {
            ("logs", 0) => ["request", "all", "file"].map(String::from).to_vec(),
            ("logs_file", 0) | ("logs", 1) => [files(), flags(&FILTER_FLAGS)].concat(),
            ("logs" | "logs_file" | "logs-all", _) => flags(&FILTER_FLAGS),
            ("help", 0) => names().into_iter().map(String::from).collect(),
            ("exit" | "help" | "clear", _) => Vec::new(),
            _ => flags(&[]),
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
        Command::Logs { view, filter, json } => events(tracker, &view, &filter, json),
        Command::Peers { json: false } => Ok(peers(tracker)),
        Command::Peers { json: true } => Ok(peers_json(tracker).to_string()),
        Command::Files { json: false } => Ok(files(tracker)),
        Command::Files { json: true } => Ok(files_json(tracker).to_string()),
        Command::Help(topic) => console::help(COMMANDS, &topic, KEYS),
        Command::Clear => {
            console::clear();
            return;
        }
        Command::Exit => Ok(String::new()),
    };
    match text {
        Ok(text) => console::say(&text),
        Err(err) => console::error(&err),
    }
}

fn events(tracker: &Tracker, view: &View, filter: &Filter, json: bool) -> Result<String> {
    let keep = |e: &Event| match view {
        View::Requests => e.kind.is_request(),
        View::All => true,
        View::File(name) => e.is_about(name),
    };
    let events = filter.events(tracker.events()?.into_iter().filter(|e| keep(e)).collect());
    Ok(if json { console::json_line(&events) } else { events_table(&events) })
}

fn peers(tracker: &Tracker) -> String {
    let now = Instant::now();
    let mut table = Table::new(&["PEER", "ADDRESS", "REACHED", "FILES", "LAST ALIVE", "FINGERPRINT"]);
    for (id, peer) in tracker.peers() {
        let ago = format!("{:.1} s ago", now.saturating_duration_since(peer.last_alive).as_secs_f64());
        let (addr, files) = (peer.addr.to_string(), peer.file_count().to_string());
        table.row(vec![id, addr, peer.reach(), files, ago, peer.fingerprint.short()]);
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
            let mapped = p.mapped().map(|m| m.to_string());
            let also: Vec<String> = p.also().iter().map(|a| a.to_string()).collect();
            json!({"id": id, "addr": p.addr.to_string(), "mapped": mapped, "also": also, "introduced": p.introductions(), "reached": p.reach(),
                "files": p.file_count(), "last_alive_ms_ago": ago, "fingerprint": p.fingerprint.to_hex()})
        })
        .collect();
    Value::Array(peers)
}

fn files(tracker: &Tracker) -> String {
    let mut table = Table::new(&["NAME", "ID", "SIZE", "HOLDERS"]);
    for found in tracker.files() {
        let partial = tracker.partial_holders(&found.file.id);
        let holders: Vec<String> = found.holders.iter().map(|h| holder_shown(&h.peer_id, &partial)).collect();
        let f = found.file;
        let (name, size) = match f.folder {
            Some(folder) => (format!("{}/", f.name), format!("{} in {} files", crate::units::bytes(folder.bytes), folder.files)),
            None => (f.name, crate::units::bytes(f.size)),
        };
        table.row(vec![name, f.id.short(), size, holders.join(",")]);
    }
    table.render("file")
}

/// A holder in the `files` view: its id, and how much it has when it is still downloading
/// (`p2 (41%)`).
fn holder_shown(peer: &str, partial: &[(String, f64)]) -> String {
    match partial.iter().find(|(p, _)| p == peer) {
        Some((_, have)) => format!("{peer} ({:.0}%)", have * 100.0),
        None => peer.to_string(),
    }
}

fn files_json(tracker: &Tracker) -> Value {
    let files: Vec<Value> = tracker
        .files()
        .into_iter()
        .map(|m| {
            let holders: Vec<&str> = m.holders.iter().map(|h| h.peer_id.as_str()).collect();
            let partial: serde_json::Map<String, Value> =
                tracker.partial_holders(&m.file.id).into_iter().map(|(p, have)| (p, json!(have))).collect();
            let mut file =
                json!({"name": m.file.name, "id": m.file.id.to_hex(), "size": m.file.size, "holders": holders, "partial": partial});
            if let Some(folder) = m.file.folder {
                file["folder"] = json!({"files": folder.files, "bytes": folder.bytes});
            }
            file
        })
        .collect();
    Value::Array(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(view: View, filter: Filter, json: bool) -> Option<Command> {
        Some(Command::Logs { view, filter, json })
    }

    #[test]
    fn parses_the_seed_commands_and_suggests_on_typos() {
        let none = Filter::default;
        assert_eq!(parse("logs request").unwrap(), logs(View::Requests, none(), false));
        assert_eq!(parse("logs-all").unwrap(), logs(View::All, none(), false));
        assert_eq!(parse("logs_file a b.txt").unwrap(), logs(View::File("a b.txt".into()), none(), false));
        assert_eq!(parse("logs_file \"a b.txt\" --json").unwrap(), logs(View::File("a b.txt".into()), none(), true));
        assert_eq!(parse("files --json").unwrap(), Some(Command::Files { json: true }));
        assert_eq!(parse("  ").unwrap(), None);
        assert!(parse("peer").unwrap_err().to_string().contains("peers"));
        assert!(parse("peers now").unwrap_err().to_string().starts_with("usage: peers"));
    }

    #[test]
    fn consistent_spellings_and_filters_work_too() {
        assert_eq!(parse("logs all").unwrap(), parse("logs-all").unwrap());
        assert_eq!(parse("logs file a.txt --json").unwrap(), parse("logs_file a.txt --json").unwrap());
        let filter = Filter { tail: Some(3), file: Some("ab12".into()), peer: Some("2".into()) };
        assert_eq!(parse("logs all --tail 3 --file ab12 --peer 2").unwrap(), logs(View::All, filter, false));
        assert_eq!(parse("logs request --tail=1").unwrap(), logs(View::Requests, Filter { tail: Some(1), ..Filter::default() }, false));
        assert!(parse("logs all --tail").is_err());
        assert!(parse("logs nothing").unwrap_err().to_string().starts_with("usage: logs"));
        assert_eq!(parse("clear").unwrap(), Some(Command::Clear));
    }

    #[test]
    fn every_command_has_help_with_an_example() {
        for c in COMMANDS {
            assert!(console::help(COMMANDS, c.name, KEYS).unwrap().contains("example: "));
        }
    }
}
