//! The bare quinn server the bench compares the tracker's memory with: the tracker's transport
//! settings, and nothing else.

use anyhow::Result;
use p2pq::net::identity::Identity;
use p2pq::net::tls;
use p2pq::protocol::{TRACKER_ALPN, TrackerRequest, TrackerResponse};

/// The bare server: accepts connections, answers each one's first request `Registered`,
/// and holds it, dropping its datagrams, until it closes.
pub async fn serve() -> Result<()> {
    let id = Identity::ephemeral("raw")?;
    let endpoint = tls::endpoint(&id, tls::server_config(&id, TRACKER_ALPN)?, "127.0.0.1:0".parse()?)?;
    println!("raw listening on {}", endpoint.local_addr()?);
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let Ok((mut send, mut recv)) = conn.accept_bi().await else { return };
            let _ = p2pq::protocol::read_frame::<_, TrackerRequest>(&mut recv, p2pq::protocol::MAX_FRAME).await;
            let _ = p2pq::protocol::write_frame(&mut send, &TrackerResponse::Registered { observed: conn.remote_address() }).await;
            let _ = send.finish();
            while conn.read_datagram().await.is_ok() {}
        });
    }
    Ok(())
}
