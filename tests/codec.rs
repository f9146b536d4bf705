//! The codec: every message round-trips; hostile frames fail cleanly and allocate nothing big.

use p2pq::content::manifest::Manifest;
use p2pq::protocol::{
    self, ChunkHeader, Digest, FileInfo, FileMatch, Holder, ManifestReply, PeerRequest, TrackerPush, TrackerRequest, TrackerResponse,
    WireError,
};

fn info() -> FileInfo {
    FileInfo { id: Digest([7; 32]), name: "résumé.pdf".into(), size: 10 * 1024 * 1024 + 17, folder: None }
}

async fn roundtrip<T>(msg: T, limit: usize)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let frame = protocol::encode(&msg).unwrap();
    let back: T = protocol::read_frame(&mut frame.as_slice(), limit).await.unwrap();
    assert_eq!(back, msg);
}

#[tokio::test]
async fn every_message_round_trips() {
    let holder =
        Holder { peer_id: "alice".into(), addr: "127.0.0.1:4000".parse().unwrap(), fingerprint: Digest([9; 32]), also: Vec::new() };
    let limit = protocol::MAX_FRAME;
    roundtrip(TrackerRequest::Register { version: protocol::PROTOCOL_VERSION, peer_id: "1".into(), files: vec![info()] }, limit).await;
    roundtrip(TrackerRequest::Alive, limit).await;
    roundtrip(TrackerRequest::Share(info()), limit).await;
    roundtrip(TrackerRequest::Lookup { query: "a.txt".into() }, limit).await;
    roundtrip(TrackerRequest::Files, limit).await;
    roundtrip(TrackerRequest::Exit, limit).await;
    roundtrip(TrackerResponse::Registered { observed: "[::1]:9".parse().unwrap() }, limit).await;
    roundtrip(TrackerResponse::Matches(vec![FileMatch { file: info(), holders: vec![holder] }]), limit).await;
    roundtrip(TrackerResponse::Error("no".into()), limit).await;
    roundtrip(TrackerResponse::Refused { retry: true, reason: "full for now".into() }, limit).await;
    roundtrip(TrackerResponse::RetryLater { reason: "tracker full (2 peers); retry later".into(), after_ms: 45_000 }, limit).await;
    let after = Some(protocol::PageAfter { name: "a.txt".into(), id: Digest([3; 32]) });
    roundtrip(TrackerRequest::FilesPage { after, limit: 1000 }, protocol::MAX_REQUEST_FRAME).await;
    roundtrip(TrackerResponse::FilesPage { files: vec![FileMatch { file: info(), holders: vec![] }], more: true }, limit).await;
    roundtrip(PeerRequest::Manifest { version: 1, id: Digest([1; 32]) }, limit).await;
    roundtrip(PeerRequest::Chunk { id: Digest([1; 32]), index: u32::MAX }, limit).await;
    roundtrip(PeerRequest::Describe { id: Digest([1; 32]) }, limit).await;
    roundtrip(protocol::Description::File(info()), limit).await;
    roundtrip(protocol::Description::Error("not shared publicly".into()), limit).await;
    roundtrip(ChunkHeader { id: Digest([2; 32]), index: 3, result: Ok(262_144) }, limit).await;
    roundtrip(ChunkHeader { id: Digest([2; 32]), index: 3, result: Err("gone".into()) }, limit).await;
    let (_, manifest) = Manifest::from_bytes(&vec![5u8; 3 * 1024 * 1024]);
    roundtrip(ManifestReply::Manifest(manifest), protocol::MAX_MANIFEST_FRAME).await;
}

#[tokio::test]
async fn a_retry_later_reason_reaches_the_screen_printable() {
    let frame = protocol::encode(&TrackerResponse::RetryLater { reason: "full\u{1b}[2J".into(), after_ms: 1 }).unwrap();
    let back: TrackerResponse = protocol::read_frame(&mut frame.as_slice(), protocol::MAX_FRAME).await.unwrap();
    let TrackerResponse::RetryLater { reason, after_ms: 1 } = back else { panic!("{back:?}") };
    assert!(reason.starts_with("full") && !reason.contains('\u{1b}'), "{reason:?}");
}

#[tokio::test]
async fn a_huge_length_prefix_is_refused_before_reading_the_body() {
    let frame = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    let err = protocol::read_frame::<_, TrackerRequest>(&mut frame.as_slice(), protocol::MAX_FRAME).await.unwrap_err();
    assert!(matches!(err, WireError::TooLarge { len: 0xffff_ffff, .. }), "{err}");
}

