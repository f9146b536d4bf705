//! The tracker's prompt: `logs request`, `logs-all`, `logs_file NAME`, `peers`, `files`, `help`,
//! `exit`. It reads the tracker's state through its handle and prints tables.

use std::time::Instant;

use anyhow::{Result, bail};
use tokio_util::sync::CancellationToken;

use super::Tracker;
use crate::console::{self, Console};
use crate::logbook::{Event, Table, events_table};

/// A parsed tracker command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    LogsRequest,
    LogsAll,
    LogsFile(String),
    Peers,
    Files,
    Help,
    Exit,
}

const HELP: &str = "\
commands:
  logs request       share and get events
  logs-all           every event (register, alive, share, get, exit, expire)
  logs_file <name>   events about one file (name or id prefix)
  peers              live peers: id, address, files, last alive
  files              known files: name, id, size, holders
  help               this text
  exit               stop the tracker";

const WORDS: &[&str] = &["logs", "logs-all", "logs_file", "peers", "files", "help", "exit"];

fn parse(line: &str) -> Result<Option<Command>> {
    let (word, rest) = console::split(line);
    let command = match (word, rest) {
        ("", _) => return Ok(None),
        ("logs", "request" | "requests") => Command::LogsRequest,
        ("logs-all", "") | ("logs", "all") => Command::LogsAll,
        ("logs_file" | "logs-file", name) | ("logs", name) if !name.is_empty() => {
            let name = name.strip_prefix("file ").unwrap_or(name).trim();
            Command::LogsFile(name.to_string())
        }
        ("logs_file" | "logs-file", "") => bail!("usage: logs_file <name>"),
        ("peers", "") => Command::Peers,
        ("files", "") => Command::Files,
        ("help" | "?", _) => Command::Help,
        ("exit" | "quit", "") => Command::Exit,
        _ => bail!("{}", unknown(word)),
    };
    Ok(Some(command))
}

fn unknown(word: &str) -> String {
    match console::suggest(word, WORDS) {
        Some(near) => format!("unknown command {word:?}; did you mean {near:?}? (try help)"),
        None => format!("unknown command {word:?} (try help)"),
    }
}

/// Runs the prompt until `exit`, Ctrl-C or SIGTERM. End of input keeps the tracker serving.
pub async fn prompt(tracker: &Tracker, shutdown: &CancellationToken) {
    let mut console = Console::start("tracker> ".into());
    let mut input_open = true;
    console::cancel_on_signal(shutdown.clone());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            line = console.next_line(), if input_open => match line {
                None => input_open = false,
                Some(line) => match parse(&line) {
                    Ok(Some(Command::Exit)) => break,
                    Ok(Some(command)) => run(tracker, command),
                    Ok(None) => {}
                    Err(err) => console::error(&err),
                },
            },
        }
    }
}

fn run(tracker: &Tracker, command: Command) {
    let text = match command {
        Command::LogsRequest => events(tracker, |e| e.kind.is_request()),
        Command::LogsAll => events(tracker, |_| true),
        Command::LogsFile(name) => events(tracker, |e| e.is_about(&name)),
        Command::Peers => Ok(peers(tracker)),
        Command::Files => Ok(files(tracker)),
        Command::Help => Ok(HELP.to_string()),
        Command::Exit => Ok(String::new()),
    };
    match text {
        Ok(text) => console::say(&text),
        Err(err) => console::error(&err),
    }
}

fn events(tracker: &Tracker, keep: impl Fn(&Event) -> bool) -> Result<String> {
    let events: Vec<Event> = tracker.events()?.into_iter().filter(|e| keep(e)).collect();
    Ok(events_table(&events))
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

fn files(tracker: &Tracker) -> String {
    let mut table = Table::new(&["NAME", "ID", "SIZE", "HOLDERS"]);
    for found in tracker.files() {
        let holders: Vec<String> = found.holders.iter().map(|h| h.peer_id.clone()).collect();
        let f = found.file;
        table.row(vec![f.name, f.id.short(), crate::units::bytes(f.size), holders.join(",")]);
    }
    table.render("file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_commands_and_suggests_on_typos() {
        assert_eq!(parse("logs request").unwrap(), Some(Command::LogsRequest));
        assert_eq!(parse("logs-all").unwrap(), Some(Command::LogsAll));
        assert_eq!(parse("logs_file a b.txt").unwrap(), Some(Command::LogsFile("a b.txt".into())));
        assert_eq!(parse("  ").unwrap(), None);
        assert!(parse("peer").unwrap_err().to_string().contains("peers"));
    }
}
