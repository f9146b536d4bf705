//! The peer's prompt: `share`, `get`, `logs request`, `status`, `help`, `exit`.
//!
//! Parses each line into a [`Command`] and calls the [`Peer`] handle; it never touches the
//! network or the disk itself. End of input, Ctrl-C and SIGTERM leave like `exit` does.

use anyhow::{Result, bail};

use super::{Got, Peer, Shared};
use crate::console::{self, Console};
use crate::logbook::{Table, chunks_table};
use crate::units;

/// A parsed peer command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Share(String),
    Get(String),
    LogsRequest,
    Status,
    Help,
    Exit,
}

const HELP: &str = "\
commands:
  share <file>    share a file from the data folder      e.g. share notes.txt
  get <file>      download a file (name or id prefix)    e.g. get notes.txt
  logs request    the chunks this peer downloaded
  status          what this peer shares, and the tracker link
  help            this text
  exit            tell the tracker, then quit";

const WORDS: &[&str] = &["share", "get", "logs", "status", "help", "exit"];

fn parse(line: &str) -> Result<Option<Command>> {
    let (word, rest) = console::split(line);
    let command = match (word, rest) {
        ("", _) => return Ok(None),
        ("share", "") => bail!("usage: share <file>"),
        ("share", file) => Command::Share(file.to_string()),
        ("get", "") => bail!("usage: get <file>"),
        ("get", file) => Command::Get(file.to_string()),
        ("logs", "request" | "requests") => Command::LogsRequest,
        ("logs", _) => bail!("usage: logs request"),
        ("status", "") => Command::Status,
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

/// Runs the prompt until `exit`, end of input, Ctrl-C or SIGTERM, then leaves gracefully.
/// Fails if the tracker refused this peer for good.
pub async fn prompt(peer: &Peer) -> Result<()> {
    let mut console = Console::start(format!("peer {}> ", peer.id()));
    let draw = console.interactive && std::io::IsTerminal::is_terminal(&std::io::stderr());
    console::cancel_on_signal(peer.shutdown_token());
    loop {
        let line = tokio::select! {
            _ = peer.stopping() => break,
            line = console.next_line() => line,
        };
        let command = match line.as_deref().map(parse) {
            None | Some(Ok(Some(Command::Exit))) => break,
            Some(Ok(Some(command))) => command,
            Some(Ok(None)) => continue,
            Some(Err(err)) => {
                console::error(&err);
                continue;
            }
        };
        tokio::select! {
            _ = peer.stopping() => break,
            result = run(peer, command, draw) => match result {
                Ok(text) => console::say(&text),
                Err(err) => console::error(&err),
            },
        }
    }
    peer.exit().await;
    match peer.refusal() {
        Some(reason) => bail!("{reason}"),
        None => {
            console::say("bye");
            Ok(())
        }
    }
}

async fn run(peer: &Peer, command: Command, draw: bool) -> Result<String> {
    Ok(match command {
        Command::Share(file) => shared_line(&peer.share(&file).await?),
        Command::Get(file) => got_line(&peer.get(&file, draw).await?),
        Command::LogsRequest => chunks_table(&peer.chunk_log()?),
        Command::Status => status(peer),
        Command::Help => HELP.to_string(),
        Command::Exit => String::new(),
    })
}

fn shared_line(shared: &Shared) -> String {
    let info = &shared.info;
    let chunks = if shared.chunks == 1 { "1 chunk".to_string() } else { format!("{} chunks", shared.chunks) };
    let mut line = format!("shared {} ({}, {chunks}) id {}", info.name, units::bytes(info.size), info.id);
    if let Some(reason) = &shared.pending {
        line.push_str(&format!("; the tracker will hear of it once reachable ({reason})"));
    }
    crate::logbook::printable(&line)
}

fn got_line(got: &Got) -> String {
    let info = &got.info;
    if got.from.is_empty() {
        return format!("already have {} at {} (id {})", info.name, got.path.display(), info.id);
    }
    let from: Vec<String> = got.from.iter().map(|(peer, n)| format!("{peer}: {n}")).collect();
    crate::logbook::printable(&format!(
        "downloaded {} ({}) in {} at {}; chunks from peers {}; verified id {}; saved to {}",
        info.name,
        units::bytes(info.size),
        units::duration(got.elapsed),
        units::rate(info.size, got.elapsed),
        from.join(", "),
        info.id,
        got.path.display()
    ))
}

fn status(peer: &Peer) -> String {
    let link = if peer.tracker_connected() { "connected" } else { "not connected (retrying)" };
    let mut table = Table::new(&["NAME", "ID", "SIZE"]);
    for file in peer.shared() {
        table.row(vec![file.name, file.id.short(), units::bytes(file.size)]);
    }
    format!("peer {} — tracker {link}\n{}", peer.id(), table.render("shared file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_with_spaces_in_names() {
        assert_eq!(parse("share my notes.txt").unwrap(), Some(Command::Share("my notes.txt".into())));
        assert_eq!(parse("get a").unwrap(), Some(Command::Get("a".into())));
        assert_eq!(parse("logs request").unwrap(), Some(Command::LogsRequest));
        assert!(parse("get").is_err());
        assert!(parse("shrae x").unwrap_err().to_string().contains("share"));
    }
}
