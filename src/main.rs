//! The `p2pq` command line: parse, set up diagnostics, hand off.
//!
//! Diagnostics (`-v`, `RUST_LOG`) go through the console like every other line, so they never
//! cut into a progress bar or the line being typed; they stay apart from the transfer logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use p2pq::app::oneshot::{self, Access};
use p2pq::app::target::resolve_or_default;
use p2pq::peer::PeerConfig;
use p2pq::tracker::{Limits, TrackerConfig};

/// Peer-to-peer file sharing with a tracker, over QUIC.
#[derive(Parser)]
#[command(name = "p2pq", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr: no progress bars, warnings or notices.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
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
        /// An address other machines reach this tracker at, HOST[:PORT], put in tickets
        /// (repeat for several) [default: every interface's address when listening on all].
        #[arg(long, value_name = "HOST[:PORT]")]
        advertise: Vec<String>,
        /// Most live peers; past it a newcomer is told "tracker full" and when to try again.
        #[arg(long, default_value = "200000", value_parser = clap::value_parser!(u32).range(1..))]
        max_peers: u32,
        /// Most live peers from one IP address (a room behind one NAT fits).
        #[arg(long, default_value = "256", value_parser = clap::value_parser!(u32).range(1..))]
        max_peers_per_ip: u32,
        /// Most peer ids one certificate may register at once.
        #[arg(long, default_value = "8", value_parser = clap::value_parser!(u32).range(1..))]
        max_peers_per_cert: u32,
        /// Seconds a peer turned away at one of these limits waits before trying again (it
        /// spreads them over 2/3 to 4/3 of this).
        #[arg(long, default_value = "45", value_parser = seconds)]
        busy_retry: Duration,
        /// Heartbeats a second taken before peers are asked for a slower pace (and a matching
        /// expiry), in steps of 10, 20 and 25 s; the default holds 25,000 peers at 5 s.
        #[arg(long, default_value = "5000", value_parser = clap::value_parser!(u32).range(1..))]
        heartbeat_budget: u32,
        /// Serve a live web dashboard and Prometheus metrics (/metrics) on this address, e.g.
        /// 127.0.0.1:8080 (it shows the peers' addresses: keep it on loopback unless meant).
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
    },
    /// Run a peer (prompt: share FILE, get FILE, logs request, status, exit).
    Peer {
        /// This peer's id: letters, digits, '-' and '_'.
        #[arg(value_parser = peer_id)]
        id: String,
        #[command(flatten)]
        trust: TrustArgs,
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
        /// Upload limit across all downloaders, bytes per second (e.g. 500K, 2M, 1G).
        #[arg(long, value_parser = p2pq::peer::throttle::parse_rate)]
        upload_limit: Option<u64>,
        /// Download limit across all downloads and holders, bytes per second (e.g. 500K, 2M).
        #[arg(long, value_parser = p2pq::peer::throttle::parse_rate)]
        download_limit: Option<u64>,
        /// Folder of this peer's logs [default: .p2pq/peer-ID].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Seconds a download with no holder left waits for one, asking again, before it
        /// gives up (what it verified is kept).
        #[arg(long, default_value = "180", value_parser = seconds)]
        stall_timeout: Duration,
        #[command(flatten)]
        dht: NetArgs,
    },
    /// Download files and exit: status 0 once every file is verified, 1 if one failed.
    #[command(after_help = "Example:\n  p2pq get some-file.iso --tracker 10.0.0.5:6771 --json")]
    Get {
        /// File names, or id prefixes (as `b3sum` prints ids).
        #[arg(required = true, value_name = "NAME|ID")]
        names: Vec<String>,
        /// For a folder: only the paths this glob keeps (`*.jpg` at any depth, `2024/summer`
        /// from the folder's top); repeatable.
        #[arg(long, value_name = "PATTERN")]
        only: Vec<String>,
        #[command(flatten)]
        link: LinkArgs,
        /// Folder the files land in.
        #[arg(long, default_value = ".")]
        download_dir: PathBuf,
        /// Newline-delimited JSON events on stdout: start, progress, holders, warning, done, error.
        #[arg(long)]
        json: bool,
        /// Seconds a download with no holder left waits for one, asking again, before it
        /// gives up (what it verified is kept).
        #[arg(long, default_value = "180", value_parser = seconds)]
        stall_timeout: Duration,
        /// Download limit across all the files, bytes per second (e.g. 500K, 2M).
        #[arg(long, value_parser = p2pq::peer::throttle::parse_rate)]
        download_limit: Option<u64>,
    },
    /// Share files and serve them until Ctrl-C or SIGTERM.
    #[command(after_help = "Example:\n  p2pq seed notes.txt movie.mkv --data-dir ~/Videos")]
    Seed {
        /// Files to share, as paths inside the data folder.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        #[command(flatten)]
        link: LinkArgs,
        /// Folder the files are taken from (nothing outside it is ever read).
        #[arg(long, default_value = ".")]
        data_dir: PathBuf,
        /// Share publicly: to anyone who knows a file's id (and announced on the DHT), not only
        /// to the tracker's peers. They can also see this machine's address.
        #[arg(long)]
        public: bool,
        /// Also run a tracker for this seed while it runs, on all interfaces port 6771 or
        /// on --with-tracker=ADDR: one command to send, the printed tickets all the other
        /// side needs.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = "0.0.0.0:6771", conflicts_with_all = ["tracker", "no_tracker"])]
        with_tracker: Option<SocketAddr>,
    },
    /// Print shell completions: p2pq completions bash > /etc/bash_completion.d/p2pq
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// A tracker and two peers in one process: one shares a generated file, the other gets it.
    Demo {
        /// Size of the generated file, in MiB.
        #[arg(long, default_value_t = 512)]
        size_mib: u64,
    },
}

