//! The line editor of the prompts (rustyline): arrow keys, history kept across runs, Tab
//! completion, Ctrl-C and Ctrl-D.
//!
//! It runs on a thread of its own, one `readline` per request from the async side. Output from
//! elsewhere reaches the terminal through the editor's external printer (see `screen`), which
//! clears the line being typed, prints, and redraws it; `gate` keeps that output in order. The terminal mode is saved first and
//! restored on [`close`], so leaving while a `readline` waits never leaves the terminal raw.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::config::{ColorMode, CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, ExternalPrinter};
use tokio::sync::mpsc;

use super::gate::{self, Gate, Phases};
use super::screen::{self, Stream, Style};
use super::{Complete, Input, Setup};

/// Lines of history kept.
const HISTORY_SIZE: usize = 1000;

/// Whether a `readline` is waiting for the user right now.
static READING: AtomicBool = AtomicBool::new(false);
/// The terminal mode before the editor first touched it.
#[cfg(unix)]
static SAVED_MODE: Mutex<Option<rustix::termios::Termios>> = Mutex::new(None);

/// The editor's view of a prompt: completion, the coloured prompt, and the line as typed.
struct Helper {
    complete: Option<Arc<dyn Complete>>,
    /// The line as last drawn: what Ctrl-C dropped, so the screen can account for it.
    typed: Mutex<String>,
    /// Told when the prompt is drawn and when a line is accepted.
    phases: Arc<Phases>,
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let Some(complete) = &self.complete else { return Ok((pos, Vec::new())) };
        let (start, found) = super::completions(complete.as_ref(), &line[..pos]);
        Ok((start, found.into_iter().map(|(display, replacement)| Pair { display, replacement }).collect()))
    }
}

impl Hinter for Helper {
    type Hint = String;
}

impl Validator for Helper {
    fn validate(&self, _: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        self.phases.accepted();
        Ok(ValidationResult::Valid(None))
    }
}

impl rustyline::Helper for Helper {}

impl Highlighter for Helper {
    fn highlight<'l>(&self, line: &'l str, _: usize) -> Cow<'l, str> {
        *self.typed.lock().unwrap_or_else(|p| p.into_inner()) = line.to_string();
        Cow::Borrowed(line)
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _: bool) -> Cow<'b, str> {
        if self.phases.prompt_drawn() {
            screen::resume();
        }
        Cow::Owned(screen::paint(Stream::Out, Style::Prompt, prompt))
    }

    fn highlight_char(&self, _: &str, _: usize, _: CmdKind) -> bool {
        // Redraw through `highlight` on every key, so `typed` is always the line on screen.
        true
    }
}

/// A line editor ready to run on its own thread.
pub(super) struct Reader {
    editor: Editor<Helper, FileHistory>,
    phases: Arc<Phases>,
    prompt: String,
    history: Option<PathBuf>,
}

impl Reader {
    /// Sets up the editor and loads the history; fails if the terminal cannot be edited.
    pub(super) fn new(setup: &Setup) -> rustyline::Result<Reader> {
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .max_history_size(HISTORY_SIZE)?
            .history_ignore_dups(true)?
            .history_ignore_space(true)
            .auto_add_history(false)
            // The helper decides on colours itself (NO_COLOR, terminals); it also needs to see
            // every redraw of the line.
            .color_mode(ColorMode::Forced)
            .build();
        let mut editor = Editor::with_config(config)?;
        let phases = Arc::new(Phases::default());
        let printer = Gate::new(Rusty(Box::new(editor.create_external_printer()?)), phases.clone());
        editor.set_helper(Some(Helper { complete: setup.complete.clone(), typed: Mutex::default(), phases: phases.clone() }));
        if let Some(path) = &setup.history {
            let _ = editor.load_history(path);
        }
        save_mode();
        screen::attach(Box::new(ToPrinter(printer)));
        Ok(Reader { editor, phases, prompt: setup.prompt.clone(), history: setup.history.clone() })
    }

    /// Reads one line per `ready` until end of input or until nobody listens.
    pub(super) fn run(mut self, inputs: mpsc::Sender<Input>, ready: std_mpsc::Receiver<()>) {
        while ready.recv().is_ok() {
            let input = match typed_ahead() {
                Some(line) => self.typed_ahead(line),
                None => self.read_line(),
            };
            let end = input == Input::End;
            if inputs.blocking_send(input).is_err() || end {
                return;
            }
        }
    }

