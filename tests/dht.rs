//! Holders found through the DHT, on a local 8-node mainline test network on 127.0.0.1 (the
//! public DHT is never contacted).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use p2pq::discovery::dht::{self, Bootstrap, DhtNode};
use p2pq::protocol::FileId;
use tokio_util::sync::CancellationToken;

/// How long one DHT step (an announce, a lookup) may take on loopback.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A local DHT of `nodes` nodes, and the addresses to bootstrap from it.
async fn testnet(nodes: usize) -> Result<(mainline::Testnet, Bootstrap)> {
    let net = tokio::task::spawn_blocking(move || mainline::Testnet::builder(nodes).build()).await??;
    let boot = net.bootstrap.iter().map(|a| a.parse::<SocketAddr>()).collect::<Result<Vec<_>, _>>()?;
    assert!(boot.iter().all(|a| a.ip().is_loopback()), "the test DHT stays on loopback");
    Ok((net, Bootstrap::Nodes(boot)))
}

/// A port the OS gave us (what a holder's QUIC endpoint would announce), with its socket.
fn free_port() -> Result<(std::net::UdpSocket, u16)> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = socket.local_addr()?.port();
    Ok((socket, port))
}

fn file(bytes: &[u8]) -> FileId {
    FileId::from(blake3::hash(bytes))
}

#[tokio::test]
async fn a_holder_announced_on_the_dht_is_found_by_the_file_id() -> Result<()> {
    let (_net, boot) = testnet(8).await?;
    let (_socket, port) = free_port()?;
    let holder = DhtNode::start(boot.clone(), Ipv4Addr::LOCALHOST, port).await?;
    let getter = DhtNode::start(boot, Ipv4Addr::LOCALHOST, 1).await?;
    let (id, other) = (file(b"holiday photos"), file(b"something nobody shares"));
    tokio::time::timeout(TIMEOUT, holder.announce(&id)).await.context("announce timed out")??;
    let found = tokio::time::timeout(TIMEOUT, getter.addresses(&id)).await?;
    assert_eq!(found, vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))], "the holder, at its QUIC port");
    assert!(tokio::time::timeout(TIMEOUT, getter.addresses(&other)).await?.is_empty(), "nobody announced that file");
    Ok(())
}

#[tokio::test]
async fn a_file_made_public_is_announced_and_one_never_public_is_not() -> Result<()> {
    let (_net, boot) = testnet(8).await?;
    let (_socket, port) = free_port()?;
    let holder = Arc::new(DhtNode::start(boot.clone(), Ipv4Addr::LOCALHOST, port).await?);
    let getter = DhtNode::start(boot, Ipv4Addr::LOCALHOST, 1).await?;
    let (public, private) = (file(b"public"), file(b"private"));
    let (publish, public_set) = tokio::sync::watch::channel(BTreeSet::new());
    let (on_dht, mut announced) = tokio::sync::watch::channel(BTreeSet::new());
    let shutdown = CancellationToken::new();
    let announcing = tokio::spawn(dht::keep_announced(holder, public_set, on_dht, dht::REANNOUNCE, shutdown.clone()));
    publish.send_replace(BTreeSet::from([public]));
    let me = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // The announce runs in the background: wait until it says it is done, then look.
    tokio::time::timeout(TIMEOUT, announced.wait_for(|on| on.contains(&public))).await.context("never announced")??;
    let found = tokio::time::timeout(TIMEOUT, getter.addresses(&public)).await?;
    assert!(found.contains(&me), "the public file is found at the holder: {found:?}");
    assert!(getter.addresses(&private).await.is_empty(), "a file never made public is not on the DHT");
    publish.send_replace(BTreeSet::new());
    tokio::time::timeout(TIMEOUT, announced.wait_for(BTreeSet::is_empty)).await.context("still listed as on the DHT")??;
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, announcing).await.context("the announcer did not stop")??;
    Ok(())
}
