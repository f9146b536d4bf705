//! Prompt plumbing shared by the tracker and the peer: lines in, signals, output out.
//!
//! Input comes one line at a time, and only when asked for ([`Console::next`]), so piped
//! commands run strictly in order. On a terminal a line editor reads it (history, Tab
//! completion, Ctrl-C, Ctrl-D); from a pipe or a file a plain reader does, with no prompt text.
//! Output goes through [`screen`] (re-exported here), which keeps progress bars, messages and
//! the line being typed apart. Each side parses lines into its own command enum and describes
//! its commands with [`CommandHelp`]; this module knows nothing of the commands themselves.

mod editor;
pub mod screen;

use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use anyhow::{Result, bail};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use screen::{Stream, colour, error, error_line, is_quiet, notices_to_stderr, out, say, set_quiet, warn};

/// Prints each notice as it arrives (a task that ends when the sender goes away).
pub fn print_notices(mut notices: tokio::sync::broadcast::Receiver<String>) {
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match notices.recv().await {
                Ok(text) => say(&crate::logbook::printable(&text)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Longest command line read, in bytes.
const MAX_LINE: u64 = 64 * 1024;

/// What the user did at the prompt.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// Entered a line.
    Line(String),
    /// Pressed Ctrl-C; `typed` if there was text on the line (which is then dropped).
    Interrupted {
        /// Whether the line held text.
        typed: bool,
    },
    /// End of input: Ctrl-D on a terminal, end of a pipe.
    End,
}

/// What a prompt can complete with Tab.
pub trait Complete: Send + Sync {
    /// The command words.
    fn commands(&self) -> Vec<&'static str>;
    /// Candidates for argument `index` (0 = first after the command) of `command`.
    fn arguments(&self, command: &str, index: usize) -> Vec<String>;
}

/// How to start a prompt.
pub struct Setup {
    /// Shown before each line on a terminal.
    pub prompt: String,
    /// File the line editor keeps its history in, across runs.
    pub history: Option<PathBuf>,
    /// Tab completion.
    pub complete: Option<Arc<dyn Complete>>,
}

/// Lines typed by the user, one at a time.
pub struct Console {
    inputs: mpsc::Receiver<Input>,
    ready: std_mpsc::Sender<()>,
    asked: bool,
    /// Whether stdin is a terminal.
    pub interactive: bool,
    /// Whether the line editor runs (stdin and stdout are terminals): progress bars may show
    /// above the prompt and commands may run in the background.
    pub editing: bool,
}

impl Console {
    /// Starts reading stdin: through the line editor on a terminal, plainly otherwise.
    pub fn start(setup: Setup) -> Console {
        let interactive = std::io::stdin().is_terminal();
        let (input_tx, inputs) = mpsc::channel(1);
        let (ready, ready_rx) = std_mpsc::channel();
        let mut editing = false;
        if interactive && std::io::stdout().is_terminal() {
            match editor::Reader::new(&setup) {
                Ok(reader) => {
                    let (tx, rx) = (input_tx.clone(), ready_rx);
                    editing = std::thread::Builder::new().name("prompt".into()).spawn(move || reader.run(tx, rx)).is_ok();
                    if !editing {
                        return Console::start_plain(setup.prompt, interactive);
                    }
                }
                Err(err) => {
                    tracing::debug!("no line editor: {err}");
                    return Console::start_plain(setup.prompt, interactive);
                }
            }
        } else {
            let prompt = if interactive { setup.prompt } else { String::new() };
            spawn_plain(prompt, input_tx, ready_rx);
        }
        Console { inputs, ready, asked: false, interactive, editing }
    }

    /// The next input. Asks for it only when called, so the prompt follows the previous
    /// command's output; cancel-safe (dropping it loses nothing).
    pub async fn next(&mut self) -> Input {
        if !self.asked {
            if self.ready.send(()).is_err() {
                return Input::End;
            }
            self.asked = true;
        }
        let input = self.inputs.recv().await.unwrap_or(Input::End);
        self.asked = false;
        input
    }

    /// The next line, or `None` at end of input (Ctrl-C on a terminal counts as an empty line).
    pub async fn next_line(&mut self) -> Option<String> {
        match self.next().await {
            Input::Line(line) => Some(line),
            Input::Interrupted { .. } => Some(String::new()),
            Input::End => None,
        }
    }

    /// Gives the terminal back: erases progress bars and leaves the editor's raw mode.
    pub fn close(&mut self) {
        if self.editing {
            editor::close();
        }
    }
}

impl Console {
    fn start_plain(prompt: String, interactive: bool) -> Console {
        let (input_tx, inputs) = mpsc::channel(1);
        let (ready, ready_rx) = std_mpsc::channel();
        spawn_plain(if interactive { prompt } else { String::new() }, input_tx, ready_rx);
        Console { inputs, ready, asked: false, interactive, editing: false }
    }
}

/// Reads stdin on a thread of its own (reading blocks), one line per `ready`.
fn spawn_plain(prompt: String, inputs: mpsc::Sender<Input>, ready: std_mpsc::Receiver<()>) {
    let spawned = std::thread::Builder::new().name("stdin".into()).spawn(move || read_plain(prompt, inputs, ready));
    if let Err(err) = spawned {
        tracing::warn!("cannot read stdin: {err}");
    }
}

fn read_plain(prompt: String, inputs: mpsc::Sender<Input>, ready: std_mpsc::Receiver<()>) {
    let stdin = std::io::stdin();
    while ready.recv().is_ok() {
        if !prompt.is_empty() {
            screen::emit_partial(Stream::Out, &prompt);
        }
        let mut line = String::new();
        // A line longer than any command is cut, so endless input cannot exhaust memory.
        let input = match stdin.lock().take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => Input::End,
            Ok(_) => Input::Line(line.trim().to_string()),
        };
        let end = input == Input::End;
        if inputs.blocking_send(input).is_err() || end {
            return;
        }
    }
}

/// Cancels `token` on the first Ctrl-C or SIGTERM; one listener for the process's whole life, so
/// no signal is missed between commands.
pub fn cancel_on_signal(token: CancellationToken) {
    on_signals(token, None);
}

/// Signal listeners registered at startup, before anything is printed: a signal that comes
/// before the prompt is ready is then kept for it, instead of killing the process.
static SIGNALS: std::sync::Mutex<Option<Signals>> = std::sync::Mutex::new(None);

/// Ctrl-C (SIGINT) and SIGTERM, as streams that keep what arrives until it is read.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt()).ok()?;
            let terminate = signal(SignalKind::terminate()).ok()?;
            Some(Signals { interrupt, terminate })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    /// The next signal: `true` for SIGTERM, `false` for Ctrl-C.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => true,
                _ = self.interrupt.recv() => false,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            false
        }
    }
}

