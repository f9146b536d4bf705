//! Fuzzes the codec: any bytes, as a frame body of every message type and as a stream read
//! through `read_frame`, must decode to a message or an error, without panicking or allocating
//! past the frame limit; whatever decodes must encode and decode again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pq::protocol::{self, ChunkHeader, ManifestReply, PeerRequest, TrackerRequest, TrackerResponse};

/// Decodes `body` as `T`; whatever decodes survives encode → decode unchanged.
fn body<T>(body: &[u8], limit: usize)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = protocol::decode_body::<T>(body, limit) {
        let frame = protocol::encode(&msg).expect("a decoded message encodes");
        let again: T = protocol::decode_body(&frame[4..], limit).expect("an encoded message decodes");
        assert_eq!(again, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    body::<TrackerRequest>(data, protocol::MAX_FRAME);
    body::<PeerRequest>(data, protocol::MAX_FRAME);
    body::<TrackerResponse>(data, protocol::MAX_FRAME);
    body::<protocol::TrackerPush>(data, protocol::MAX_PUSH_FRAME);
    body::<ChunkHeader>(data, protocol::MAX_FRAME);
    body::<ManifestReply>(data, protocol::MAX_MANIFEST_FRAME);
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let _ = protocol::read_frame::<_, TrackerRequest>(&mut &data[..], protocol::MAX_REQUEST_FRAME).await;
        let _ = protocol::read_frame::<_, ManifestReply>(&mut &data[..], protocol::MAX_MANIFEST_FRAME).await;
    });
});