#[tokio::test]
async fn frames_over_their_limit_are_refused() {
    let big = TrackerRequest::Lookup { query: "x".repeat(2000) };
    let frame = protocol::encode(&big).unwrap();
    let err = protocol::read_frame::<_, TrackerRequest>(&mut frame.as_slice(), 1000).await.unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }));
}

#[tokio::test]
async fn a_nested_length_larger_than_the_frame_fails_without_allocating_it() {
    // Lookup (tag 3) whose string claims u64::MAX bytes: the decoder must stop at the limit.
    let body = [3u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let err = protocol::read_frame::<_, TrackerRequest>(&mut frame.as_slice(), protocol::MAX_FRAME).await.unwrap_err();
    assert!(matches!(err, WireError::Decode(_)), "{err}");
}

#[tokio::test]
async fn truncated_trailing_and_unknown_frames_fail_cleanly() {
    let frame = protocol::encode(&TrackerRequest::Lookup { query: "abc".into() }).unwrap();
    let cut = &frame[..frame.len() - 1];
    let err = protocol::read_frame::<_, TrackerRequest>(&mut &cut[..], protocol::MAX_FRAME).await.unwrap_err();
    assert!(matches!(err, WireError::Truncated), "{err}");

    let mut padded = frame[4..].to_vec();
    padded.push(0);
    let err = protocol::decode_body::<TrackerRequest>(&padded, protocol::MAX_FRAME).unwrap_err();
    assert!(matches!(err, WireError::Trailing(1)), "{err}");

    let unknown = [0, 0, 0, 1, 200];
    let err = protocol::read_frame::<_, TrackerRequest>(&mut &unknown[..], protocol::MAX_FRAME).await.unwrap_err();
    assert!(matches!(err, WireError::Decode(_)), "{err}");
}

#[tokio::test]
async fn random_bytes_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in 0..2000usize {
        let body: Vec<u8> = (0..len % 64)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = protocol::decode_body::<TrackerRequest>(&body, protocol::MAX_FRAME);
        let _ = protocol::decode_body::<TrackerResponse>(&body, protocol::MAX_FRAME);
        let _ = protocol::decode_body::<ChunkHeader>(&body, protocol::MAX_FRAME);
        let _ = protocol::decode_body::<ManifestReply>(&body, protocol::MAX_MANIFEST_FRAME);
    }
}

/// Hole punching's messages, byte for byte: changing these breaks deployed peers and trackers
/// (the tags follow every earlier variant's, so those keep their bytes).
#[test]
fn the_hole_punching_messages_keep_their_bytes() {
    let addr: std::net::SocketAddr = "10.99.0.11:5000".parse().unwrap();
    let introduce = protocol::encode(&TrackerRequest::Introduce { peer_id: "a".into(), fingerprint: Digest([9; 32]) }).unwrap();
    let mut want = vec![0, 0, 0, 35, 12, 1, b'a'];
    want.extend([9; 32]);
    assert_eq!(introduce, want);
    let introduced = protocol::encode(&TrackerResponse::Introduced { addr, start_in_ms: 15 }).unwrap();
    assert_eq!(introduced, [0, 0, 0, 10, 9, 0, 10, 99, 0, 11, 251, 0x88, 0x13, 15]);
    let punch = TrackerPush::Punch { version: protocol::PROTOCOL_VERSION, peer_id: "b".into(), addr, start_in_ms: 5 };
    assert_eq!(protocol::encode(&punch).unwrap(), [0, 0, 0, 13, 0, 1, 1, b'b', 0, 10, 99, 0, 11, 251, 0x88, 0x13, 5]);
}

/// Port mapping's message, byte for byte (tag 13, after `Introduce`); a mapped IPv6 address,
/// the largest, fits a request frame.
#[tokio::test]
async fn the_port_mapping_message_keeps_its_bytes_and_fits_a_request_frame() {
    let addr: std::net::SocketAddr = "10.99.0.11:5000".parse().unwrap();
    let mapped = protocol::encode(&TrackerRequest::Mapped { addr }).unwrap();
    assert_eq!(mapped, [0, 0, 0, 9, 13, 0, 10, 99, 0, 11, 251, 0x88, 0x13]);
    let widest = "[2001:db8::1]:65535".parse().unwrap();
    roundtrip(TrackerRequest::Mapped { addr: widest }, protocol::MAX_REQUEST_FRAME).await;
}

