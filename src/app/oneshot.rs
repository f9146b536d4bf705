//! `p2pq get` and `p2pq seed`: one command, no prompt, the same [`Peer`] underneath.
//!
//! A one-shot peer registers under a throwaway id (`get-3fa9c1`) with a certificate made for
//! this run only, unless `--id` asks for a lasting identity. Its results go to stdout (or JSON
//! lines with `--json`), notices and bars to stderr, and the exit status says whether every
//! file arrived verified: 0 yes, 1 no, 130 interrupted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::Show;
use super::report;
use super::target::{self, TrackerTarget};
use crate::app::console;
use crate::content::folder::only::Only;
use crate::discovery::ticket::Ticket;
use crate::peer::{Got, Peer, PeerConfig};
use crate::tracker::TrackerConfig;

/// How long a one-shot peer waits to register before giving up on the tracker.
const REGISTER_WAIT: Duration = Duration::from_secs(10);
/// Heartbeat of one-shot peers.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Exit status when Ctrl-C or SIGTERM stopped the command (128 + SIGINT, as shells do).
pub const INTERRUPTED: u8 = 130;

/// How a one-shot peer reaches the tracker.
#[derive(Clone, Debug)]
pub struct Access {
    /// The tracker as typed: `HOST[:PORT]` or a ticket [default: 127.0.0.1:6771]; a ticket
    /// among `get`'s names takes its place.
    pub tracker: Option<String>,
    /// Further trackers, each a ticket or `HOST[:PORT]@CERTFILE`.
    pub more_trackers: Vec<String>,
    /// Folder of certificates: the tracker's, and this peer's if `id` is given.
    pub certs: PathBuf,
    /// The tracker's certificate to pin [default: CERTS/tracker.crt].
    pub tracker_cert: Option<PathBuf>,
    /// A lasting peer id (its certificate kept in `certs`); a throwaway one otherwise.
    pub id: Option<String>,
    /// Address to serve on [default: any free port].
    pub listen: Option<SocketAddr>,
    /// How long a download with no holder left waits for one.
    pub stall_timeout: Duration,
    /// Download limit in bytes per second, across every file of the command.
    pub download_limit: Option<u64>,
    /// The DHT node to run, if any: holders are looked for there too, public files announced.
    pub dht: Option<crate::discovery::dht::Bootstrap>,
    /// Run with no tracker at all (holders from the DHT only).
    pub no_tracker: bool,
    /// Share publicly (`seed --public`): to anyone who knows the id, not only the tracker's peers.
    pub public: bool,
    /// Map the port on the home router (off with `--no-port-mapping`).
    pub port_mapping: bool,
}

