//! The tracker's introductions for hole punching, on loopback with raw clients (no root
//! needed; `tests/nat.rs` runs the real thing behind NATs): a registered peer is introduced to
//! another with both observed addresses, strangers and wrong certificates are not, and a
//! holder cannot be made to punch more than a burst at once.

mod common;

use common::Swarm;
use common::hostile::{self, Hostile};
use p2pq::protocol::{self, MAX_PUSH_FRAME, MAX_START_IN_MS, PROTOCOL_VERSION, TrackerPush, TrackerRequest, TrackerResponse};

fn introduce(peer_id: &str, fingerprint: protocol::Fingerprint) -> TrackerRequest {
    TrackerRequest::Introduce { peer_id: peer_id.into(), fingerprint }
}

#[test]
fn a_registered_holder_is_told_where_the_downloader_is_and_the_downloader_where_the_holder_is() {
    let swarm = Swarm::start("15");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (holder, asker) = (Hostile::new(), Hostile::new());
        let (holder_conn, _) = holder.register(&swarm, "holder", vec![]).await.unwrap();
        let (asker_conn, _) = asker.register(&swarm, "asker", vec![]).await.unwrap();
        let answer = hostile::request(&asker_conn, &introduce("holder", holder.identity.fingerprint)).await.unwrap();
        let TrackerResponse::Introduced { addr, start_in_ms } = answer else { panic!("not introduced: {answer:?}") };
        assert_eq!(addr, holder.endpoint.local_addr().unwrap(), "the holder's observed address");
        assert!(start_in_ms <= MAX_START_IN_MS);
        let mut push = tokio::time::timeout(hostile::STEP, holder_conn.accept_uni()).await.unwrap().unwrap();
        let push: TrackerPush = protocol::read_frame(&mut push, MAX_PUSH_FRAME).await.unwrap();
        let TrackerPush::Punch { version, peer_id, addr, .. } = push else { panic!("not a punch: {push:?}") };
        assert_eq!((version, peer_id.as_str()), (PROTOCOL_VERSION, "asker"));
        assert_eq!(addr, asker.endpoint.local_addr().unwrap(), "the downloader's observed address, not one it claims");
    });
}

#[test]
fn strangers_and_other_certificates_are_not_introduced_and_a_holder_only_a_burst_at_once() {
    let swarm = Swarm::start("15");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (holder, asker) = (Hostile::new(), Hostile::new());
        let (_holder_conn, _) = holder.register(&swarm, "holder", vec![]).await.unwrap();
        let (asker_conn, _) = asker.register(&swarm, "asker", vec![]).await.unwrap();
        let refused = |answer: TrackerResponse, why: &str| match answer {
            TrackerResponse::Error(reason) => assert!(reason.contains(why), "{reason}"),
            other => panic!("introduced where it should not be ({why}): {other:?}"),
        };
        let nobody = hostile::request(&asker_conn, &introduce("nobody", asker.identity.fingerprint)).await.unwrap();
        refused(nobody, "not a live peer");
        let wrong = hostile::request(&asker_conn, &introduce("holder", asker.identity.fingerprint)).await.unwrap();
        refused(wrong, "not a live peer");
        let mut introduced = 0;
        for _ in 0..30 {
            match hostile::request(&asker_conn, &introduce("holder", holder.identity.fingerprint)).await.unwrap() {
                TrackerResponse::Introduced { .. } => introduced += 1,
                other => refused(other, "too often"),
            }
        }
        assert!((20..30).contains(&introduced), "{introduced} of 30 introductions in a burst went through");
    });
}

#[test]
fn a_downloaders_report_of_a_punch_is_kept_but_never_more_reports_than_introductions() {
    let mut swarm = Swarm::start("15");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Both stay connected (and listed) until the view is read.
    let _connected = rt.block_on(async {
        let (holder, asker) = (Hostile::new(), Hostile::new());
        let (holder_conn, _) = holder.register(&swarm, "holder", vec![]).await.unwrap();
        let (asker_conn, _) = asker.register(&swarm, "asker", vec![]).await.unwrap();
        let answer = hostile::request(&asker_conn, &introduce("holder", holder.identity.fingerprint)).await.unwrap();
        assert!(matches!(answer, TrackerResponse::Introduced { .. }), "{answer:?}");
        let report = |connected| TrackerRequest::Punched { peer_id: "holder".into(), fingerprint: holder.identity.fingerprint, connected };
        for connected in [true, false, false] {
            let answer = hostile::request(&asker_conn, &report(connected)).await.unwrap();
            assert_eq!(answer, TrackerResponse::Ok);
        }
        (holder, asker, holder_conn, asker_conn)
    });
    let peers = swarm.tracker.command("peers --json", "]").pop().unwrap();
    let peers: serde_json::Value = serde_json::from_str(&peers).expect("json");
    let holder = peers.as_array().and_then(|all| all.iter().find(|p| p["id"] == "holder")).expect("holder listed");
    assert_eq!(holder["reached"], "punched (introduced once, 1 connected, 0 no path)", "one introduction, one report counted");
}
