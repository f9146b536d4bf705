//! A QUIC endpoint whose receive loop runs on a thread of its own.
//!
//! quinn reads an endpoint's socket in one task (its endpoint driver) that takes at most
//! 50 µs a turn and then queues behind every other runnable task. On a tracker with a hundred
//! thousand connections, a burst (everyone leaving at once) makes hundreds of thousands of
//! tasks runnable, the driver's turn comes seconds apart, and the kernel drops what its
//! receive buffer cannot hold: measured, 503,109 datagrams dropped in a mass close of 100,000
//! peers (`cargo bench --bench tracker_load`), every drop a resend and more load. On its own
//! thread, the driver's turn comes as soon as it yields, and the operating system shares the
//! cores between it and the workers, so the socket is drained while the connections catch up.
//! Connections' own drivers stay on the caller's runtime: only the reading and the routing of
//! datagrams move.

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow};
use tokio_util::sync::CancellationToken;

use super::identity::Identity;

/// The thread that runs an endpoint's receive loop; stopped when dropped (after the endpoint
/// is done with: the socket is registered with this thread's reactor).
#[derive(Debug)]
pub struct Receiver {
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// [`super::tls::endpoint_with`], with the endpoint's receive loop on a thread of its own;
/// returns the endpoint, the receive buffer granted, and the thread's handle.
pub fn endpoint_with(
    id: &Identity,
    server: quinn::ServerConfig,
    addr: SocketAddr,
    buffer: usize,
) -> Result<(quinn::Endpoint, usize, Receiver)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("make the receive thread's runtime")?;
    let (endpoint, granted) = {
        // Inside this runtime's context, the socket registers with its reactor and quinn
        // spawns the endpoint driver onto it; connections accepted later spawn their drivers
        // wherever `accept` is called.
        let _inside = runtime.enter();
        super::tls::endpoint_with(id, server, addr, buffer)?
    };
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("p2pq-recv".into())
        .spawn(move || runtime.block_on(stopped.cancelled()))
        .map_err(|err| anyhow!("start the receive thread: {err}"))?;
    Ok((endpoint, granted, Receiver { stop }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_to_an_endpoint_read_on_its_own_thread_carries_data() {
        let dir = tempfile::tempdir().unwrap();
        let server_id = Identity::load_or_create(dir.path(), "server").unwrap();
        let client_id = Identity::load_or_create(dir.path(), "client").unwrap();
        let server = crate::net::tls::server_config(&server_id, b"test").unwrap();
        let (endpoint, _, receiver) = endpoint_with(&server_id, server, "127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let conn = endpoint.accept().await.unwrap().await.unwrap();
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            let got = recv.read_to_end(1 << 20).await.unwrap();
            send.write_all(&got).await.unwrap();
            send.finish().unwrap();
            conn.closed().await;
            endpoint
        });
        let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let config = crate::net::tls::client_config(&client_id, b"test", server_id.fingerprint).unwrap();
        let conn = client.connect_with(config, addr, crate::net::tls::SERVER_NAME).unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let sent = vec![7u8; 300_000];
        send.write_all(&sent).await.unwrap();
        send.finish().unwrap();
        assert_eq!(recv.read_to_end(1 << 20).await.unwrap(), sent);
        conn.close(0u32.into(), b"done");
        let endpoint = tokio::time::timeout(std::time::Duration::from_secs(10), serve).await.unwrap().unwrap();
        endpoint.wait_idle().await;
        drop(receiver);
    }
}