/// `p2pq get NAME|ID... [--only PATTERN]...`: downloads every file at once into `download_dir`; the exit status.
pub async fn get(access: Access, names: Vec<String>, only: Vec<String>, download_dir: PathBuf, json: bool) -> Result<u8> {
    console::notices_to_stderr();
    let only = if only.is_empty() { None } else { Some(Arc::new(Only::new(&only)?)) };
    let home = Scratch::new("get")?;
    let target = match ticket_target(&names).await? {
        Some(target) => target,
        None => target::resolve_or_default(access.tracker.as_deref()).await?,
    };
    let peer = match start(&access, &target, &home, "get", Path::new("."), &download_dir).await {
        Ok(peer) => peer,
        Err(err) if json => {
            // A script reading stdout sees one result per file even when nothing could start.
            for name in &names {
                console::out(&json!({"event": "error", "query": name, "message": format!("{err:#}")}).to_string());
            }
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    let show = match (json, console::is_quiet()) {
        (true, _) => Show::Json,
        (false, true) => Show::Silent,
        (false, false) if std::io::IsTerminal::is_terminal(&std::io::stderr()) => Show::Bars,
        (false, false) => Show::Lines,
    };
    let cancel = CancellationToken::new();
    console::on_signals(cancel.clone(), None);
    let mut gets = JoinSet::new();
    for name in names {
        let (peer, cancel, only) = (peer.clone(), cancel.clone(), only.clone());
        gets.spawn(async move {
            let got = super::progress::get(&peer, &name, only.as_deref(), show, &cancel).await;
            (name, got)
        });
    }
    let failed = report_gets(gets, json, &cancel).await?;
    peer.exit().await;
    if cancel.is_cancelled() && failed > 0 {
        console::error_line("interrupted; what was verified is kept, and the same command resumes it");
        return Ok(INTERRUPTED);
    }
    Ok(u8::from(failed > 0))
}

/// Prints each download's outcome as it ends (a line, or JSON); returns how many failed.
async fn report_gets(mut gets: JoinSet<(String, Result<Got>)>, json: bool, cancel: &CancellationToken) -> Result<usize> {
    let mut failed = 0;
    while let Some(joined) = gets.join_next().await {
        let (name, got) = joined.context("download task failed")?;
        match got {
            Ok(got) if json => console::out(&report::got_json(&got).to_string()),
            Ok(got) => console::out(&report::got_line(&got)),
            Err(err) => {
                failed += 1;
                if json {
                    console::out(&json!({"event": "error", "query": name, "message": format!("{err:#}")}).to_string());
                }
                if !cancel.is_cancelled() {
                    console::error(&err);
                }
            }
        }
    }
    Ok(failed)
}

/// `p2pq seed FILE...`: shares the files from `data_dir` and serves them until Ctrl-C or
/// SIGTERM. With `own_tracker`, it also runs a tracker of its own there for as long as it
/// seeds (with a certificate made for this run), so sending takes one command and the
/// tickets it prints are all the other side needs.
pub async fn seed(access: Access, files: Vec<String>, data_dir: PathBuf, own_tracker: Option<SocketAddr>) -> Result<u8> {
    console::notices_to_stderr();
    if access.no_tracker && !access.public {
        bail!("with --no-tracker only public files are served: add --public");
    }
    let home = Scratch::new("seed")?;
    let Some(listen) = own_tracker else {
        let target = target::resolve_or_default(access.tracker.as_deref()).await?;
        return seed_via(&access, &target, &home, &files, &data_dir).await;
    };
    let config = TrackerConfig {
        listen,
        certs: home.path.join("tracker-certs"),
        state_dir: home.path.join("tracker"),
        peer_timeout: crate::tracker::DEFAULT_PEER_TIMEOUT,
        advertise: Vec::new(),
        limits: crate::tracker::Limits::default(),
    };
    let running = crate::tracker::start(&config).await?;
    console::say(&format!("tracker for this seed listening on {}", running.addr));
    let dial = match running.addr {
        addr if !addr.ip().is_unspecified() => addr,
        SocketAddr::V4(addr) => ([127, 0, 0, 1], addr.port()).into(),
        SocketAddr::V6(addr) => (std::net::Ipv6Addr::LOCALHOST, addr.port()).into(),
    };
    let target = TrackerTarget { addrs: vec![dial], pin: Some(running.fingerprint) };
    let outcome = seed_via(&access, &target, &home, &files, &data_dir).await;
    running.stop().await;
    outcome
}

/// Seeds through the tracker at `target` until Ctrl-C or SIGTERM.
async fn seed_via(access: &Access, target: &TrackerTarget, home: &Scratch, files: &[String], data_dir: &Path) -> Result<u8> {
    let peer = start(access, target, home, "seed", data_dir, &home.path.join("downloads")).await?;
    // Ctrl-C or SIGTERM while hashing stops the hashing and the command.
    console::on_signals(peer.shutdown_token(), None);
    let show = if console::is_quiet() || !std::io::IsTerminal::is_terminal(&std::io::stderr()) { Show::Lines } else { Show::Bars };
    let mut shared = 0;
    for file in files {
        match super::progress::share(&peer, file, show, &peer.shutdown_token()).await {
            Ok(done) => {
                shared += 1;
                console::out(&report::shared_line(&done));
                if access.public {
                    peer.make_public(&done).context("shared, but not publicly")?;
                    console::out(&report::public_line(&done.info, peer.runs_dht()));
                }
                match peer.has_tracker() {
                    true => console::out(&report::ticket_lines(&peer.ticket(&done.info).await)),
                    false => console::out(&format!("on another machine: p2pq get {} --no-tracker", done.info.id.to_hex())),
                }
            }
            Err(_) if peer.shutdown_token().is_cancelled() => {
                peer.exit().await;
                console::error_line(&format!("interrupted while hashing {}; nothing seeded", crate::logbook::printable(file)));
                return Ok(INTERRUPTED);
            }
            Err(err) => console::error(&err),
        }
    }
    if shared == 0 {
        peer.exit().await;
        bail!("nothing to seed (files are looked up in the data folder {}; see --data-dir)", data_dir.display());
    }
    console::say(&format!("seeding {shared} file{} as peer {}; Ctrl-C or SIGTERM stops", if shared == 1 { "" } else { "s" }, peer.id()));
    peer.stopping().await;
    peer.exit().await;
    match peer.refusal() {
        Some(reason) => bail!("{reason}"),
        None => Ok(u8::from(shared < files.len())),
    }
}

/// The tracker the tickets among `names` name, if any; tickets naming different trackers are
/// refused (one command talks to one tracker).
async fn ticket_target(names: &[String]) -> Result<Option<TrackerTarget>> {
    let mut tickets = names.iter().filter(|n| Ticket::looks_like(n)).map(|n| Ticket::parse(n));
    let Some(first) = tickets.next() else { return Ok(None) };
    let first = first?;
    for other in tickets {
        if other?.tracker_fingerprint != first.tracker_fingerprint {
            bail!("these tickets name different trackers; run one p2pq get per tracker");
        }
    }
    Ok(Some(target::from_ticket(&first).await?))
}

/// Starts a one-shot peer and waits until the tracker has registered it.
async fn start(access: &Access, target: &TrackerTarget, home: &Scratch, kind: &str, data_dir: &Path, download_dir: &Path) -> Result<Peer> {
    let lasting = access.id.is_some();
    let id = access.id.clone().unwrap_or_else(|| throwaway_id(kind));
    let tracker = target.first();
    let config = PeerConfig {
        id,
        tracker,
        tracker_alternates: target.addrs[1..].to_vec(),
        tracker_pin: target.pin,
        tracker_cert: Some(access.tracker_cert.clone().unwrap_or_else(|| crate::net::tls::paths(&access.certs, "tracker").0)),
        certs: if lasting { access.certs.clone() } else { home.path.join("certs") },
        data_dir: data_dir.to_path_buf(),
        download_dir: download_dir.to_path_buf(),
        state_dir: home.path.join("state"),
        heartbeat: HEARTBEAT,
        listen: access.listen.unwrap_or(crate::net::addrs::ANYWHERE),
        upload_limit: None,
        download_limit: access.download_limit,
        window: None,
        stall_timeout: access.stall_timeout,
        other_trackers: target::resolve_others(&access.more_trackers).await?,
        dht: access.dht.clone(),
        no_tracker: access.no_tracker,
        port_mapping: access.port_mapping,
    };
    let peer = Peer::start(config).await?;
    if !peer.has_tracker() {
        console::say("no tracker: holders come from the DHT, by full id");
        if let Some(notices) = peer.take_notices() {
            console::print_notices(notices);
        }
        return Ok(peer);
    }
    console::say(&format!("connecting to the tracker at {}…", peer.tracker_shown()));
    // Notices from before registration ("unreachable; retrying") would contradict the error
    // this command ends with; only those after it are shown.
    let notices = peer.take_notices();
    // A first attempt that fails (wrong certificate, refused) ends the command at once; a
    // tracker that does not answer at all gets REGISTER_WAIT.
    let first_failed = async {
        peer.tracker_settled().await;
        if peer.tracker_connected() { std::future::pending().await } else { false }
    };
    let registered = tokio::select! {
        _ = peer.registered() => true,
        _ = peer.stopping() => false,
        failed = first_failed => failed,
        _ = tokio::time::sleep(REGISTER_WAIT) => false,
    };
    if !registered {
        let why = peer.refusal().unwrap_or_else(|| match peer.tracker_error() {
            Some(reason) => format!("cannot register with the tracker at {}: {reason}", peer.tracker_shown()),
            None => format!("cannot register with the tracker at {} within {} s", peer.tracker_shown(), REGISTER_WAIT.as_secs()),
        });
        peer.exit().await;
        bail!("{why}");
    }
    if let Some(notices) = notices {
        console::print_notices(notices.resubscribe());
    }
    Ok(peer)
}

/// `KIND-` and six hex digits, different for every run.
fn throwaway_id(kind: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let seed = format!("{}-{nanos}", std::process::id());
    format!("{kind}-{}", &blake3::hash(seed.as_bytes()).to_hex()[..6])
}

/// A folder for one run's certificate and logs, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(kind: &str) -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("p2pq-{}", throwaway_id(kind)));
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throwaway_ids_are_valid_and_differ() {
        let (a, b) = (throwaway_id("get"), throwaway_id("get"));
        assert!(crate::protocol::check_peer_id(&a).is_ok(), "{a}");
        assert!(a.starts_with("get-") && a.len() == 10 && a != b);
    }
}
