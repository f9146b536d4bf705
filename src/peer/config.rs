//! How to run a peer: its configuration, with the defaults the command line shares.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::discovery::dht::Bootstrap;
use crate::protocol;

/// How to run a peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The peer's id (letters, digits, `-`, `_`).
    pub id: String,
    /// The tracker's address.
    pub tracker: SocketAddr,
    /// Other addresses of the same tracker (from a ticket or a host name), tried alongside.
    pub tracker_alternates: Vec<SocketAddr>,
    /// The tracker's certificate to pin; default `CERTS/tracker.crt`.
    pub tracker_cert: Option<PathBuf>,
    /// The tracker's certificate fingerprint to pin (from a ticket); when set, no certificate
    /// file is read.
    pub tracker_pin: Option<protocol::Fingerprint>,
    /// Folder of certificates (the tracker's, and this peer's own).
    pub certs: PathBuf,
    /// Folder `share` takes files from.
    pub data_dir: PathBuf,
    /// Folder downloads land in.
    pub download_dir: PathBuf,
    /// Folder of the peer's own records (its chunk log).
    pub state_dir: PathBuf,
    /// Interval of `alive` heartbeats.
    pub heartbeat: Duration,
    /// Address the endpoint binds (port 0: any free port).
    pub listen: SocketAddr,
    /// Upload limit in bytes per second, across all downloaders.
    pub upload_limit: Option<u64>,
    /// Download limit in bytes per second, across all downloads and holders.
    pub download_limit: Option<u64>,
    /// Chunk requests a download keeps in flight per holder: `None` (the default) follows each
    /// holder's measured rate and round trip; a number fixes it (benches compare depths).
    pub window: Option<usize>,
    /// How long a download with no holder left waits for one (asking discovery again) before
    /// it gives up, keeping what it verified.
    pub stall_timeout: Duration,
    /// More trackers, each registered with, asked and told as the first one is; one going
    /// away is a notice, not an error.
    pub other_trackers: Vec<OtherTracker>,
    /// The Mainline DHT node to run and where it starts; `None` (the default) runs none.
    pub dht: Option<Bootstrap>,
    /// Run with no tracker at all: holders come from the DHT, and only public files are
    /// served (no tracker can vouch for a downloader).
    pub no_tracker: bool,
    /// Ask the home router to map the endpoint's UDP port (UPnP, NAT-PMP/PCP) and tell the
    /// tracker the mapped address. Never tried on loopback; off in [`PeerConfig::in_home`].
    pub port_mapping: bool,
}

/// A further tracker: where it is, and the certificate fingerprint to pin.
#[derive(Clone, Debug)]
pub struct OtherTracker {
    /// Its addresses (one tracker; all are tried at once).
    pub addrs: Vec<SocketAddr>,
    /// Its certificate fingerprint.
    pub pin: protocol::Fingerprint,
}

/// Interval of `alive` heartbeats unless told otherwise (the CLI's default too).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a download waits for a holder when none is left, unless told otherwise (the
/// CLI's default too): long enough for a holder's laptop to wake or its owner to restart it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(180);

impl PeerConfig {
    /// Peer `id` of the tracker at `tracker`, with its certificate in `certs` and everything
    /// else under `home` (`data/`, `downloads/`, `state/`), on a free loopback port, with the
    /// defaults: tracker certificate `certs/tracker.crt`, heartbeat [`HEARTBEAT`], no upload
    /// limit, a window that follows each link, no port mapping. Change what differs with `..`.
    pub fn in_home(id: &str, tracker: SocketAddr, certs: &Path, home: &Path) -> PeerConfig {
        PeerConfig {
            id: id.to_string(),
            tracker,
            tracker_alternates: Vec::new(),
            tracker_cert: None,
            tracker_pin: None,
            certs: certs.to_path_buf(),
            data_dir: home.join("data"),
            download_dir: home.join("downloads"),
            state_dir: home.join("state"),
            heartbeat: HEARTBEAT,
            listen: ([127, 0, 0, 1], 0).into(),
            upload_limit: None,
            download_limit: None,
            window: None,
            stall_timeout: STALL_TIMEOUT,
            other_trackers: Vec::new(),
            dht: None,
            no_tracker: false,
            port_mapping: false,
        }
    }
}
