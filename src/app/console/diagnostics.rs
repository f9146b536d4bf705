//! How `tracing` diagnostics read on stderr. At the default verbosity the only ones shown are
//! warnings and errors, and a person should see them as every other line the prompts print:
//! `warning: …`, `error: …` (coloured the same way). With `-v` the full tracing format (time,
//! level, spans naming the peer and the file) stays, for whoever is debugging.
//!
//! Wire it as the event format of the `fmt` subscriber (see `main.rs`):
//! `.event_format(p2pq::app::console::Diagnostic::new(verbose))`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::screen::{Stream, Style, paint};

/// The event format of p2pq's diagnostics.
pub struct Diagnostic {
    /// `-v` given: every event in tracing's full format.
    verbose: bool,
    full: Format,
}

impl Diagnostic {
    /// The format for `-v` repeated `verbose` times.
    pub fn new(verbose: u8) -> Diagnostic {
        Diagnostic { verbose: verbose > 0, full: Format::default().with_target(false) }
    }
}

impl<S, N> FormatEvent<S, N> for Diagnostic
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let (label, style) = match *event.metadata().level() {
            Level::ERROR => ("error:", Style::Error),
            Level::WARN => ("warning:", Style::Warning),
            _ => return self.full.format_event(ctx, writer, event),
        };
        if self.verbose {
            return self.full.format_event(ctx, writer, event);
        }
        write!(writer, "{} ", paint(Stream::Err, style, label))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Runs `emit` under a subscriber formatting with [`Diagnostic`]; returns what it wrote.
    fn formatted(verbose: u8, emit: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let make = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(make).event_format(Diagnostic::new(verbose)).finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn warnings_read_like_the_prompts_lines_unless_verbose() {
        let out = formatted(0, || tracing::warn!("stopped sharing a.txt: changed on disk"));
        assert_eq!(out, "warning: stopped sharing a.txt: changed on disk\n");
        let out = formatted(0, || tracing::error!(path = "x.log", "cannot write the log"));
        assert_eq!(out, "error: cannot write the log path=\"x.log\"\n");
        let out = formatted(1, || tracing::warn!("downloaded but not announced"));
        assert!(out.contains(" WARN ") && out.ends_with("downloaded but not announced\n"), "{out:?}");
    }
}
