//! The `p2pq` command line: parse, set up diagnostics, hand off.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use p2pq::peer::PeerConfig;
use p2pq::tracker::TrackerConfig;

/// Peer-to-peer file sharing with a tracker, over QUIC.
#[derive(Parser)]
#[command(name = "p2pq", version, about, long_about = None)]
struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracker (prompt: logs request, logs-all, logs_file NAME, peers, files, exit).
    Tracker {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6771")]
        listen: SocketAddr,
        /// Folder of the tracker's certificate and key (made on first start).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
        /// Seconds of silence after which a peer is dropped.
        #[arg(long, default_value = "15", value_parser = seconds)]
        peer_timeout: Duration,
        /// Folder of the tracker's event log.
        #[arg(long, default_value = ".p2pq/tracker")]
        state_dir: PathBuf,
    },
    /// Run a peer (prompt: share FILE, get FILE, logs request, status, exit).
    Peer {
        /// This peer's id: letters, digits, '-' and '_'.
        #[arg(value_parser = peer_id)]
        id: String,
        /// The tracker's address.
        #[arg(long, default_value = "127.0.0.1:6771")]
        tracker: SocketAddr,
        /// Folder of certificates: the tracker's (pinned) and this peer's own.
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
        /// The tracker's certificate to pin [default: CERTS/tracker.crt].
        #[arg(long)]
        tracker_cert: Option<PathBuf>,
        /// Folder `share` takes files from.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Folder downloads land in [default: data/peer-ID].
        #[arg(long)]
        download_dir: Option<PathBuf>,
        /// Seconds between heartbeats.
        #[arg(long, default_value = "5", value_parser = seconds)]
        heartbeat: Duration,
        /// Address to serve chunks on [default: any free port on all interfaces].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Folder of this peer's logs [default: .p2pq/peer-ID].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// A tracker and two peers in one process: one shares a generated file, the other gets it.
    Demo {
        /// Size of the generated file, in MiB.
        #[arg(long, default_value_t = 128)]
        size_mib: u64,
    },
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{text} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn peer_id(text: &str) -> Result<String, String> {
    p2pq::wire::check_peer_id(text).map(|()| text.to_string())
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "p2pq=info,warn",
        (false, _) => "p2pq=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn peer_config(command: Command) -> Option<PeerConfig> {
    let Command::Peer { id, tracker, certs, tracker_cert, data_dir, download_dir, heartbeat, listen, state_dir } = command else {
        return None;
    };
    let unspecified: SocketAddr = if tracker.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { "[::]:0".parse().ok()? };
    Some(PeerConfig {
        download_dir: download_dir.unwrap_or_else(|| data_dir.join(format!("peer-{id}"))),
        state_dir: state_dir.unwrap_or_else(|| PathBuf::from(".p2pq").join(format!("peer-{id}"))),
        listen: listen.unwrap_or(unspecified),
        id,
        tracker,
        tracker_cert,
        certs,
        data_dir,
        heartbeat,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Tracker { listen, certs, peer_timeout, state_dir } => {
            p2pq::tracker::main(TrackerConfig { listen, certs, state_dir, peer_timeout }).await
        }
        Command::Demo { size_mib } => p2pq::demo::run(size_mib << 20).await,
        peer => match peer_config(peer) {
            Some(config) => p2pq::peer::main(config).await,
            None => Err(anyhow::anyhow!("bad peer arguments")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            p2pq::console::error(&err);
            ExitCode::FAILURE
        }
    }
}