/// Starts listening for Ctrl-C and SIGTERM; call first thing, inside the runtime.
pub fn install_signals() {
    let mut slot = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Signals::new();
    }
}

/// Until `shutdown` is cancelled: SIGTERM cancels it; Ctrl-C (SIGINT) wakes `interrupt` if
/// given (to cancel what runs, not the program), else cancels `shutdown` too.
pub fn on_signals(shutdown: CancellationToken, interrupt: Option<Arc<Notify>>) {
    let taken = SIGNALS.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(mut signals) = taken.or_else(Signals::new) else { return };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                terminate = signals.next() => match (terminate, &interrupt) {
                    (false, Some(interrupt)) => interrupt.notify_one(),
                    _ => {
                        shutdown.cancel();
                        break;
                    }
                },
            }
        }
        // Hand the listeners back, so a later prompt (or a second one) still hears signals.
        *SIGNALS.lock().unwrap_or_else(|p| p.into_inner()) = Some(signals);
    });
}

/// Splits a command line into its first word and the rest, trimmed.
pub fn split(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    }
}

/// Splits a command line into words the way a shell does: spaces separate, `"…"` and `'…'`
/// group, a backslash escapes the next character.
pub fn words(line: &str) -> Result<Vec<String>> {
    let scan = scan(line);
    if let Some(quote) = scan.open_quote {
        bail!("unterminated {quote} quote");
    }
    Ok(scan.words.into_iter().map(|(_, word)| word).collect())
}

/// Writes `name` so that [`words`] reads it back as one word.
pub fn quote(name: &str) -> String {
    if !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\')) {
        return name.to_string();
    }
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Words of a line with the byte offset each starts at.
struct Scan {
    words: Vec<(usize, String)>,
    open_quote: Option<char>,
    /// Whether the line ends inside a word (so the last word is still being typed).
    in_word: bool,
}

fn scan(line: &str) -> Scan {
    let (mut words, mut current, mut quote) = (Vec::new(), None::<(usize, String)>, None::<char>);
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => words.extend(current.take()),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.get_or_insert((i, String::new()));
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => current.get_or_insert((i, String::new())).1.push(c),
            (_, '\\') => {
                let word = current.get_or_insert((i, String::new()));
                if let Some((_, next)) = chars.next() {
                    word.1.push(next);
                }
            }
            (_, c) => current.get_or_insert((i, String::new())).1.push(c),
        }
    }
    let in_word = current.is_some();
    words.extend(current);
    Scan { words, open_quote: quote, in_word }
}

