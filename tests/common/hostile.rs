//! The attacker: a small QUIC client (and, where a test needs one, a fake tracker or holder)
//! with its own rcgen certificate, speaking p2pq's wire format or breaking it on purpose.
//! Everything it does goes to loopback addresses the test started, bounded in count and time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use p2pq::content::manifest::Manifest;
use p2pq::net::tls::{self, Identity};
use p2pq::protocol::{
    self, Availability, ChunkHeader, FileInfo, FileMatch, Fingerprint, Holder, MAX_FRAME, ManifestReply, PEER_ALPN, PROTOCOL_VERSION,
    PeerRequest, TRACKER_ALPN, TrackerRequest, TrackerResponse,
};
use quinn::{Connection, Endpoint};
use tokio::io::AsyncReadExt;

use super::Proc;

/// How long any one hostile exchange may take.
pub const STEP: Duration = Duration::from_secs(10);

/// A hostile client: its own certificate and a client endpoint on 127.0.0.1.
pub struct Hostile {
    pub identity: Identity,
    pub endpoint: Endpoint,
    _dir: tempfile::TempDir,
}

impl Hostile {
    /// A client with a fresh certificate (must be called inside a tokio runtime).
    pub fn new() -> Hostile {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity::load_or_create(dir.path(), "hostile").expect("hostile certificate");
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("client endpoint");
        Hostile { identity, endpoint, _dir: dir }
    }

    /// Connects with `alpn`, pinning `server`.
    pub async fn connect(&self, addr: SocketAddr, alpn: &[u8], server: Fingerprint) -> Result<Connection> {
        let config = tls::client_config(&self.identity, alpn, server)?;
        let connecting = self.endpoint.connect_with(config, addr, tls::SERVER_NAME)?;
        Ok(tokio::time::timeout(STEP, connecting).await.context("handshake timed out")??)
    }

    /// Connects to the tracker and registers as `id` announcing `files`; returns the connection
    /// and the tracker's answer.
    pub async fn register(&self, swarm: &super::Swarm, id: &str, files: Vec<FileInfo>) -> Result<(Connection, TrackerResponse)> {
        let conn = self.connect(tracker_addr(swarm), TRACKER_ALPN, tracker_fp(swarm.path())).await?;
        let register = TrackerRequest::Register { version: PROTOCOL_VERSION, peer_id: id.into(), files };
        let answer = request(&conn, &register).await?;
        Ok((conn, answer))
    }

    /// Connects to peer `proc` (a holder) as a downloader.
    pub async fn connect_peer(&self, swarm: &super::Swarm, proc: &Proc, id: &str) -> Result<Connection> {
        self.connect(listen_addr(proc), PEER_ALPN, peer_fp(swarm.path(), id)).await
    }
}

/// One tracker request on its own stream, one answer back.
pub async fn request(conn: &Connection, req: &TrackerRequest) -> Result<TrackerResponse> {
    let reply = raw_bi(conn, &protocol::encode(req)?).await?;
    decode(&reply)
}

/// Decodes one whole frame (prefix and body) of at most `limit` bytes.
pub fn decode_frame<T: serde::de::DeserializeOwned>(frame: &[u8], limit: usize) -> Result<T> {
    let (prefix, body) = frame.split_at_checked(4).context("no length prefix")?;
    let len = u32::from_be_bytes(prefix.try_into()?) as usize;
    if len != body.len() {
        bail!("frame announces {len} bytes, has {}", body.len());
    }
    Ok(protocol::decode_body(body, limit)?)
}

/// Decodes one whole control frame.
pub fn decode<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Result<T> {
    decode_frame(frame, MAX_FRAME)
}

/// Sends `bytes` on a new bidirectional stream, finishes it, and reads the whole answer.
pub async fn raw_bi(conn: &Connection, bytes: &[u8]) -> Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(bytes).await?;
    send.finish()?;
    let reply = tokio::time::timeout(STEP, recv.read_to_end(8 << 20)).await.context("no answer")??;
    Ok(reply)
}

