//! The only code that draws: progress of downloads and of hashing for `share`, fed by engine
//! events over a channel.
//!
//! The download engine sends [`Progress`] events and never prints. One task per download turns
//! them into what the user asked for ([`Show`]): an indicatif bar in the process's one
//! `MultiProgress` (bytes, rate, ETA, holders), warning lines, or JSON lines for scripts. (The
//! engine itself keeps the table of downloads under way that `status` reads.)
//!
//! The `MultiProgress` draws into `StatusArea`, an indicatif `TermLike` that collects each
//! frame's lines and hands them to the console's status area, so bars sit above the prompt
//! and never cut into the line being typed or into other output.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::console::{self, Stream, screen};
pub use crate::peer::events::{Hashing, Progress};
use crate::protocol::FileInfo;
use status_area::StatusArea;

mod status_area;

/// Redraws of the bars per second: smooth enough to read a rate, few enough that redrawing the
/// prompt with them does not flicker.
const REFRESH_HZ: u8 = 8;
/// Shortest interval between two JSON progress lines of one download.
const JSON_INTERVAL: Duration = Duration::from_millis(200);
/// Columns given to the file name in a bar.
const NAME_COLUMNS: usize = 20;
/// Smallest file whose hashing gets a bar: smaller ones hash in well under a second.
const HASH_BAR_FROM: u64 = 32 << 20;
/// Files a folder must hold to get a hashing bar whatever its size (many small files take
/// seconds too).
const HASH_BAR_FILES: u64 = 1000;

/// How downloads show their progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// A bar per download above the prompt (a terminal is watching).
    Bars,
    /// Only warnings, as lines on stderr (scripts reading the prompt's output).
    Lines,
    /// JSON lines on stdout: `start`, `progress`, `warning` (see `p2pq get --json`).
    Json,
    /// Nothing (`-q`).
    Silent,
}

