//! Hostile bytes: huge length prefixes, truncated and trailing frames, unknown tags, random
//! bytes, a wrong version or ALPN, random UDP datagrams. Each closes its stream or connection;
//! the tracker and the holder keep serving and grow by less than 16 MiB.

mod common;

use std::time::Duration;

use common::hostile::{self, Hostile, Noise};
use common::{Swarm, b3sum, bytes};
use p2pq::protocol::{self, Digest, FileInfo, PEER_ALPN, PROTOCOL_VERSION, TRACKER_ALPN, TrackerRequest, TrackerResponse};
use quinn::Connection;

/// The most either process may grow through all of this.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// Frames that break the codec in every way we know, each a whole stream's bytes.
fn bad_frames(seed: u64) -> Vec<Vec<u8>> {
    let register = protocol::encode(&TrackerRequest::Register { version: PROTOCOL_VERSION, peer_id: "x".into(), files: vec![] }).unwrap();
    let mut trailing = register.clone();
    trailing.push(0);
    trailing[3] += 1;
    let mut frames = vec![
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],                                      // 4 GiB announced
        vec![0, 0x10, 0, 1],                                                        // just over 1 MiB announced, nothing sent
        vec![0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8],                                 // truncated body
        register[..register.len() - 1].to_vec(),                                    // truncated by one byte
        trailing,                                                                   // one byte too many
        vec![0, 0, 0, 1, 200],                                                      // unknown tag
        vec![0, 0, 0, 10, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // string of u64::MAX bytes
        vec![0, 0],                                                                 // half a prefix
        vec![],                                                                     // nothing at all
    ];
    let mut noise = Noise::new(seed);
    for n in 0..24 {
        let len = 1 + (noise.next() as usize % 300);
        let mut frame = noise.bytes(len);
        if n % 2 == 0 && len > 4 {
            // A plausible prefix, so the body reaches the decoder.
            frame[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
        }
        frames.push(frame);
    }
    frames
}

/// A 20 MiB frame that is really sent: without the prefix check it would all be held.
fn huge_frame() -> Vec<u8> {
    let len = 20usize << 20;
    let mut frame = (len as u32).to_be_bytes().to_vec();
    frame.resize(4 + len, 7);
    frame
}

/// Sends `bytes` on a new stream and returns whatever came back (an error counts as closed).
async fn throw(conn: &Connection, bytes: &[u8]) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(5), hostile::raw_bi(conn, bytes)).await.ok()?.ok()
}

async fn at_the_tracker(swarm: &Swarm) {
    let h = Hostile::new();
    let (addr, fp) = (hostile::tracker_addr(swarm), hostile::tracker_fp(swarm.path()));
    // Before registration: each bad first frame ends that connection with a reason.
    let mut first = bad_frames(1);
    first.push(huge_frame());
    first.push(protocol::encode(&TrackerRequest::Register { version: 2, peer_id: "x".into(), files: vec![] }).unwrap());
    for frame in &first {
        let conn = h.connect(addr, TRACKER_ALPN, fp).await.unwrap();
        if let Some(reply) = throw(&conn, frame).await {
            let answer: TrackerResponse = hostile::decode(&reply).unwrap();
            let refused = matches!(answer, TrackerResponse::Refused { retry: false, .. });
            assert!(refused, "{answer:?} for {:?}", &frame[..frame.len().min(16)]);
        }
        let closed = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await;
        assert!(closed.is_ok(), "connection left open after a bad first frame");
    }
    // After registration: a bad frame ends its stream only; the session goes on.
    let (conn, _) = h.register(swarm, "thrower", vec![]).await.unwrap();
    let mut later = bad_frames(2);
    later.push(protocol::encode(&TrackerRequest::Lookup { query: "q".repeat(5000) }).unwrap());
    later.push(huge_frame());
    for frame in &later {
        if let Some(reply) = throw(&conn, frame).await {
            let answer: TrackerResponse = hostile::decode(&reply).unwrap();
            assert!(matches!(answer, TrackerResponse::Error(_)), "{answer:?}");
        }
        let alive = hostile::request(&conn, &TrackerRequest::Alive).await.unwrap();
        assert_eq!(alive, TrackerResponse::Ok, "session broken by a bad frame");
    }
    // The wrong protocol on the right port: the handshake fails.
    assert!(h.connect(addr, PEER_ALPN, fp).await.is_err(), "tracker accepted the peer ALPN");
}

