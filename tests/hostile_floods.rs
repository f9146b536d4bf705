//! Floods on loopback, bounded in count and time: hundreds of connections, every stream slot
//! held open, thousands of requests a second. Per-address and per-peer caps, a request rate per
//! session and QUIC's stream and window limits keep memory and descriptors bounded, and an honest
//! download completes meanwhile.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::hostile::{self, Hostile};
use common::{Swarm, b3sum, bytes};
use p2pq::protocol::{self, Digest, FileInfo, PEER_ALPN, PROTOCOL_VERSION, PeerRequest, TRACKER_ALPN, TrackerRequest, TrackerResponse};
use quinn::Connection;

/// Connections each flood opens.
const CONNECTIONS: usize = 200;
/// How long the request flood runs.
const FLOOD_TIME: Duration = Duration::from_secs(3);
/// Growth allowed to a flooded process: bounded, and far below what the flood would cost
/// without caps (hundreds of connections with megabyte windows).
const MAX_GROWTH_KIB: u64 = 48 * 1024;

/// Opens `n` connections at once; returns those the server accepted (the rest were refused or
/// closed at once).
async fn open_many(h: &Arc<Hostile>, addr: std::net::SocketAddr, alpn: &'static [u8], fp: Digest, n: usize) -> Vec<Connection> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let h = h.clone();
        tasks.spawn(async move { h.connect(addr, alpn, fp).await.ok() });
    }
    let mut open = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Some(conn)) = joined {
            open.push(conn);
        }
    }
    open
}