/// Runs `peer.get_only(query, only)` showing its progress as `show` says; returns once the last of
/// it is shown.
pub async fn get(
    peer: &crate::peer::Peer,
    query: &str,
    only: Option<&crate::content::folder::only::Only>,
    show: Show,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<crate::peer::Got> {
    let (events, drawing) = spawn(show);
    let got = peer.get_only(query, only, Some(events), cancel).await;
    let _ = drawing.await;
    got
}

/// Runs `peer.share_with(name)` showing its hashing as `show` says (a bar for big files on a
/// terminal); returns once the bar is gone.
pub async fn share(
    peer: &crate::peer::Peer,
    name: &str,
    show: Show,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<crate::peer::Shared> {
    let (events, rx) = mpsc::unbounded_channel();
    let drawing = crate::net::task::spawn(tracing::debug_span!("hashing progress"), render_hashing(rx, show));
    let shared = peer.share_with(name, Some(events), cancel).await;
    let _ = drawing.await;
    shared
}

/// Shows one file's or folder's hashing: a bar (bytes, rate, ETA; files for a folder) while it
/// waits for a hasher and hashes, for a big file or a folder of many files.
async fn render_hashing(mut events: mpsc::UnboundedReceiver<Hashing>, show: Show) {
    let (mut bar, mut named): (Option<ProgressBar>, Option<(String, u64)>) = (None, None);
    while let Some(event) = events.recv().await {
        match event {
            Hashing::Queued { name, size } | Hashing::Start { name, size } if bar.is_none() => {
                if show == Show::Bars && size >= HASH_BAR_FROM {
                    bar = Some(new_bar(&name, size, "hashing"));
                }
                named = Some((name, size));
            }
            Hashing::Queued { .. } | Hashing::Start { .. } => {}
            Hashing::Files { done, total } => {
                if let (None, Some((name, size)), true) = (&bar, &named, show == Show::Bars && total >= HASH_BAR_FILES) {
                    bar = Some(new_bar(name, *size, "hashing"));
                }
                if let Some(bar) = &bar {
                    bar.set_message(format!("hashing, {done}/{total} files"));
                }
            }
            Hashing::Hashed { bytes } => {
                if let Some(bar) = &bar {
                    bar.inc(bytes);
                }
            }
            Hashing::Done => break,
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        board().remove(&bar);
    }
}

/// Starts the task that shows a download's events as `show` says; it ends when the sender is
/// dropped (the download is over).
pub fn spawn(show: Show) -> (mpsc::UnboundedSender<Progress>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, crate::net::task::spawn(tracing::debug_span!("progress"), render(rx, show)))
}

async fn render(mut events: mpsc::UnboundedReceiver<Progress>, show: Show) {
    let mut view: Option<View> = None;
    while let Some(event) = events.recv().await {
        match (&mut view, event) {
            (_, Progress::Found(file)) => view = Some(View::new(show, &file)),
            (Some(view), event) => view.show(&event),
            (None, _) => {}
        }
    }
    if let Some(mut view) = view {
        view.end();
    }
}

/// How one download is being shown.
struct View {
    show: Show,
    file: FileInfo,
    bar: Option<ProgressBar>,
    last_json: Option<Instant>,
    /// Bytes verified so far, those an earlier attempt left, the file's size, and when the
    /// view started: for JSON lines.
    bytes: u64,
    resumed: u64,
    size: u64,
    started: Instant,
    /// Holders working, and for a folder its files in place of all: the bar's message.
    holders: usize,
    /// Of the holders, how many were found on the DHT.
    from_dht: usize,
    files: Option<(u64, u64)>,
}

impl View {
    fn new(show: Show, file: &FileInfo) -> View {
        let (bar, last_json, files) = (None, None, None);
        View {
            show,
            file: file.clone(),
            bar,
            last_json,
            bytes: 0,
            resumed: 0,
            size: file.size,
            started: Instant::now(),
            holders: 0,
            from_dht: 0,
            files,
        }
    }

    /// The bar's message: `3/120 files, 2 peers`, or the peers alone.
    fn label(&self) {
        let Some(bar) = &self.bar else { return };
        match self.files {
            Some((done, total)) => bar.set_message(format!("{done}/{total} files, {}", holders_text(self.holders, self.from_dht))),
            None => bar.set_message(holders_text(self.holders, self.from_dht)),
        }
    }

    fn show(&mut self, event: &Progress) {
        match event {
            Progress::Start { size, .. } => self.size = *size,
            Progress::Chunk { bytes } => self.bytes += bytes,
            Progress::Resumed { bytes } => (self.bytes, self.resumed) = (self.bytes + bytes, *bytes),
            _ => {}
        }
        match (self.show, event) {
            (Show::Silent, _) => {}
            (Show::Json, _) => self.json(event),
            (_, Progress::Note(note)) => console::warn(note),
            (Show::Bars, Progress::Start { size, holders, .. }) => {
                self.holders = *holders;
                self.bar = Some(new_bar(&self.file.name, *size, &holders_text(*holders, 0)));
            }
            (Show::Bars, Progress::Chunk { bytes }) => {
                if let Some(bar) = &self.bar {
                    bar.inc(*bytes);
                }
            }
            (Show::Bars, Progress::Resumed { bytes }) => {
                if let Some(bar) = &self.bar {
                    // Where the bar starts, not a burst of speed.
                    bar.inc(*bytes);
                    bar.reset_eta();
                }
            }
            (Show::Bars, Progress::Holders(n)) => self.holders = *n,
            (Show::Bars, Progress::FromDht(n)) => {
                self.from_dht = *n;
                self.label();
            }
            (Show::Bars, Progress::Files { done, total }) => {
                self.files = Some((*done, *total));
                self.label();
            }
            (Show::Bars, Progress::Done) => self.end(),
            (Show::Lines, _) | (Show::Bars, Progress::Found(_)) => {}
        }
    }

    fn json(&mut self, event: &Progress) {
        let (name, id) = (&self.file.name, self.file.id.to_hex());
        let line = match event {
            Progress::Start { size, holders, .. } => json!({"event": "start", "name": name, "id": id, "size": size, "holders": holders}),
            Progress::Chunk { .. } => {
                let due = self.last_json.is_none_or(|at| at.elapsed() >= JSON_INTERVAL) || self.bytes >= self.size;
                if !due {
                    return;
                }
                self.last_json = Some(Instant::now());
                let moved = self.bytes - self.resumed.min(self.bytes);
                let rate = (moved as f64 / self.started.elapsed().as_secs_f64().max(1e-3)) as u64;
                json!({"event": "progress", "name": name, "id": id, "bytes": self.bytes, "size": self.size, "bytes_per_sec": rate})
            }
            Progress::Note(note) => json!({"event": "warning", "name": name, "id": id, "message": note}),
            Progress::Holders(n) => {
                // Said with the count found on the DHT, which follows.
                self.holders = *n;
                return;
            }
            Progress::FromDht(n) => json!({"event": "holders", "name": name, "id": id, "holders": self.holders, "from_dht": n}),
            Progress::Files { done, total } => json!({"event": "files", "name": name, "id": id, "done": done, "total": total}),
            Progress::Found(_) | Progress::Done | Progress::Resumed { .. } => return,
        };
        console::out(&line.to_string());
    }

    /// Takes the bar off the board (finished, failed or cancelled alike).
    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            board().remove(&bar);
        }
    }
}

/// The process's one `MultiProgress`, drawing into the console's status area.
fn board() -> &'static MultiProgress {
    static BOARD: OnceLock<MultiProgress> = OnceLock::new();
    BOARD.get_or_init(|| {
        let area = StatusArea::new(screen::set_status);
        MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(Box::new(area), REFRESH_HZ))
    })
}

/// A bar on the board for `name`, with `message` after the ETA.
fn new_bar(name: &str, size: u64, message: &str) -> ProgressBar {
    let bar = board().add(ProgressBar::new(size));
    let template = if console::colour(Stream::Err) {
        "{prefix:.bold} {bar:24.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}  ETA {eta:<4} {msg}"
    } else {
        "{prefix} [{bar:24}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}  ETA {eta:<4} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(fit(&crate::logbook::printable(name), NAME_COLUMNS));
    bar.set_message(message.to_string());
    bar
}

/// The bar's last column: how many peers work for the download, or that it waits for one.
fn holders_text(holders: usize, from_dht: usize) -> String {
    let text = match holders {
        0 => "waiting for holders".to_string(),
        1 => "1 peer".to_string(),
        n => format!("{n} peers"),
    };
    if from_dht == 0 { text } else { format!("{text} ({from_dht} from the DHT)") }
}

/// `text` cut or padded to exactly `columns` columns.
fn fit(text: &str, columns: usize) -> String {
    let cut = terminal::truncate_str(text, columns, "…");
    let pad = columns.saturating_sub(terminal::measure_text_width(&cut));
    format!("{cut}{}", " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_their_column() {
        assert_eq!(fit("a.iso", 8), "a.iso   ");
        assert_eq!(terminal::measure_text_width(&fit("a-very-long-file-name.iso", 10)), 10);
    }
}