#[tokio::test]
async fn a_push_round_trips_within_its_limit_and_a_longer_one_is_refused() {
    let addr = "[2001:db8::1]:65535".parse().unwrap();
    roundtrip(TrackerPush::Punch { version: 1, peer_id: "x".repeat(64), addr, start_in_ms: u32::MAX }, protocol::MAX_PUSH_FRAME).await;
    roundtrip(TrackerResponse::Introduced { addr, start_in_ms: 0 }, protocol::MAX_FRAME).await;
    let huge = protocol::encode(&TrackerPush::Punch { version: 1, peer_id: "x".repeat(2000), addr, start_in_ms: 0 }).unwrap();
    let err = protocol::read_frame::<_, TrackerPush>(&mut huge.as_slice(), protocol::MAX_PUSH_FRAME).await.unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
}

/// Further addresses, byte for byte: `Addresses` is the request's tag 15 and `MatchesAt` the
/// response's tag 10, after every earlier variant. A holder's further addresses never change
/// the bytes of a plain `Matches` (older peers read it as before); they travel in `MatchesAt`
/// and come back onto each holder when it is read.
#[tokio::test]
async fn further_addresses_keep_their_bytes_and_leave_plain_matches_as_they_were() {
    let addr: std::net::SocketAddr = "10.99.0.11:5000".parse().unwrap();
    let told = protocol::encode(&TrackerRequest::Addresses(vec![addr])).unwrap();
    assert_eq!(told, [0, 0, 0, 10, 15, 1, 0, 10, 99, 0, 11, 251, 0x88, 0x13]);
    let reach = vec![protocol::Reach { peer_id: "a".into(), addrs: vec![addr] }];
    let at = protocol::encode(&TrackerResponse::MatchesAt { found: vec![], reach }).unwrap();
    assert_eq!(at, [0, 0, 0, 14, 10, 0, 1, 1, b'a', 1, 0, 10, 99, 0, 11, 251, 0x88, 0x13]);

    let file = FileInfo { id: Digest([1; 32]), name: "f".into(), size: 3, folder: None };
    let plain = Holder { peer_id: "h".into(), addr: "5.6.7.8:4000".parse().unwrap(), fingerprint: Digest([2; 32]), also: Vec::new() };
    let further = vec![addr, "[2001:db8::5]:4000".parse().unwrap()];
    let holder = Holder { also: further.clone(), ..plain.clone() };
    let found = vec![FileMatch { file: file.clone(), holders: vec![holder.clone()] }];
    let old = protocol::encode(&TrackerResponse::Matches(vec![FileMatch { file, holders: vec![plain] }])).unwrap();
    assert_eq!(protocol::encode(&TrackerResponse::matches(found.clone(), false)).unwrap(), old);
    let frame = protocol::encode(&TrackerResponse::matches(found.clone(), true)).unwrap();
    let read: TrackerResponse = protocol::read_frame(&mut frame.as_slice(), protocol::MAX_FRAME).await.unwrap();
    assert_eq!(read.into_matches().unwrap()[0].holders[0].also, further);
    // PunchAll is TrackerPush's third tag (2); its widest (9 IPv6 addresses, a 64-byte id)
    // fits a push frame.
    let push = TrackerPush::PunchAll { version: 1, peer_id: "b".into(), addrs: vec![addr], start_in_ms: 5 };
    assert_eq!(protocol::encode(&push).unwrap(), [0, 0, 0, 14, 2, 1, 1, b'b', 1, 0, 10, 99, 0, 11, 251, 0x88, 0x13, 5]);
    let nine = (0..9).map(|p| std::net::SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 65535 - p))).collect();
    let widest = TrackerPush::PunchAll { version: 1, peer_id: "x".repeat(64), addrs: nine, start_in_ms: u32::MAX };
    roundtrip(widest, protocol::MAX_PUSH_FRAME).await;
    let widest: Vec<std::net::SocketAddr> = (0..8).map(|p| std::net::SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], p))).collect();
    roundtrip(TrackerRequest::Addresses(widest), protocol::MAX_REQUEST_FRAME).await;
}

/// A progress report, byte for byte: `Progress` is the request's tag 16, after every earlier
/// variant; the file's id, then the segment bits with their length. The widest (256 segments,
/// 32 bytes) fits a request frame.
#[tokio::test]
async fn a_progress_report_keeps_its_bytes_and_fits_a_request_frame() {
    let report = protocol::encode(&TrackerRequest::Progress { id: Digest([1; 32]), have: vec![0xff, 0x03] }).unwrap();
    let mut expected = vec![0, 0, 0, 36, 16];
    expected.extend([1; 32]);
    expected.extend([2, 0xff, 0x03]);
    assert_eq!(report, expected);
    let have = protocol::progress::report(u64::MAX, 1 << 20, |i| i % 2 == 0);
    assert_eq!(have.len(), 32);
    roundtrip(TrackerRequest::Progress { id: Digest([9; 32]), have }, protocol::MAX_REQUEST_FRAME).await;
}