/// Asks a holder for a manifest.
pub async fn manifest(conn: &Connection, id: Fingerprint, version: u16) -> Result<ManifestReply> {
    let reply = raw_bi(conn, &protocol::encode(&PeerRequest::Manifest { version, id })?).await?;
    decode_frame(&reply, protocol::MAX_MANIFEST_FRAME)
}

/// Asks a holder for a chunk and returns the header of its answer.
pub async fn chunk_header(conn: &Connection, id: Fingerprint, index: u32) -> Result<ChunkHeader> {
    let mut req = conn.open_uni().await?;
    req.write_all(&protocol::encode(&PeerRequest::Chunk { id, index })?).await?;
    req.finish()?;
    let mut answer = tokio::time::timeout(STEP, conn.accept_uni()).await.context("no chunk stream")??;
    Ok(tokio::time::timeout(STEP, protocol::read_frame(&mut answer, MAX_FRAME)).await.context("no header")??)
}

/// The tracker's address, as the harness parsed it.
pub fn tracker_addr(swarm: &super::Swarm) -> SocketAddr {
    swarm.addr.parse().expect("tracker address")
}

/// The tracker's fingerprint, from its certificate file.
pub fn tracker_fp(dir: &Path) -> Fingerprint {
    tls::pinned_fingerprint(&dir.join("certs/tracker.crt")).expect("tracker certificate")
}

/// Peer `id`'s fingerprint, from its certificate file.
pub fn peer_fp(dir: &Path, id: &str) -> Fingerprint {
    tls::pinned_fingerprint(&dir.join(format!("certs/peer-{id}.crt"))).expect("peer certificate")
}

/// The address a peer printed it listens on.
pub fn listen_addr(proc: &Proc) -> SocketAddr {
    proc.seen
        .iter()
        .find_map(|(_, l)| l.split(" listening on ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("a 'listening on ADDR' line")
}

/// Resident memory of process `pid`, in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Peak resident memory of process `pid` so far, in KiB (Linux): catches memory held only for a
/// moment, which `VmRSS` afterwards would miss.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS line")
}

/// Open file descriptors of process `pid` (Linux).
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Reproducible pseudo-random bytes (xorshift), for garbage frames and datagrams.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Sends `count` random UDP datagrams (1 to 1400 bytes) to `addr`.
pub fn udp_noise(addr: SocketAddr, count: usize, seed: u64) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    let mut noise = Noise::new(seed);
    for n in 0..count {
        let len = 1 + (noise.next() as usize % 1400);
        let mut datagram = noise.bytes(len);
        // Every few, a plausible QUIC long header (Initial, version 1) with a garbage body.
        if n % 4 == 0 && len > 8 {
            datagram[0] = 0xc0;
            datagram[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        let _ = socket.send_to(&datagram, addr);
    }
}

/// What a fake tracker answers to a lookup.
pub type Answer = Arc<dyn Fn(&str) -> Vec<FileMatch> + Send + Sync>;

/// A fake tracker: answers registration and heartbeats, and a lookup with whatever `answer`
/// returns for the query; every holder it reports is verified.
pub struct FakeTracker {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
}

impl FakeTracker {
    /// Starts serving with the certificate `certs/tracker.crt` (made if missing) on 127.0.0.1.
    pub fn start(certs: &Path, answer: Answer) -> FakeTracker {
        let identity = Identity::load_or_create(certs, "tracker").expect("tracker certificate");
        let server = tls::server_config(&identity, TRACKER_ALPN).expect("server config");
        let endpoint = Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).expect("fake tracker endpoint");
        let addr = endpoint.local_addr().expect("address");
        let accepting = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let Ok(req) = protocol::read_frame::<_, TrackerRequest>(&mut recv, MAX_FRAME).await else { return };
                        let reply = match req {
                            TrackerRequest::Register { .. } => TrackerResponse::Registered { observed: conn.remote_address() },
                            TrackerRequest::Lookup { query } => TrackerResponse::Matches(answer(&query)),
                            TrackerRequest::Files => TrackerResponse::Matches(Vec::new()),
                            TrackerRequest::Verify { .. } => TrackerResponse::Verified { peer_id: Some("someone".into()) },
                            _ => TrackerResponse::Ok,
                        };
                        let _ = protocol::write_frame(&mut send, &reply).await;
                        let _ = send.finish();
                    }
                });
            }
        });
        FakeTracker { addr, endpoint }
    }
}