async fn at_the_holder(swarm: &Swarm, holder: &common::Proc, id: Digest) {
    let h = Hostile::new();
    let (_tracker, _) = h.register(swarm, "thrower2", vec![]).await.unwrap();
    let conn = h.connect_peer(swarm, holder, "1").await.unwrap();
    let mut frames = bad_frames(3);
    frames.push(huge_frame());
    frames.push(protocol::encode(&protocol::PeerRequest::Chunk { id, index: 0 }).unwrap()); // wrong stream kind
    for frame in &frames {
        if let Some(reply) = throw(&conn, frame).await {
            let answer: protocol::ManifestReply = hostile::decode(&reply).unwrap();
            assert!(matches!(answer, protocol::ManifestReply::Error(_)), "{answer:?}");
        }
        // Garbage on a chunk-request stream gets no chunk stream back, and no crash.
        if let Ok(mut uni) = conn.open_uni().await {
            let _ = uni.write_all(frame).await;
            let _ = uni.finish();
        }
    }
    let still = hostile::manifest(&conn, id, PROTOCOL_VERSION).await.unwrap();
    assert!(matches!(still, protocol::ManifestReply::Manifest(_)), "holder stopped answering: {still:?}");
    let other = Hostile::new();
    let fp = hostile::peer_fp(swarm.path(), "1");
    assert!(other.connect(hostile::listen_addr(holder), TRACKER_ALPN, fp).await.is_err(), "holder accepted the tracker ALPN");
}

#[test]
fn hostile_frames_and_datagrams_end_their_stream_and_cost_under_16_mib() {
    let mut swarm = Swarm::start("15");
    let data = bytes(1 << 20, "frames");
    swarm.write_data("f.bin", &data);
    let mut holder = swarm.peer("1");
    holder.command("share f.bin", "shared ");
    let id = Digest::from(blake3::hash(&data));
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One honest-looking exchange first, so both processes have warmed up their allocations.
    rt.block_on(async {
        let h = Hostile::new();
        let (_t, _) =
            h.register(&swarm, "warm", vec![FileInfo { id: Digest([1; 32]), name: "w".into(), size: 1, folder: None }]).await.unwrap();
        let conn = h.connect_peer(&swarm, &holder, "1").await.unwrap();
        hostile::manifest(&conn, id, PROTOCOL_VERSION).await.unwrap();
    });
    let (tracker_pid, holder_pid) = (swarm.tracker.pid(), holder.pid());
    let (t0, h0) = (hostile::rss_kib(tracker_pid), hostile::rss_kib(holder_pid));
    let (tp0, hp0) = (hostile::peak_rss_kib(tracker_pid), hostile::peak_rss_kib(holder_pid));
    rt.block_on(at_the_tracker(&swarm));
    rt.block_on(at_the_holder(&swarm, &holder, id));
    hostile::udp_noise(hostile::tracker_addr(&swarm), 3000, 11);
    hostile::udp_noise(hostile::listen_addr(&holder), 3000, 12);
    let (t1, h1) = (hostile::rss_kib(tracker_pid), hostile::rss_kib(holder_pid));
    let (tp1, hp1) = (hostile::peak_rss_kib(tracker_pid), hostile::peak_rss_kib(holder_pid));
    eprintln!("VmRSS tracker {t0} -> {t1} KiB (peak {tp0} -> {tp1}), holder {h0} -> {h1} KiB (peak {hp0} -> {hp1})");
    // Both now and at the worst moment: a frame held whole for an instant shows in the peak.
    for (who, before, after) in [("tracker", t0, t1), ("tracker peak", tp0, tp1), ("holder", h0, h1), ("holder peak", hp0, hp1)] {
        assert!(after.saturating_sub(before) < MAX_GROWTH_KIB, "{who} grew from {before} to {after} KiB");
    }
    // Both still serve: a normal share and get.
    swarm.write_data("after.bin", b"still here");
    holder.command("share after.bin", "shared ");
    let mut getter = swarm.peer("2");
    let got = getter.command("get f.bin", "downloaded ");
    assert!(got[0].contains(&b3sum(&data)[..12]), "{got:?}");
    getter.command("get after.bin", "downloaded ");
    assert!(swarm.tracker.is_running() && holder.is_running());
}
