//! Bad requests to a holder: an unknown file id, a chunk past the end, a wrong version, a file
//! of many chunks or too many files asked for whole, or a requester the tracker does not know.
//! Each gets an error (or the connection is refused), and the holder goes on serving honest
//! peers.

mod common;

use common::hostile::{self, Hostile};
use common::{Swarm, b3sum, bytes};
use p2pq::protocol::{self, ChunkHeader, Digest, ManifestReply, PROTOCOL_VERSION, PeerRequest, TrackerRequest, TrackerResponse};

#[test]
fn unknown_ids_and_chunks_past_the_end_get_an_error_and_the_holder_goes_on() {
    let swarm = Swarm::start("15");
    let data = bytes(600_000, "requests");
    swarm.write_data("r.bin", &data);
    let mut holder = swarm.peer("1");
    holder.command("share r.bin", "shared ");
    let id = Digest::from(blake3::hash(&data));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Hostile::new();
        let (_tracker, answer) = h.register(&swarm, "prober", vec![]).await.unwrap();
        assert!(matches!(answer, TrackerResponse::Registered { .. }));
        let conn = h.connect_peer(&swarm, &holder, "1").await.unwrap();
        let unknown = Digest([0x42; 32]);
        let reply = hostile::manifest(&conn, unknown, PROTOCOL_VERSION).await.unwrap();
        assert!(matches!(&reply, ManifestReply::Error(r) if r.contains("not shared here")), "{reply:?}");
        let reply = hostile::manifest(&conn, id, PROTOCOL_VERSION + 1).await.unwrap();
        assert!(matches!(&reply, ManifestReply::Error(r) if r.contains("version")), "{reply:?}");
        let header = hostile::chunk_header(&conn, unknown, 0).await.unwrap();
        assert!(matches!(&header.result, Err(r) if r.contains("not shared here")), "{header:?}");
        for index in [3, 4, 1000, u32::MAX] {
            let header = hostile::chunk_header(&conn, id, index).await.unwrap();
            assert!(matches!(&header.result, Err(r) if r.contains("past the end")), "{header:?}");
        }
        // The same connection still gets what is real.
        let reply = hostile::manifest(&conn, id, PROTOCOL_VERSION).await.unwrap();
        assert!(matches!(reply, ManifestReply::Manifest(_)), "{reply:?}");
        let header = hostile::chunk_header(&conn, id, 2).await.unwrap();
        assert_eq!(header.result, Ok(600_000 - 2 * 262_144));
    });
    let mut getter = swarm.peer("2");
    let got = getter.command("get r.bin", "downloaded ");
    assert!(got[0].contains(&b3sum(&data)[..12]), "{got:?}");
    assert!(holder.is_running());
}

#[test]
fn a_requester_the_tracker_does_not_know_is_refused() {
    let swarm = Swarm::start("15");
    let data = bytes(100_000, "gate");
    swarm.write_data("g.bin", &data);
    let mut holder = swarm.peer("1");
    holder.command("share g.bin", "shared ");
    let id = Digest::from(blake3::hash(&data));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // A stranger with its own certificate, never registered: refused before any answer.
        let stranger = Hostile::new();
        let conn = stranger.connect_peer(&swarm, &holder, "1").await.unwrap();
        let refused = hostile::manifest(&conn, id, PROTOCOL_VERSION).await;
        assert!(refused.is_err(), "an unregistered peer got an answer: {refused:?}");
        let reason = tokio::time::timeout(hostile::STEP, conn.closed()).await.unwrap();
        assert!(reason.to_string().contains("not a peer registered with the tracker"), "{reason}");

        // The tracker tells live certificates from others.
        let member = Hostile::new();
        let (tracker, _) = member.register(&swarm, "member", vec![]).await.unwrap();
        let holder_fp = hostile::peer_fp(swarm.path(), "1");
        let known = hostile::request(&tracker, &TrackerRequest::Verify { fingerprint: holder_fp }).await.unwrap();
        assert_eq!(known, TrackerResponse::Verified { peer_id: Some("1".into()) });
        let stranger_fp = stranger.identity.fingerprint;
        let unknown = hostile::request(&tracker, &TrackerRequest::Verify { fingerprint: stranger_fp }).await.unwrap();
        assert_eq!(unknown, TrackerResponse::Verified { peer_id: None });

        // A registered peer is served.
        let conn = member.connect_peer(&swarm, &holder, "1").await.unwrap();
        let reply = hostile::manifest(&conn, id, PROTOCOL_VERSION).await.unwrap();
        assert!(matches!(reply, ManifestReply::Manifest(_)), "{reply:?}");
    });
    // Honest peers are served as ever.
    let mut getter = swarm.peer("2");
    getter.command("get g.bin", "downloaded ");
    assert!(std::fs::read(swarm.downloaded("2", "g.bin")).unwrap() == data);
}

