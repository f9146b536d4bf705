//! Front ends, used only by the binary: the peer and tracker prompts, one-shot `get` and
//! `seed`, progress bars and `--json` (both subscribe to the engine's events), summaries, the
//! demo, and the console plumbing under them. The engine (`peer`, `tracker`) never draws and
//! never prints; everything a person sees is made here.

pub mod console;
pub mod dashboard;
pub mod demo;
pub mod oneshot;
mod peer_prompt;
pub mod progress;
mod report;
pub mod target;
mod tracker_prompt;

use anyhow::Result;

use crate::peer::{Peer, PeerConfig};
use crate::tracker::{self, TrackerConfig};

/// `p2pq peer ID`: starts the peer and runs its prompt until it leaves.
pub async fn peer_main(config: PeerConfig) -> Result<()> {
    let peer = Peer::start(config).await?;
    let line = format!("peer {} listening on {} (fingerprint {})", peer.id(), peer.local_addr()?, peer.fingerprint().short());
    console::say(&line);
    // The prompt shows at once; the link keeps trying meanwhile and its notices (kept from the
    // start, printed after this line) say how it went. Commands that need the tracker wait for
    // its first attempt themselves (see peer_prompt).
    if !peer.has_tracker() {
        console::say("no tracker: holders come from the DHT, by full id; only files shared with --public are served");
    } else if !peer.tracker_connected() {
        console::say(&format!("connecting to the tracker at {}…", peer.tracker_addr()));
    }
    if let Some(notices) = peer.take_notices() {
        console::print_notices(notices);
    }
    peer_prompt::prompt(&peer).await
}

/// `p2pq tracker`: serves and runs the prompt until `exit` or a signal.
pub async fn tracker_main(config: TrackerConfig, http: Option<std::net::SocketAddr>) -> Result<()> {
    // Bound first, so a dashboard address in use stops the tracker before it starts.
    let dashboard = match http {
        Some(addr) => Some(dashboard::bind(addr).await?),
        None => None,
    };
    let running = tracker::start(&config).await?;
    console::say(&format!("tracker listening on {} (fingerprint {})", running.addr, running.fingerprint.short()));
    if let Some(notice) = running.buffer_notice() {
        console::say(&notice);
    }
    if let Some((listener, bound)) = dashboard {
        console::say(&format!("dashboard on http://{bound}/ (metrics at /metrics)"));
        let (tracker, shutdown) = (running.tracker.clone(), running.shutdown.clone());
        crate::net::task::spawn(tracing::info_span!("dashboard"), async move {
            if let Err(err) = dashboard::serve(listener, tracker, shutdown).await {
                tracing::warn!("{err:#}");
            }
        });
    }
    tracker_prompt::prompt(&running.tracker, &running.shutdown, &config.state_dir).await;
    running.stop().await;
    Ok(())
}