/// Tab completion of `before` (the line up to the cursor): where the replaced word starts, and
/// the candidates as (shown, inserted).
pub fn completions(complete: &dyn Complete, before: &str) -> (usize, Vec<(String, String)>) {
    let mut scan = scan(before);
    let (start, partial) = if scan.in_word { scan.words.pop().unwrap_or_default() } else { (before.len(), String::new()) };
    let found: Vec<String> = match scan.words.first() {
        None => complete.commands().into_iter().map(str::to_string).collect(),
        Some((_, command)) => complete.arguments(command, scan.words.len() - 1),
    };
    let mut found: Vec<(String, String)> =
        found.into_iter().filter(|c| c.starts_with(&partial)).map(|c| (c.clone(), format!("{} ", quote(&c)))).collect();
    found.sort();
    found.dedup();
    (start, found)
}

/// One command of a prompt, for `help` and `help COMMAND`.
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// Its arguments, as shown in the overview.
    pub usage: &'static str,
    /// One line.
    pub summary: &'static str,
    /// A paragraph for `help COMMAND`.
    pub details: &'static str,
    /// One example line.
    pub example: &'static str,
}

/// `help` (every command, one line each) or `help TOPIC` (one command, with an example).
pub fn help(commands: &[CommandHelp], topic: &str, keys: &str) -> Result<String> {
    if topic.is_empty() {
        let width = commands.iter().map(|c| c.name.len() + c.usage.len() + 1).max().unwrap_or(0);
        let mut text = String::from("commands (help COMMAND for details and an example):\n");
        for c in commands {
            let head = format!("{} {}", c.name, c.usage);
            text.push_str(&format!("  {:<width$}  {}\n", head.trim_end(), c.summary));
        }
        text.push_str(keys);
        return Ok(text);
    }
    let Some(c) = commands.iter().find(|c| c.name == topic) else {
        let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
        bail!("{}", unknown(topic, &names));
    };
    Ok(format!("{} {}\n  {}\n  {}\n  example: {}", c.name, c.usage, c.summary, c.details, c.example).replace(" \n", "\n"))
}

/// The message for an unknown command, with the nearest known one if it is a likely typo.
pub fn unknown(word: &str, known: &[&str]) -> String {
    match suggest(word, known) {
        Some(near) => format!("unknown command {word:?}; did you mean {near:?}? (try help)"),
        None => format!("unknown command {word:?} (try help)"),
    }
}

/// Renders `value` as one line of JSON (for `--json`).
pub fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// The known command nearest to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (distance(word, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words;

    impl Complete for Words {
        fn commands(&self) -> Vec<&'static str> {
            vec!["share", "status", "get"]
        }
        fn arguments(&self, command: &str, _: usize) -> Vec<String> {
            match command {
                "get" => vec!["notes.txt".into(), "my file.bin".into(), "movie.mkv".into()],
                _ => vec![],
            }
        }
    }

    #[test]
    fn splits_and_suggests() {
        assert_eq!(split("  share  my file.txt "), ("share", "my file.txt"));
        assert_eq!(split("exit"), ("exit", ""));
        assert_eq!(suggest("shar", &["share", "get"]), Some("share"));
        assert_eq!(suggest("xyzzy", &["share", "get"]), None);
        assert!(unknown("stauts", &["status"]).contains("did you mean \"status\""));
    }

    #[test]
    fn words_follow_shell_quoting() {
        assert_eq!(words(r#"get a.iso "my file.bin" it\'s 'x y'"#).unwrap(), ["get", "a.iso", "my file.bin", "it's", "x y"]);
        assert!(words("get \"open").is_err());
        for name in ["plain.txt", "two words", "quote\"d", "back\\slash"] {
            assert_eq!(words(&format!("get {}", quote(name))).unwrap()[1], name);
        }
    }

    #[test]
    fn tab_completes_commands_then_arguments_with_quotes() {
        let (start, found) = completions(&Words, "st");
        assert_eq!((start, found), (0, vec![("status".to_string(), "status ".to_string())]));
        let (start, found) = completions(&Words, "get m");
        assert_eq!(start, 4);
        assert_eq!(found, [("movie.mkv".to_string(), "movie.mkv ".to_string()), ("my file.bin".into(), "\"my file.bin\" ".into())]);
        let (start, found) = completions(&Words, "get notes.txt \"my");
        assert_eq!((start, found.len()), (14, 1));
        assert_eq!(completions(&Words, "get ").1.len(), 3);
    }

    #[test]
    fn help_lists_commands_and_explains_one() {
        let commands = [CommandHelp { name: "get", usage: "<file>...", summary: "download", details: "More.", example: "get a.iso" }];
        assert!(help(&commands, "", "").unwrap().contains("get <file>...  download"));
        assert!(help(&commands, "get", "").unwrap().contains("example: get a.iso"));
        assert!(help(&commands, "gte", "").unwrap_err().to_string().contains("did you mean \"get\""));
    }
}
