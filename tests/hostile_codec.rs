//! Properties of the codec, over arbitrary input: every message survives encode → decode, any
//! byte string decodes to a message or an error (never a panic, never a huge allocation), and
//! reasons from the network come back printable. Runs in CI; `fuzz/` pushes the same harder.

use p2pq::content::manifest::Manifest;
use p2pq::protocol::{
    self, ChunkHeader, Digest, FileInfo, FileMatch, Holder, MAX_FRAME, MAX_MANIFEST_FRAME, ManifestReply, PeerRequest, TrackerRequest,
    TrackerResponse,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Printable text (no control or format characters), as a name or reason could be.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn file() -> impl Strategy<Value = FileInfo> {
    (digest(), text(), any::<u64>()).prop_map(|(id, name, size)| FileInfo { id, name, size, folder: None })
}

/// An address as the wire carries it: IPv6 flow info and scope id are not sent.
fn addr() -> impl Strategy<Value = std::net::SocketAddr> {
    (any::<std::net::IpAddr>(), any::<u16>()).prop_map(std::net::SocketAddr::from)
}

fn holder() -> impl Strategy<Value = Holder> {
    (text(), addr(), digest()).prop_map(|(peer_id, addr, fingerprint)| Holder { peer_id, addr, fingerprint, also: Vec::new() })
}

fn tracker_request() -> impl Strategy<Value = TrackerRequest> {
    prop_oneof![
        (any::<u16>(), text(), vec(file(), 0..4)).prop_map(|(version, peer_id, files)| TrackerRequest::Register {
            version,
            peer_id,
            files
        }),
        Just(TrackerRequest::Alive),
        file().prop_map(TrackerRequest::Share),
        text().prop_map(|query| TrackerRequest::Lookup { query }),
        Just(TrackerRequest::Files),
        Just(TrackerRequest::Exit),
        digest().prop_map(|fingerprint| TrackerRequest::Verify { fingerprint }),
        (proptest::option::of((text(), digest())), any::<u32>()).prop_map(|(after, limit)| TrackerRequest::FilesPage {
            after: after.map(|(name, id)| p2pq::protocol::PageAfter { name, id }),
            limit
        }),
        (text(), digest()).prop_map(|(peer_id, fingerprint)| TrackerRequest::Introduce { peer_id, fingerprint }),
    ]
}

fn tracker_response() -> impl Strategy<Value = TrackerResponse> {
    prop_oneof![
        addr().prop_map(|observed| TrackerResponse::Registered { observed }),
        Just(TrackerResponse::Ok),
        vec((file(), vec(holder(), 0..3)).prop_map(|(file, holders)| FileMatch { file, holders }), 0..4).prop_map(TrackerResponse::Matches),
        text().prop_map(TrackerResponse::Error),
        proptest::option::of(text()).prop_map(|peer_id| TrackerResponse::Verified { peer_id }),
        (text(), any::<u32>()).prop_map(|(reason, after_ms)| TrackerResponse::RetryLater { reason, after_ms }),
        (addr(), any::<u32>()).prop_map(|(addr, start_in_ms)| TrackerResponse::Introduced { addr, start_in_ms }),
    ]
}

fn peer_request() -> impl Strategy<Value = PeerRequest> {
    prop_oneof![
        (any::<u16>(), digest()).prop_map(|(version, id)| PeerRequest::Manifest { version, id }),
        (digest(), any::<u32>()).prop_map(|(id, index)| PeerRequest::Chunk { id, index }),
    ]
}

fn manifest_reply() -> impl Strategy<Value = ManifestReply> {
    prop_oneof![
        (any::<u64>(), any::<u32>(), vec(any::<[u8; 32]>(), 0..8))
            .prop_map(|(size, chunk_size, chunks)| ManifestReply::Manifest(Manifest { size, chunk_size, chunks })),
        text().prop_map(ManifestReply::Error),
    ]
}

fn chunk_header() -> impl Strategy<Value = ChunkHeader> {
    (digest(), any::<u32>(), prop_oneof![any::<u32>().prop_map(Ok), text().prop_map(Err)]).prop_map(|(id, index, result)| ChunkHeader {
        id,
        index,
        result,
    })
}

fn roundtrip<T>(msg: &T, limit: usize) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let frame = protocol::encode(msg).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    protocol::decode_body(&frame[4..], limit).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tracker_requests_round_trip(msg in tracker_request()) {
        prop_assert_eq!(roundtrip(&msg, MAX_FRAME), msg);
    }

    #[test]
    fn tracker_responses_round_trip(msg in tracker_response()) {
        prop_assert_eq!(roundtrip(&msg, MAX_FRAME), msg);
    }

    #[test]
    fn tracker_pushes_round_trip(version in any::<u16>(), peer_id in text(), addr in addr(), start_in_ms in any::<u32>()) {
        let msg = protocol::TrackerPush::Punch { version, peer_id, addr, start_in_ms };
        prop_assert_eq!(roundtrip(&msg, protocol::MAX_PUSH_FRAME), msg);
    }

    #[test]
    fn peer_messages_round_trip(req in peer_request(), reply in manifest_reply(), header in chunk_header()) {
        prop_assert_eq!(roundtrip(&req, MAX_FRAME), req);
        prop_assert_eq!(roundtrip(&reply, MAX_MANIFEST_FRAME), reply);
        prop_assert_eq!(roundtrip(&header, MAX_FRAME), header);
    }

    #[test]
    fn reasons_from_the_network_come_back_printable(reason in any::<String>()) {
        let back = roundtrip(&TrackerResponse::Error(reason.clone()), MAX_FRAME);
        prop_assert_eq!(&back, &TrackerResponse::Error(protocol::printable_capped(&reason, protocol::MAX_REASON_LEN)));
        let TrackerResponse::Error(shown) = back else { unreachable!() };
        prop_assert!(!shown.chars().any(char::is_control));
        prop_assert!(shown.len() <= protocol::MAX_REASON_LEN + '…'.len_utf8() + 10);
        let header = roundtrip(&ChunkHeader { id: Digest([0; 32]), index: 0, result: Err(reason.clone()) }, MAX_FRAME);
        prop_assert_eq!(header.result, Err(protocol::printable_capped(&reason, protocol::MAX_REASON_LEN)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..512)) {
        let _ = protocol::decode_body::<TrackerRequest>(&body, MAX_FRAME);
        let _ = protocol::decode_body::<TrackerResponse>(&body, MAX_FRAME);
        let _ = protocol::decode_body::<PeerRequest>(&body, MAX_FRAME);
        let _ = protocol::decode_body::<ChunkHeader>(&body, MAX_FRAME);
        let _ = protocol::decode_body::<ManifestReply>(&body, MAX_MANIFEST_FRAME);
        let _ = protocol::decode_body::<protocol::TrackerPush>(&body, protocol::MAX_PUSH_FRAME);
    }

    #[test]
    fn arbitrary_frames_on_a_stream_never_panic(frame in vec(any::<u8>(), 0..512)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let _ = protocol::read_frame::<_, TrackerRequest>(&mut frame.as_slice(), protocol::MAX_REQUEST_FRAME).await;
            let _ = protocol::read_frame::<_, ManifestReply>(&mut frame.as_slice(), MAX_MANIFEST_FRAME).await;
        });
    }

    #[test]
    fn a_mutated_valid_frame_decodes_or_fails_cleanly(msg in tracker_request(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut frame = protocol::encode(&msg).unwrap();
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(protocol::read_frame::<_, TrackerRequest>(&mut frame.as_slice(), MAX_FRAME));
    }
}