const EXAMPLES: &str = "\
Examples:
  p2pq tracker                      # terminal 1
  p2pq peer 1                       # terminal 2: share notes.txt
  p2pq peer 2                       # terminal 3: get notes.txt
  p2pq seed notes.txt               # share from the current folder until Ctrl-C
  p2pq get notes.txt --json         # download once, for scripts";

/// Where the tracker is and how to trust it: shared by `peer`, `get` and `seed`.
#[derive(Args)]
struct TrustArgs {
    /// The tracker: HOST[:PORT] (port 6771 if none), or a ticket, which also pins the tracker's
    /// certificate [default: 127.0.0.1:6771]. Repeat it for more trackers, each given as a
    /// ticket or as HOST[:PORT]@CERTFILE (its certificate to pin): this peer registers with
    /// all of them and asks them all.
    #[arg(long, value_name = "ADDR|TICKET")]
    tracker: Vec<String>,
    /// Folder of certificates: the tracker's (pinned) and this peer's own.
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// The tracker's certificate to pin [default: CERTS/tracker.crt].
    #[arg(long)]
    tracker_cert: Option<PathBuf>,
}

/// How a one-shot command reaches the tracker.
#[derive(Args)]
struct LinkArgs {
    #[command(flatten)]
    trust: TrustArgs,
    /// A lasting peer id, its certificate kept in CERTS [default: a throwaway one].
    #[arg(long, value_parser = peer_id)]
    id: Option<String>,
    /// Address to serve chunks on [default: any free port].
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    dht: NetArgs,
}

impl LinkArgs {
    /// How the one-shot command reaches the swarm; refused when the DHT flags cannot work.
    fn access(self) -> anyhow::Result<Access> {
        let a = self;
        let TrustArgs { tracker, certs, tracker_cert } = a.trust;
        let (dht, no_tracker) = a.dht.settings();
        let (id, listen) = (a.id, a.listen);
        let mut trackers = tracker.into_iter();
        Ok(Access {
            tracker: trackers.next(),
            more_trackers: trackers.collect(),
            certs,
            tracker_cert,
            id,
            listen,
            stall_timeout: p2pq::peer::STALL_TIMEOUT,
            download_limit: None,
            dht,
            no_tracker,
            public: false,
            port_mapping: !a.dht.no_port_mapping,
        })
    }
}

/// How a peer finds others and is found: the DHT, no tracker, port mapping.
#[derive(Args)]
struct NetArgs {
    /// Run no DHT node. By default one runs, starting from mainline's public bootstrap nodes:
    /// files shared with --public are announced on it, and a get by full id looks there too.
    #[arg(long, conflicts_with_all = ["dht_bootstrap", "no_tracker"])]
    no_dht: bool,
    /// Start the DHT node from these nodes instead of the public ones (a private DHT).
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',')]
    dht_bootstrap: Vec<SocketAddr>,
    /// Run with no tracker at all: holders come from the DHT only (by full id), and only
    /// files shared with --public are served.
    #[arg(long, conflicts_with_all = ["tracker", "tracker_cert"])]
    no_tracker: bool,
    /// Do not ask the home router (UPnP, NAT-PMP/PCP) to forward this peer's UDP port.
    #[arg(long)]
    no_port_mapping: bool,
}

impl NetArgs {
    /// The DHT to run, and whether to run with no tracker.
    fn settings(&self) -> (Option<p2pq::discovery::dht::Bootstrap>, bool) {
        (self.bootstrap(), self.no_tracker)
    }