    /// A line typed while no `readline` ran (before the prompt first showed, or during a
    /// command): already echoed by the terminal; shown again after the prompt, like one typed there.
    fn typed_ahead(&mut self, line: String) -> Input {
        screen::emit(Stream::Out, &format!("{}{line}", screen::paint(Stream::Out, Style::Prompt, &self.prompt)));
        self.remember(&line);
        Input::Line(line.trim().to_string())
    }

    fn read_line(&mut self) -> Input {
        READING.store(true, Ordering::SeqCst);
        self.phases.starting();
        let read = self.editor.readline(&self.prompt);
        self.phases.stopped();
        READING.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                screen::entered(&self.prompt, &line);
                self.remember(&line);
                Input::Line(line.trim().to_string())
            }
            Err(ReadlineError::Interrupted) => {
                let typed = self.typed();
                screen::entered(&self.prompt, &typed);
                Input::Interrupted { typed: !typed.trim().is_empty() }
            }
            Err(_) => {
                screen::entered(&self.prompt, "");
                Input::End
            }
        }
    }

    fn typed(&self) -> String {
        self.editor.helper().map(|h| h.typed.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default()
    }

    /// Adds the line to the history and appends it to the file at once, so history survives
    /// however the program ends.
    fn remember(&mut self, line: &str) {
        if line.trim().is_empty() || matches!(self.editor.add_history_entry(line), Ok(false)) {
            return;
        }
        if let Some(path) = &self.history
            && let Err(err) = self.editor.append_history(path)
        {
            tracing::debug!("cannot save history to {}: {err}", path.display());
        }
    }
}

/// A whole line waiting in the terminal's own line buffer, typed while the terminal was in its
/// normal (canonical) mode: before the first prompt, or while a command ran.
///
/// The editor reads the terminal in blocks and drops what follows the line it returns (its
/// read buffer lives only as long as one `readline`), so several lines typed ahead would reach
/// it at once and all but the first would be lost. In canonical mode the terminal counts only
/// complete lines as waiting (`FIONREAD`), and one `read` returns at most one line: taking them
/// here, one per request, runs each in order.
#[cfg(unix)]
fn typed_ahead() -> Option<String> {
    let stdin = std::io::stdin();
    let canonical = rustix::termios::tcgetattr(&stdin).is_ok_and(|mode| mode.local_modes.contains(rustix::termios::LocalModes::ICANON));
    if !canonical || rustix::io::ioctl_fionread(&stdin).unwrap_or(0) == 0 {
        return None;
    }
    let mut line = vec![0u8; TYPED_AHEAD_MAX];
    let n = rustix::io::read(&stdin, &mut line).ok().filter(|&n| n > 0)?;
    line.truncate(n);
    Some(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(not(unix))]
fn typed_ahead() -> Option<String> {
    None
}

/// Longest line the terminal buffers in canonical mode (Linux: 4095 bytes and the newline).
#[cfg(unix)]
const TYPED_AHEAD_MAX: usize = 4096;

/// rustyline's external printer.
struct Rusty(Box<dyn ExternalPrinter + Send>);

impl gate::Print for Rusty {
    fn print(&mut self, text: String) {
        let _ = self.0.print(text);
    }
}

/// What the screen's writer prints through.
struct ToPrinter(Gate<Rusty>);

impl screen::Printer for ToPrinter {
    fn print(&mut self, text: String) {
        self.0.print(text);
    }

    fn due(&mut self) -> Option<std::time::Duration> {
        self.0.due()
    }

    fn flush(&mut self) {
        self.0.flush();
    }

    fn resume(&mut self) {
        self.0.resume();
    }
}

/// Erases the status area and, if a `readline` is still waiting (leaving on a signal or a
/// refusal), clears its prompt and restores the terminal mode.
pub(super) fn close() {
    let reading = READING.load(Ordering::SeqCst);
    screen::detach(reading);
    if reading {
        restore_mode();
    }
}

#[cfg(unix)]
fn save_mode() {
    let mut saved = SAVED_MODE.lock().unwrap_or_else(|p| p.into_inner());
    if saved.is_none() {
        *saved = rustix::termios::tcgetattr(std::io::stdin()).ok();
    }
}

#[cfg(unix)]
fn restore_mode() {
    if let Some(mode) = SAVED_MODE.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, mode);
    }
}

#[cfg(not(unix))]
fn save_mode() {}

#[cfg(not(unix))]
fn restore_mode() {}