#[test]
fn lookups_count_as_signs_of_life_and_an_expired_peer_is_told_to_register_again() {
    // Peers are dropped after 1 s of silence here.
    let mut swarm = Swarm::start("1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = rt.block_on(async {
        let h = Hostile::new();
        let (conn, answer) = h.register(&swarm, "looker", vec![]).await.unwrap();
        assert!(matches!(answer, TrackerResponse::Registered { .. }));
        // Never an Alive, only lookups, for three times the timeout: the tracker keeps it.
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        for _ in 0..12 {
            tick.tick().await;
            let answer = hostile::request(&conn, &TrackerRequest::Lookup { query: "x.bin".into() }).await.unwrap();
            assert!(matches!(answer, TrackerResponse::Matches(_)), "{answer:?}");
        }
        conn
    });
    let listed = swarm.tracker.command("peers", " peer");
    assert!(listed.iter().any(|l| l.starts_with("looker ")), "a peer that only looks things up is alive: {listed:?}");
    // Silent now: once expired, it is told what to do: its connection is closed, saying so.
    swarm.tracker.poll("peers", " peer", common::TIMEOUT, |out| !out.iter().any(|l| l.starts_with("looker ")));
    let closed = rt.block_on(async { tokio::time::timeout(common::TIMEOUT, conn.closed()).await }).expect("not told");
    let quinn::ConnectionError::ApplicationClosed(close) = closed else { panic!("closed for another reason: {closed}") };
    assert_eq!(close.error_code, p2pq::protocol::close::EXPIRED);
    assert!(String::from_utf8_lossy(&close.reason).contains("register again"), "{close:?}");
}

/// Splits a `Files` answer into its headers, each with the bytes that follow it.
fn files_answer(mut reply: &[u8]) -> Vec<(ChunkHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while !reply.is_empty() {
        let len = u32::from_be_bytes(reply[..4].try_into().unwrap()) as usize;
        let header: ChunkHeader = hostile::decode(&reply[..4 + len]).expect("a chunk header");
        reply = &reply[4 + len..];
        let size = *header.result.as_ref().unwrap_or(&0) as usize;
        out.push((header, reply[..size].to_vec()));
        reply = &reply[size..];
    }
    out
}

#[test]
fn many_small_files_come_in_one_answer_and_what_cannot_be_sent_is_said_per_file() {
    let swarm = Swarm::start("15");
    let (small, tiny, big) = (bytes(100_000, "small one"), bytes(5, "tiny"), bytes(600_000, "three chunks"));
    for (name, data) in [("small.bin", &small), ("tiny.bin", &tiny), ("big.bin", &big)] {
        swarm.write_data(name, data);
    }
    let mut holder = swarm.peer("1");
    for name in ["small.bin", "tiny.bin", "big.bin"] {
        holder.command(&format!("share {name}"), "shared ");
    }
    let id = |data: &[u8]| Digest::from(blake3::hash(data));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Hostile::new();
        let _tracker = h.register(&swarm, "prober", vec![]).await.unwrap();
        let conn = h.connect_peer(&swarm, &holder, "1").await.unwrap();
        let ids = vec![id(&small), Digest([0x42; 32]), id(&big), id(&tiny)];
        let reply = hostile::raw_bi(&conn, &protocol::encode(&PeerRequest::Files { ids: ids.clone() }).unwrap()).await.unwrap();
        let answer = files_answer(&reply);
        assert_eq!(answer.iter().map(|(h, _)| h.id).collect::<Vec<_>>(), ids, "one header per file, in the order asked");
        assert_eq!((answer[0].0.result.clone(), &answer[0].1), (Ok(100_000), &small));
        assert!(matches!(&answer[1].0.result, Err(r) if r.contains("not shared here")), "{:?}", answer[1].0);
        assert!(matches!(&answer[2].0.result, Err(r) if r.contains("not one")), "{:?}", answer[2].0);
        assert_eq!((answer[3].0.result.clone(), &answer[3].1), (Ok(5), &tiny));

        // Past the limit the request is refused whole (its stream reset), and the holder goes on.
        let many = vec![id(&tiny); protocol::MAX_FILES_PER_REQUEST + 1];
        assert!(hostile::raw_bi(&conn, &protocol::encode(&PeerRequest::Files { ids: many }).unwrap()).await.is_err());
        let reply = hostile::manifest(&conn, id(&big), PROTOCOL_VERSION).await.unwrap();
        assert!(matches!(reply, ManifestReply::Manifest(_)), "{reply:?}");
    });
    assert!(holder.is_running());
}