/// What a fake holder answers to a manifest request.
#[derive(Clone)]
pub enum HolderAnswer {
    /// The real manifest and chunks of this content.
    Serve(Arc<Vec<u8>>),
    /// An error with this reason.
    Refuse(String),
    /// The real manifest, and a bitfield claiming every chunk; then every chunk refused.
    Lie(Arc<Vec<u8>>),
    /// The real manifest and chunks, and on every `Observe` an endless flood of `Have`
    /// messages, as fast as the stream takes them; the count of frames written goes to the
    /// counter.
    Flood(Arc<Vec<u8>>, Arc<std::sync::atomic::AtomicU64>),
    /// The real manifest (and a description, to a `Describe`), then every chunk with its
    /// bytes flipped.
    Corrupt(Arc<Vec<u8>>),
}

/// A fake holder on 127.0.0.1 with its own certificate; returns it as a [`Holder`] to report.
pub fn fake_holder(answer: HolderAnswer) -> (Holder, Endpoint, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = Identity::load_or_create(dir.path(), "holder").expect("holder certificate");
    let server = tls::server_config(&identity, PEER_ALPN).expect("server config");
    let endpoint = Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).expect("fake holder endpoint");
    let holder =
        Holder { peer_id: "fake".into(), addr: endpoint.local_addr().unwrap(), fingerprint: identity.fingerprint, also: Vec::new() };
    accept_fakes(&endpoint, answer);
    (holder, endpoint, dir)
}

/// Serves every connection `endpoint` accepts as a fake holder answering with `answer`.
fn accept_fakes(endpoint: &Endpoint, answer: HolderAnswer) {
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    let _ = serve_fake(conn, answer).await;
                }
            });
        }
    });
}

async fn serve_fake(conn: Connection, answer: HolderAnswer) -> Result<()> {
    let content = match &answer {
        HolderAnswer::Serve(data) | HolderAnswer::Lie(data) | HolderAnswer::Flood(data, _) | HolderAnswer::Corrupt(data) => {
            Some((data.clone(), Manifest::from_bytes(data).1))
        }
        HolderAnswer::Refuse(_) => None,
    };
    loop {
        tokio::select! {
            bi = conn.accept_bi() => {
                let (send, mut recv) = bi?;
                let req: PeerRequest = protocol::read_frame(&mut recv, MAX_FRAME).await?;
                let (answer, content) = (answer.clone(), content.clone());
                tokio::spawn(async move { let _ = answer_fake(send, req, &answer, content.as_ref().map(|c| &c.1)).await; });
            }
            uni = conn.accept_uni() => {
                let mut recv = uni?;
                let PeerRequest::Chunk { id, index } = protocol::read_frame(&mut recv, MAX_FRAME).await? else { continue };
                let Some((data, manifest)) = &content else { continue };
                let (offset, len) = (manifest.offset(index) as usize, manifest.len_of(index) as usize);
                let mut out = conn.open_uni().await?;
                if let HolderAnswer::Lie(_) = answer {
                    let refusal = ChunkHeader { id, index, result: Err(format!("chunk {index} is not verified here yet")) };
                    protocol::write_frame(&mut out, &refusal).await?;
                    out.finish()?;
                    continue;
                }
                protocol::write_frame(&mut out, &ChunkHeader { id, index, result: Ok(len as u32) }).await?;
                match answer {
                    HolderAnswer::Corrupt(_) => out.write_all(&data[offset..offset + len].iter().map(|b| !b).collect::<Vec<u8>>()).await?,
                    _ => out.write_all(&data[offset..offset + len]).await?,
                }
                out.finish()?;
            }
        }
    }
}