    fn bootstrap(&self) -> Option<p2pq::discovery::dht::Bootstrap> {
        use p2pq::discovery::dht::Bootstrap;
        match (self.no_dht, self.dht_bootstrap.is_empty()) {
            (true, _) => None,
            (false, false) => Some(Bootstrap::Nodes(self.dht_bootstrap.clone())),
            (false, true) => Some(Bootstrap::Public),
        }
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{text} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn peer_id(text: &str) -> Result<String, String> {
    p2pq::protocol::check_peer_id(text).map(|()| text.to_string())
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error,mainline=off",
        // mainline logs every failed bootstrap as an error; the peer says it once instead.
        (false, 0) => "warn,mainline=off",
        (false, 1) => "p2pq=info,warn,mainline=off",
        (false, _) => "p2pq=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let ansi = p2pq::app::console::colour(p2pq::app::console::Stream::Err);
    let writer = p2pq::app::console::screen::Diagnostics::make;
    let format = p2pq::app::console::Diagnostic::new(verbose);
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).event_format(format).init();
}

async fn peer_config(command: Command) -> anyhow::Result<PeerConfig> {
    let Command::Peer { id, trust, data_dir, download_dir, heartbeat, listen, upload_limit, download_limit, state_dir, stall_timeout, dht } =
        command
    else {
        anyhow::bail!("bad peer arguments");
    };
    let (port_mapping, (dht, no_tracker)) = (!dht.no_port_mapping, dht.settings());
    let TrustArgs { tracker, certs, tracker_cert } = trust;
    let target = resolve_or_default(tracker.first().map(String::as_str)).await?;
    let other_trackers = p2pq::app::target::resolve_others(tracker.get(1..).unwrap_or_default()).await?;
    let tracker = target.first();
    Ok(PeerConfig {
        download_dir: download_dir.unwrap_or_else(|| data_dir.join(format!("peer-{id}"))),
        state_dir: state_dir.unwrap_or_else(|| PathBuf::from(".p2pq").join(format!("peer-{id}"))),
        listen: listen.unwrap_or(p2pq::net::addrs::ANYWHERE),
        id,
        tracker,
        tracker_alternates: target.addrs[1..].to_vec(),
        tracker_cert,
        tracker_pin: target.pin,
        certs,
        data_dir,
        heartbeat,
        upload_limit,
        download_limit,
        window: None,
        stall_timeout,
        other_trackers,
        dht,
        no_tracker,
        port_mapping,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    p2pq::app::console::install_signals();
    p2pq::app::console::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Get { names, only, link, download_dir, json, stall_timeout, download_limit } => match link.access() {
            Ok(access) => {
                exit_code(oneshot::get(Access { stall_timeout, download_limit, ..access }, names, only, download_dir, json).await)
            }
            Err(err) => Err(err),
        },
        Command::Seed { files, link, data_dir, public, with_tracker } => match link.access() {
            Ok(access) => exit_code(oneshot::seed(Access { public, ..access }, files, data_dir, with_tracker).await),
            Err(err) => Err(err),
        },
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "p2pq", &mut std::io::stdout());
            Ok(())
        }
        Command::Tracker {
            listen,
            certs,
            peer_timeout,
            state_dir,
            advertise,
            max_peers,
            max_peers_per_ip,
            max_peers_per_cert,
            busy_retry,
            heartbeat_budget,
            http,
        } => {
            let limits = Limits {
                max_peers: max_peers as usize,
                max_peers_per_ip: max_peers_per_ip as usize,
                max_ids_per_cert: max_peers_per_cert as usize,
                busy_retry,
                heartbeats_per_second: heartbeat_budget as usize,
            };
            p2pq::app::tracker_main(TrackerConfig { listen, certs, state_dir, peer_timeout, advertise, limits }, http).await
        }
        Command::Demo { size_mib } => exit_code(p2pq::app::demo::run(size_mib).await),
        peer => match peer_config(peer).await {
            Ok(config) => p2pq::app::peer_main(config).await,
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Status>() {
            Some(Status(code)) => ExitCode::from(*code),
            None => {
                p2pq::app::console::error(&err);
                ExitCode::FAILURE
            }
        },
    }
}

/// A non-zero exit status whose reasons were already printed.
#[derive(Debug)]
struct Status(u8);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Status {}

fn exit_code(status: anyhow::Result<u8>) -> anyhow::Result<()> {
    match status? {
        0 => Ok(()),
        code => Err(Status(code).into()),
    }
}
