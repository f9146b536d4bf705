//! The only code that draws: progress bars fed by download events over a channel.
//!
//! The download engine sends [`Progress`] events and never prints. This task turns them into an
//! indicatif bar (bytes, rate, ETA, holders) when a person is watching, and into plain warning
//! lines on stderr otherwise, so scripts see no redraws.

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a download reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The manifest is in; chunks start flowing from `holders` peers.
    Start {
        /// File name.
        name: String,
        /// File size.
        size: u64,
        /// Holders connected.
        holders: usize,
    },
    /// A verified chunk was written.
    Chunk {
        /// Its length.
        bytes: u64,
    },
    /// Something the user should know (a holder dropped or unreachable).
    Note(String),
    /// Every chunk is in.
    Done,
}

/// Starts the drawing task; bars only when `draw` (a terminal is watching).
pub fn spawn(draw: bool) -> (mpsc::UnboundedSender<Progress>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(render(rx, draw)))
}

async fn render(mut events: mpsc::UnboundedReceiver<Progress>, draw: bool) {
    let mut bar: Option<ProgressBar> = None;
    while let Some(event) = events.recv().await {
        match event {
            Progress::Start { name, size, holders } if draw => bar = Some(new_bar(&name, size, holders)),
            Progress::Start { .. } => {}
            Progress::Chunk { bytes } => {
                if let Some(bar) = &bar {
                    bar.inc(bytes);
                }
            }
            Progress::Note(note) => match &bar {
                Some(bar) => bar.println(format!("warning: {note}")),
                None => eprintln!("warning: {}", crate::logbook::printable(&note)),
            },
            Progress::Done => {
                if let Some(bar) = bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.abandon();
    }
}

fn new_bar(name: &str, size: u64, holders: usize) -> ProgressBar {
    let bar = ProgressBar::new(size);
    let template = "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let peers = if holders == 1 { "1 peer".to_string() } else { format!("{holders} peers") };
    bar.set_message(format!("{} from {peers}", crate::logbook::printable(name)));
    bar
}
