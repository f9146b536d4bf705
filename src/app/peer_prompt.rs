//! The peer's prompt: `share`, `unshare`, `get`, `logs request`, `status`, `discard`, `clear`, `help`, `exit`.
//!
//! Parses each line into a [`Command`] and calls the [`Peer`] handle; it never touches the
//! network or the disk itself. On a terminal, downloads and the hashing of shared files run in
//! the background (one bar each above the prompt, which stays usable) and Ctrl-C on an empty
//! line cancels them; from a pipe every command, `get` and `share` included, finishes before
//! the next line is read. End of input, `exit` and SIGTERM leave gracefully.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Result, bail};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::Show;
use super::report;

mod completion;
mod help;
mod sharing;
use crate::app::console::{self, Complete, Console, Input, Setup};
use crate::content::folder::only::Only;
use crate::logbook::{Filter, chunks_table};
use crate::peer::Peer;
use completion::Completion;
use help::{COMMANDS, KEYS};

/// Most data-folder files offered by Tab after `share`.
const COMPLETION_FILES: usize = 2000;

/// A parsed peer command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Share(Vec<String>, bool),
    Unshare(Vec<String>),
    Get(Vec<String>, Vec<String>),
    LogsRequest { filter: Filter, json: bool },
    Status { json: bool },
    Discard(String),
    Clear,
    Help(String),
    Exit,
}

fn parse(line: &str) -> Result<Option<Command>> {
    let mut words = console::words(line)?;
    if words.is_empty() {
        return Ok(None);
    }
    let word = words.remove(0);
    let json = take_flag(&mut words, "--json");
    let filter = if word == "logs" { Filter::take(&mut words)? } else { Filter::default() };
    let only = if word == "get" { take_values(&mut words, "--only")? } else { Vec::new() };
    let public = word == "share" && take_flag(&mut words, "--public");
    let command = match (word.as_str(), words.as_slice()) {
        ("share", files) if !files.is_empty() => Command::Share(files.to_vec(), public),
        ("unshare", files) if !files.is_empty() => Command::Unshare(files.to_vec()),
        ("get", names) if !names.is_empty() && !only.is_empty() => {
            Only::new(&only)?;
            Command::Get(names.to_vec(), only)
        }
        ("get", names) if !names.is_empty() => Command::Get(names.to_vec(), only),
        ("logs", [what]) if what == "request" || what == "requests" => Command::LogsRequest { filter, json },
        ("status", []) => Command::Status { json },
        ("discard", [what]) => Command::Discard(what.clone()),
        ("clear", []) => Command::Clear,
        ("help" | "?", []) => Command::Help(String::new()),
        ("help" | "?", [topic]) => Command::Help(topic.clone()),
        ("exit" | "quit", []) => Command::Exit,
        (word, _) => match COMMANDS.iter().find(|c| c.name == word) {
            Some(c) => bail!("usage: {} {} (try help {})", c.name, c.usage, c.name),
            None => bail!("{}", console::unknown(word, &names())),
        },
    };
    if json && !matches!(command, Command::LogsRequest { .. } | Command::Status { .. }) {
        bail!("--json goes with logs request and status");
    }
    Ok(Some(command))
}

/// Takes every `flag VALUE` out of `words`; the values, in order.
fn take_values(words: &mut Vec<String>, flag: &str) -> Result<Vec<String>> {
    let mut values = Vec::new();
    while let Some(at) = words.iter().position(|w| w == flag) {
        if at + 1 >= words.len() {
            bail!("{flag} needs a value (e.g. {flag} '*.jpg')");
        }
        values.push(words.remove(at + 1));
        words.remove(at);
    }
    Ok(values)
}

fn take_flag(words: &mut Vec<String>, flag: &str) -> bool {
    let before = words.len();
    words.retain(|w| w != flag);
    words.len() != before
}

fn names() -> Vec<&'static str> {
    COMMANDS.iter().map(|c| c.name).collect()
}

/// What the prompt is running.
struct PromptState {
    peer: Peer,
    /// Downloads run in the background (a terminal with the line editor).
    background: bool,
    show: Show,
    /// Background downloads and shares; each yields its key in `running` when done.
    gets: JoinSet<String>,
    running: HashSet<String>,
    /// Cancels the running downloads; replaced after each use.
    cancel: CancellationToken,
}

/// Why the prompt's wait ended.
enum Woke {
    Stop,
    Input(Input),
    GetDone(String),
    Interrupt,
}

