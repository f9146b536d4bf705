//! Colours: whether a stream gets them (a terminal, no `NO_COLOR`, no `TERM=dumb`) and the
//! few styles the prompts use.

use std::sync::atomic::{AtomicU8, Ordering};

use super::screen::Stream;

/// Colour decision per stream, computed once: 0 unknown, 1 off, 2 on.
static COLOUR: [AtomicU8; 2] = [AtomicU8::new(0), AtomicU8::new(0)];

/// Whether `stream` gets colours: only a terminal, and never when `NO_COLOR` is set (non-empty)
/// or `TERM=dumb`.
pub fn colour(stream: Stream) -> bool {
    let slot = &COLOUR[stream as usize];
    match slot.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
            let on = stream.is_terminal() && !no_color && !dumb;
            slot.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// ANSI styles used by the prompts.
#[derive(Clone, Copy)]
pub enum Style {
    /// Bold red: `error:`.
    Error,
    /// Bold yellow: `warning:`.
    Warning,
    /// Bold green: the prompt.
    Prompt,
    /// Bold.
    Strong,
}

/// `text` in `style` when `stream` gets colours, else as is.
pub fn paint(stream: Stream, style: Style, text: &str) -> String {
    if !colour(stream) {
        return text.to_string();
    }
    let code = match style {
        Style::Error => "1;31",
        Style::Warning => "1;33",
        Style::Prompt => "1;32",
        Style::Strong => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
