//! Prompt plumbing shared by the tracker and the peer: lines in, signals, one-line errors out.
//!
//! Standard input is read on a thread of its own (reading a terminal blocks) and handed to the
//! async side one line at a time: the next prompt is shown only once the previous command has
//! finished, so piped commands run strictly in order. When stdin is not a terminal there is no
//! prompt text. Each side parses lines into its own command enum; this module knows nothing of
//! the commands themselves.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest command line read, in bytes.
const MAX_LINE: u64 = 64 * 1024;

/// Lines typed by the user, one at a time.
pub struct Console {
    lines: mpsc::Receiver<String>,
    ready: std_mpsc::Sender<()>,
    /// Whether stdin is a terminal (prompts and progress bars only then).
    pub interactive: bool,
}

impl Console {
    /// Starts reading stdin; `prompt` is shown before each line on a terminal.
    pub fn start(prompt: String) -> Console {
        let interactive = std::io::stdin().is_terminal();
        let (line_tx, lines) = mpsc::channel(1);
        let (ready, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || read_lines(prompt, interactive, line_tx, ready_rx))
            .ok();
        Console { lines, ready, interactive }
    }

    /// The next line, or `None` at end of input. Asks for the line only when called, so the
    /// prompt follows the previous command's output.
    pub async fn next_line(&mut self) -> Option<String> {
        self.ready.send(()).ok()?;
        self.lines.recv().await
    }
}

fn read_lines(prompt: String, interactive: bool, lines: mpsc::Sender<String>, ready: std_mpsc::Receiver<()>) {
    let stdin = std::io::stdin();
    while ready.recv().is_ok() {
        if interactive {
            print!("{prompt}");
            let _ = std::io::stdout().flush();
        }
        let mut line = String::new();
        // A line longer than any command is cut, so endless input cannot exhaust memory.
        match stdin.lock().take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if lines.blocking_send(line.trim().to_string()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Prints a command's result to stdout.
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Prints an error as one line on stderr: `error: what failed: why`.
pub fn error(err: &anyhow::Error) {
    let text = format!("{err:#}").replace('\n', " ");
    eprintln!("error: {}", crate::logbook::printable(&text));
}

/// Cancels `token` on the first Ctrl-C or SIGTERM; one listener for the process's whole life, so
/// no signal is missed between commands.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            _ = signal() => token.cancel(),
            _ = token.cancelled() => {}
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Splits a command line into its first word and the rest, trimmed.
pub fn split(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    }
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

    #[test]
    fn splits_and_suggests() {
        assert_eq!(split("  share  my file.txt "), ("share", "my file.txt"));
        assert_eq!(split("exit"), ("exit", ""));
        assert_eq!(suggest("shar", &["share", "get"]), Some("share"));
        assert_eq!(suggest("xyzzy", &["share", "get"]), None);
    }
}