/// Runs the prompt until `exit`, end of input or SIGTERM, then leaves gracefully. Fails if the
/// tracker refused this peer for good.
pub async fn prompt(peer: &Peer) -> Result<()> {
    let (mut console, interrupt) = open_console(peer);
    let background = console.editing;
    let show = if !background || console::is_quiet() { Show::Lines } else { Show::Bars };
    let mut session = PromptState {
        peer: peer.clone(),
        background,
        show,
        gets: JoinSet::new(),
        running: HashSet::new(),
        cancel: CancellationToken::new(),
    };
    while let Some(command) = next_command(peer, &mut console, &mut session, &interrupt).await {
        let ended = tokio::select! {
            _ = peer.stopping() => Woke::Stop,
            _ = interrupt.notified() => Woke::Interrupt,
            () = session.run(command) => continue,
        };
        match ended {
            Woke::Interrupt => session.interrupt(true),
            _ => break,
        }
    }
    leave(peer, console, session).await
}

/// Starts the line editor (history, completion) and signal handling; returns the console and
/// what Ctrl-C notifies.
fn open_console(peer: &Peer) -> (Console, Arc<Notify>) {
    let complete: Arc<dyn Complete> = Arc::new(Completion { peer: peer.clone(), runtime: tokio::runtime::Handle::current() });
    let history = Some(peer.state_dir().join("history"));
    let console = Console::start(Setup { prompt: format!("peer {}> ", peer.id()), history, complete: Some(complete) });
    let interrupt = Arc::new(Notify::new());
    // On a terminal Ctrl-C cancels what runs; from a pipe it leaves, as SIGTERM does.
    console::on_signals(peer.shutdown_token(), console.editing.then(|| interrupt.clone()));
    (console, interrupt)
}

/// Waits for the next command, dealing with what happens meanwhile (a get ending, Ctrl-C, a
/// line that is not a command); `None` when the prompt should end.
async fn next_command(peer: &Peer, console: &mut Console, session: &mut PromptState, interrupt: &Notify) -> Option<Command> {
    loop {
        let woke = tokio::select! {
            _ = peer.stopping() => Woke::Stop,
            Some(done) = session.gets.join_next() => Woke::GetDone(done.unwrap_or_default()),
            _ = interrupt.notified() => Woke::Interrupt,
            input = console.next() => Woke::Input(input),
        };
        let line = match woke {
            Woke::Stop | Woke::Input(Input::End) => return None,
            Woke::GetDone(query) => {
                session.running.remove(&query);
                continue;
            }
            Woke::Interrupt | Woke::Input(Input::Interrupted { typed: false }) => {
                session.interrupt(false);
                continue;
            }
            Woke::Input(Input::Interrupted { typed: true }) => continue,
            Woke::Input(Input::Line(line)) => line,
        };
        match parse(&line) {
            Ok(Some(Command::Exit)) => return None,
            Ok(Some(command)) => return Some(command),
            Ok(None) => {}
            Err(err) => console::error(&err),
        }
    }
}

/// Ends the gets still running, closes the console and leaves the swarm.
async fn leave(peer: &Peer, mut console: Console, mut session: PromptState) -> Result<()> {
    session.finish().await;
    console.close();
    peer.exit().await;
    match peer.refusal() {
        Some(reason) => bail!("{reason}"),
        None => {
            console::say("bye");
            Ok(())
        }
    }
}

impl PromptState {
    async fn run(&mut self, command: Command) {
        if matches!(command, Command::Share(..) | Command::Get(..)) {
            // The prompt shows before the tracker link's first attempt ends; a command that
            // needs the tracker waits for it here (Ctrl-C ends the wait).
            self.peer.tracker_settled().await;
        }
        let result = match command {
            Command::Share(files, public) => {
                self.share(files, public).await;
                Ok(())
            }
            Command::Unshare(files) => {
                self.unshare(&files).await;
                Ok(())
            }
            Command::Get(names, only) => {
                self.get(names, only).await;
                Ok(())
            }
            Command::LogsRequest { filter, json } => self.logs(&filter, json),
            Command::Status { json } => {
                let text = if json { report::status_json(&self.peer).to_string() } else { report::status(&self.peer) };
                console::say(&text);
                Ok(())
            }
            Command::Discard(what) => self.peer.discard(&what).map(|gone| console::say(&report::discarded_line(&gone))),
            Command::Clear => {
                console::clear();
                Ok(())
            }
            Command::Help(topic) => console::help(COMMANDS, &topic, KEYS).map(|text| console::say(&text)),
            Command::Exit => Ok(()),
        };
        if let Err(err) = result {
            console::error(&err);
        }
    }

    fn logs(&self, filter: &Filter, json: bool) -> Result<()> {
        let records = filter.chunks(self.peer.chunk_log()?);
        console::say(&if json { console::json_line(&records) } else { chunks_table(&records) });
        Ok(())
    }