/// Sends `request` from many tasks as fast as the tracker takes them, for [`FLOOD_TIME`];
/// returns how many were answered.
async fn request_flood(conn: Connection, request: TrackerRequest) -> usize {
    let answered = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + FLOOD_TIME;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (conn, request, answered) = (conn.clone(), request.clone(), answered.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                let Ok(Ok(_)) = tokio::time::timeout_at(end.into(), hostile::request(&conn, &request)).await else { break };
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    answered.load(Ordering::Relaxed)
}

fn file_of(n: u32) -> FileInfo {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    FileInfo { id: Digest(id), name: format!("flood-{n}"), size: 1, folder: None }
}

#[test]
fn a_tracker_flood_is_capped_and_an_honest_download_completes() {
    let mut swarm = Swarm::start("15");
    let data = bytes(2 << 20, "tracker flood");
    swarm.write_data("t.bin", &data);
    let mut holder = swarm.peer("1");
    holder.command("share t.bin", "shared ");
    let mut getter = swarm.peer("2");
    let pid = swarm.tracker.pid();
    let (rss0, fds0) = (hostile::rss_kib(pid), hostile::fds(pid));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = Arc::new(rt.block_on(async { Hostile::new() }));
    let (addr, fp) = (hostile::tracker_addr(&swarm), hostile::tracker_fp(swarm.path()));
    // One registered session floods heartbeats and shares, another holds every stream slot.
    let flooder = rt.block_on(async { Hostile::new() });
    let (session, _) = rt.block_on(flooder.register(&swarm, "flooder", vec![])).unwrap();
    let slots = rt.block_on(async {
        let slots = Hostile::new();
        let (conn, _) = slots.register(&swarm, "slots", vec![]).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..64 {
            let Ok(Ok((mut send, recv))) = tokio::time::timeout(Duration::from_millis(200), conn.open_bi()).await else { break };
            let _ = send.write_all(&[0, 0]).await; // half a prefix, then silence
            held.push((send, recv));
        }
        (slots, conn, held)
    });
    // Hundreds of connections that never register (4 slots of this address are taken above).
    let idle = rt.block_on(open_many(&h, addr, TRACKER_ALPN, fp, CONNECTIONS));
    assert!(idle.len() <= 60, "{} of {CONNECTIONS} connections from one address accepted", idle.len());
    let alive = rt.spawn(request_flood(session.clone(), TrackerRequest::Alive));
    let shares = rt.spawn({
        let session = session.clone();
        async move {
            let answered = Arc::new(AtomicUsize::new(0));
            let end = Instant::now() + FLOOD_TIME;
            let mut n = 0u32;
            while Instant::now() < end {
                n += 1;
                if let Ok(Ok(TrackerResponse::Ok)) =
                    tokio::time::timeout_at(end.into(), hostile::request(&session, &TrackerRequest::Share(file_of(n)))).await
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
            answered.load(Ordering::Relaxed)
        }
    });
    // Meanwhile, an honest download.
    let started = Instant::now();
    let got = getter.command("get t.bin", "downloaded ");
    assert!(got[0].contains(&b3sum(&data)[..12]), "{got:?}");
    let honest = started.elapsed();
    let (alive, shares) = (rt.block_on(alive).unwrap(), rt.block_on(shares).unwrap());
    let (rss1, fds1) = (hostile::rss_kib(pid), hostile::fds(pid));
    eprintln!(
        "tracker flood: {} idle connections accepted of {CONNECTIONS}; {alive} alive + {shares} share answered in {FLOOD_TIME:?}; \
         honest get {honest:?}; VmRSS {rss0} -> {rss1} KiB; fds {fds0} -> {fds1}",
        idle.len()
    );
    // 100 requests a second after a burst of 200, across both floods of the one session.
    let limit = 200 + 100 * (FLOOD_TIME.as_secs() as usize + 2);
    assert!(alive + shares <= limit, "{alive} + {shares} requests answered: not rate limited");
    assert!(rss1.saturating_sub(rss0) < MAX_GROWTH_KIB, "tracker grew from {rss0} to {rss1} KiB");
    assert!(fds1 <= fds0 + 4, "tracker descriptors grew from {fds0} to {fds1}");
    drop((idle, slots));
    assert!(swarm.tracker.is_running());
    let peers = swarm.tracker.command("peers", "live peer");
    assert!(peers.iter().any(|l| l.starts_with("1 ")), "{peers:?}");
}

#[test]
fn a_holder_flood_is_capped_and_an_honest_download_completes() {
    let swarm = Swarm::start("15");
    let data = bytes(4 << 20, "holder flood");
    swarm.write_data("h.bin", &data);
    let mut holder = swarm.peer("1");
    holder.command("share h.bin", "shared ");
    let mut getter = swarm.peer("2");
    let id = Digest::from(blake3::hash(&data));
    let pid = holder.pid();
    let (rss0, fds0) = (hostile::rss_kib(pid), hostile::fds(pid));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, fp) = (hostile::listen_addr(&holder), hostile::peer_fp(swarm.path(), "1"));
    let flood = rt.block_on(async {
        // Strangers the tracker does not know: every connection refused.
        let stranger = Arc::new(Hostile::new());
        let strangers = open_many(&stranger, addr, PEER_ALPN, fp, CONNECTIONS / 2).await;
        let _ = tokio::time::timeout(hostile::STEP, async {
            for conn in &strangers {
                conn.closed().await;
            }
        })
        .await;
        let refused = strangers.iter().filter(|c| c.close_reason().is_some()).count();
        assert_eq!(refused, strangers.len(), "a stranger kept a connection");
        // A registered flooder: only a few connections each.
        let member = Arc::new(Hostile::new());
        let (tracker_conn, _) = member.register(&swarm, "member", vec![]).await.unwrap();
        let conns = open_many(&member, addr, PEER_ALPN, fp, CONNECTIONS).await;
        let probe: Vec<_> = conns.iter().map(|c| hostile::manifest(c, id, PROTOCOL_VERSION)).collect();
        let mut kept = Vec::new();
        for (conn, answer) in conns.iter().zip(futures_join(probe).await) {
            if answer.is_ok() {
                kept.push(conn.clone());
            }
        }
        assert!(kept.len() <= 4, "{} connections from one peer served", kept.len());
        // On each kept connection: every stream slot taken with chunk requests never read, and
        // bidirectional streams that never finish their request.
        let mut held = Vec::new();
        for conn in &kept {
            for index in 0..300u32 {
                let Ok(Ok(mut uni)) = tokio::time::timeout(Duration::from_millis(100), conn.open_uni()).await else { break };
                let _ = uni.write_all(&protocol::encode(&PeerRequest::Chunk { id, index: index % 16 }).unwrap()).await;
                let _ = uni.finish();
            }
            for _ in 0..40 {
                let Ok(Ok((mut send, recv))) = tokio::time::timeout(Duration::from_millis(100), conn.open_bi()).await else { break };
                let _ = send.write_all(&[0, 0, 1]).await;
                held.push((send, recv));
            }
        }
        (tracker_conn, kept, member, stranger, held)
    });
    let started = Instant::now();
    let got = getter.command("get h.bin", "downloaded ");
    assert!(got[0].contains(&b3sum(&data)[..12]), "{got:?}");
    let honest = started.elapsed();
    let (rss1, fds1) = (hostile::rss_kib(pid), hostile::fds(pid));
    eprintln!("holder flood: {} connections kept; honest get {honest:?}; VmRSS {rss0} -> {rss1} KiB; fds {fds0} -> {fds1}", flood.1.len());
    assert!(rss1.saturating_sub(rss0) < MAX_GROWTH_KIB, "holder grew from {rss0} to {rss1} KiB");
    assert!(fds1 <= fds0 + 4, "holder descriptors grew from {fds0} to {fds1}");
    drop(flood);
    assert!(holder.is_running());
}

/// Awaits every future, in order.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        out.push(f.await);
    }
    out
}