/// The fake's answer on a bidirectional stream: a manifest, or what it has.
async fn answer_fake(mut send: quinn::SendStream, req: PeerRequest, answer: &HolderAnswer, manifest: Option<&Manifest>) -> Result<()> {
    match (req, answer, manifest) {
        (PeerRequest::Observe { .. }, HolderAnswer::Refuse(reason), _) => {
            protocol::write_frame(&mut send, &Availability::Error(reason.clone())).await?;
        }
        (PeerRequest::Observe { .. }, HolderAnswer::Lie(_), Some(m)) => {
            let bits = vec![0xff; (m.count() as usize).div_ceil(8)];
            protocol::write_frame(&mut send, &Availability::Bitfield { count: m.count(), bits }).await?;
        }
        (PeerRequest::Observe { .. }, HolderAnswer::Flood(_, written), Some(m)) => {
            protocol::write_frame(&mut send, &Availability::Bitfield { count: m.count(), bits: vec![0; (m.count() as usize).div_ceil(8)] })
                .await?;
            // Bounded: a test lasts seconds; this stops after at most a million frames.
            for n in 0..1_000_000u32 {
                let have: Vec<u32> = (0..64).map(|i| (n * 64 + i) % m.count()).collect();
                protocol::write_frame(&mut send, &Availability::Have(have)).await?;
                written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        (PeerRequest::Observe { .. }, _, _) => protocol::write_frame(&mut send, &Availability::All).await?,
        (PeerRequest::Describe { id }, _, Some(m)) => {
            let info = FileInfo { id, name: "fake.bin".into(), size: m.size, folder: None };
            protocol::write_frame(&mut send, &protocol::Description::File(info)).await?;
        }
        (_, HolderAnswer::Refuse(reason), _) => protocol::write_frame(&mut send, &ManifestReply::Error(reason.clone())).await?,
        (_, _, Some(m)) => protocol::write_frame(&mut send, &ManifestReply::Manifest(m.clone())).await?,
        _ => bail!("nothing to serve"),
    }
    send.finish()?;
    Ok(())
}

/// Reads a whole stream into memory, at most `limit` bytes (for raw answers).
pub async fn read_all(recv: &mut quinn::RecvStream, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    recv.take(limit as u64).read_to_end(&mut out).await?;
    Ok(out)
}

/// A fake holder registered with a real tracker from its own endpoint (so the tracker hands
/// out the address it serves on), heartbeating every second until dropped.
pub struct RegisteredFake {
    /// The fake as the tracker lists it.
    pub holder: Holder,
    _endpoint: Endpoint,
    _tracker: Connection,
    beating: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for RegisteredFake {
    fn drop(&mut self) {
        self.beating.abort();
    }
}

/// Starts a fake holder answering with `answer`, registers it as `id` with the tracker at
/// `tracker` (pinned to `tracker_fp`) announcing `file`.
pub async fn registered_fake(
    tracker: SocketAddr,
    tracker_fp: Fingerprint,
    id: &str,
    answer: HolderAnswer,
    file: FileInfo,
) -> Result<RegisteredFake> {
    let dir = tempfile::tempdir()?;
    let identity = Identity::load_or_create(dir.path(), "holder")?;
    let endpoint = tls::endpoint(&identity, tls::server_config(&identity, PEER_ALPN)?, "127.0.0.1:0".parse()?)?;
    let holder = Holder { peer_id: id.into(), addr: endpoint.local_addr()?, fingerprint: identity.fingerprint, also: Vec::new() };
    accept_fakes(&endpoint, answer);
    let config = tls::client_config(&identity, TRACKER_ALPN, tracker_fp)?;
    let conn =
        tokio::time::timeout(STEP, endpoint.connect_with(config, tracker, tls::SERVER_NAME)?).await.context("tracker handshake")??;
    let register = TrackerRequest::Register { version: PROTOCOL_VERSION, peer_id: id.into(), files: vec![file] };
    match request(&conn, &register).await? {
        TrackerResponse::Registered { .. } => {}
        other => bail!("the tracker did not register the fake: {other:?}"),
    }
    let beat = conn.clone();
    let beating = tokio::spawn(async move {
        // A heartbeat every second, as a peer sends them; aborted on drop, an hour at most.
        let mut every = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..3600 {
            every.tick().await;
            if request(&beat, &TrackerRequest::Alive).await.is_err() {
                return;
            }
        }
    });
    Ok(RegisteredFake { holder, _endpoint: endpoint, _tracker: conn, beating, _dir: dir })
}