    /// Starts one download per name, all at once. In the background on a terminal; otherwise
    /// returns when every one has finished, so scripts stay in order.
    async fn get(&mut self, names: Vec<String>, only: Vec<String>) {
        let only = match only.is_empty() {
            true => None,
            false => match Only::new(&only) {
                Ok(only) => Some(Arc::new(only)),
                Err(err) => return console::error_line(&err.to_string()),
            },
        };
        if self.background {
            for name in names {
                if !self.running.insert(name.clone()) {
                    console::error_line(&format!("already getting {name}"));
                    continue;
                }
                self.gets.spawn(get_one(self.peer.clone(), name, only.clone(), self.show, self.cancel.clone()));
            }
            return;
        }
        let mut gets = JoinSet::new();
        for name in names {
            gets.spawn(get_one(self.peer.clone(), name, only.clone(), self.show, self.cancel.clone()));
        }
        while gets.join_next().await.is_some() {}
    }

    /// Ctrl-C: cancels running downloads, or says how to leave. `during` a command, that
    /// command was cancelled already.
    fn interrupt(&mut self, during: bool) {
        if !self.running.is_empty() {
            self.cancel.cancel();
            self.cancel = CancellationToken::new();
        } else if during {
            console::say("cancelled");
        } else {
            console::say("(nothing to cancel; type exit or press Ctrl-D to leave)");
        }
    }

    /// Cancels what still runs and waits for it to report.
    async fn finish(&mut self) {
        self.cancel.cancel();
        while self.gets.join_next().await.is_some() {}
    }
}

/// One download, reported when it ends; yields its query.
async fn get_one(peer: Peer, name: String, only: Option<Arc<Only>>, show: Show, cancel: CancellationToken) -> String {
    match super::progress::get(&peer, &name, only.as_deref(), show, &cancel).await {
        Ok(got) => console::say(&report::got_line(&got)),
        Err(_) if cancel.is_cancelled() => {
            console::say(&format!("cancelled get {}; what was verified is kept", crate::logbook::printable(&name)))
        }
        Err(err) => console::error(&err),
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_with_quoted_names_and_several_files() {
        assert_eq!(parse("share \"my notes.txt\"").unwrap(), Some(Command::Share(vec!["my notes.txt".into()], false)));
        assert_eq!(parse("share --public a b").unwrap(), Some(Command::Share(vec!["a".into(), "b".into()], true)));
        assert_eq!(parse("get a b.iso").unwrap(), Some(Command::Get(vec!["a".into(), "b.iso".into()], vec![])));
        let only = vec!["*.jpg".to_string(), "raw".to_string()];
        assert_eq!(parse("get album --only '*.jpg' --only raw").unwrap(), Some(Command::Get(vec!["album".into()], only)));
        assert!(parse("get album --only").unwrap_err().to_string().contains("--only needs a value"));
        assert!(parse("get album --only '[x'").unwrap_err().to_string().starts_with("--only \"[x\""));
        assert_eq!(parse("unshare a 5f1c").unwrap(), Some(Command::Unshare(vec!["a".into(), "5f1c".into()])));
        assert!(parse("unshare").unwrap_err().to_string().starts_with("usage: unshare"));
        assert_eq!(parse("logs request").unwrap(), Some(Command::LogsRequest { filter: Filter::default(), json: false }));
        assert_eq!(parse("logs request --json").unwrap(), Some(Command::LogsRequest { filter: Filter::default(), json: true }));
        let filter = Filter { tail: Some(2), file: Some("a.txt".into()), peer: Some("1".into()) };
        assert_eq!(parse("logs request --tail 2 --file a.txt --peer 1").unwrap(), Some(Command::LogsRequest { filter, json: false }));
        assert_eq!(parse("clear").unwrap(), Some(Command::Clear));
        assert!(parse("clear now").is_err());
        assert_eq!(parse("status --json").unwrap(), Some(Command::Status { json: true }));
        assert_eq!(parse("help get").unwrap(), Some(Command::Help("get".into())));
        assert_eq!(parse("discard \"a b.iso\"").unwrap(), Some(Command::Discard("a b.iso".into())));
        assert!(parse("discard").unwrap_err().to_string().starts_with("usage: discard"));
        assert!(parse("get").unwrap_err().to_string().starts_with("usage: get"));
        assert!(parse("get a --json").is_err());
        assert!(parse("shrae x").unwrap_err().to_string().contains("share"));
    }

    #[test]
    fn every_command_has_help_with_an_example() {
        for c in COMMANDS {
            let text = console::help(COMMANDS, c.name, KEYS).unwrap();
            assert!(text.contains("example: "), "{text}");
        }
    }
}
