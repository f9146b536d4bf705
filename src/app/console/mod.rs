//! Prompt plumbing shared by the tracker and the peer: lines in, signals, output out.
//!
//! Input comes one line at a time, and only when asked for ([`Console::next`]), so piped
//! commands run strictly in order. On a terminal a line editor reads it (history, Tab
//! completion, Ctrl-C, Ctrl-D); from a pipe or a file a plain reader does, with no prompt text.
//! Output goes through [`screen`] (re-exported here), which keeps progress bars, messages and
//! the line being typed apart. Each side parses lines into its own command enum and describes
//! its commands with [`CommandHelp`]; this module knows nothing of the commands themselves.

mod diagnostics;
mod editor;
mod gate;
pub mod screen;
mod signals;
mod style;
mod words;

use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

pub use diagnostics::Diagnostic;
pub use screen::{Stream, clear, colour, error, error_line, is_quiet, notices_to_stderr, out, say, set_quiet, warn};
pub use signals::{cancel_on_signal, install_signals, on_signals};
pub use words::{CLEAR_HELP, CommandHelp, completions, help, json_line, quote, suggest, unknown, words};

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
        Console { inputs, ready, asked: false, editing }
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
        Console { inputs, ready, asked: false, editing: false }
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
