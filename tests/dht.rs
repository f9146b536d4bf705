//! Holders found through the DHT, on a local 8-node mainline test network on 127.0.0.1 (the
//! public DHT is never contacted): the node and announcer alone, then whole peers that find
//! each other by file id with no tracker, or after theirs died.

mod common;

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

/// Peer options for a DHT on `boot`, with no tracker at all if `alone`.
fn on_dht(boot: &Bootstrap, alone: bool) -> impl FnOnce(&mut p2pq::peer::PeerConfig) + use<> {
    let boot = boot.clone();
    move |config| {
        config.dht = Some(boot);
        config.no_tracker = alone;
    }
}

/// `peer` shares `name` (`bytes`, written to its data folder) publicly and waits until it is
/// announced on the DHT.
async fn share_public(net: &Net, peer: &p2pq::peer::Peer, name: &str, bytes: &[u8]) -> Result<FileId> {
    net.write_data(peer, name, bytes)?;
    let shared = peer.share(name).await?;
    let mut announced = peer.on_dht();
    peer.make_public(&shared)?;
    let id = shared.info.id;
    tokio::time::timeout(TIMEOUT, announced.wait_for(|on| on.contains(&id))).await.context("never announced on the DHT")??;
    Ok(id)
}

use common::inproc::{Net, assert_got, get};
use p2pq::net::linksim::Link;

#[tokio::test]
async fn a_public_file_is_fetched_by_its_id_with_no_tracker_at_all() -> Result<()> {
    let (_net, boot) = testnet(8).await?;
    let mut net = Net::start().await?;
    let (holder, _) = net.add_peer_with("holder", Link::default(), on_dht(&boot, true)).await?;
    let data = common::bytes(700 * 1024, "dht only");
    let id = share_public(&net, &holder, "field notes.pdf", &data).await?;
    let (getter, _) = net.add_peer_with("getter", Link::default(), on_dht(&boot, true)).await?;
    let got = get(&getter, &id.to_hex()).await?;
    assert_got(&got, &data)?;
    assert_eq!(got.info.name, "field notes.pdf", "named as the holder described it");
    assert!(got.path.ends_with("field notes.pdf"), "{}", got.path.display());
    let Err(err) = getter.get("field notes.pdf").await else { anyhow::bail!("a name was found with no tracker") };
    assert!(format!("{err:#}").contains("full id"), "{err:#}");
    net.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_file_not_shared_publicly_is_refused_to_a_downloader_from_the_dht() -> Result<()> {
    let (_net, boot) = testnet(8).await?;
    let mut net = Net::start().await?;
    let (holder, _) = net.add_peer_with("holder", Link::default(), on_dht(&boot, false)).await?;
    share_public(&net, &holder, "open.txt", b"anyone may have this").await?;
    net.write_data(&holder, "secret.txt", b"only the tracker's peers may have this")?;
    let secret = holder.share("secret.txt").await?.info.id;
    // Someone points the DHT at the holder for the secret file (a stale or hostile entry).
    let liar = DhtNode::start(boot.clone(), Ipv4Addr::LOCALHOST, holder.local_addr()?.port()).await?;
    tokio::time::timeout(TIMEOUT, liar.announce(&secret)).await.context("announce timed out")??;
    let (getter, _) = net.add_peer_with("getter", Link::default(), on_dht(&boot, true)).await?;
    let Err(err) = tokio::time::timeout(common::inproc::GET_TIMEOUT, getter.get(&secret.to_hex())).await? else {
        anyhow::bail!("a file shared with the tracker's peers only was served to a downloader from the DHT")
    };
    let err = format!("{err:#}");
    assert!(err.contains("not publicly"), "the reason is said: {err}");
    let downloads = net.download_dir(&getter);
    let left = std::fs::read_dir(&downloads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing written in {}", downloads.display());
    net.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_download_whose_tracker_dies_goes_on_from_a_holder_found_on_the_dht() -> Result<()> {
    let (_net, boot) = testnet(8).await?;
    let mut net = Net::start().await?;
    let (first, _) = net.add_peer_with("first", Link::default(), on_dht(&boot, false)).await?;
    let data = common::bytes(6 << 20, "tracker dies");
    let id = share_public(&net, &first, "dataset.bin", &data).await?;
    // Slow enough that the tracker dies, and the first holder leaves, mid-download.
    let (getter, _) = net
        .add_peer_with("getter", Link::default(), |c| {
            on_dht(&boot, false)(c);
            c.download_limit = Some(512 << 10);
        })
        .await?;
    let (events, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let fetching = {
        let (getter, query) = (getter.clone(), id.to_hex());
        tokio::spawn(async move { getter.get_with(&query, Some(events), &CancellationToken::new()).await })
    };
    let first_chunk = async {
        while let Some(event) = progress.recv().await {
            if matches!(event, p2pq::peer::events::Progress::Chunk { .. }) {
                return true;
            }
        }
        false
    };
    anyhow::ensure!(tokio::time::timeout(TIMEOUT, first_chunk).await?, "the download never started");
    net.stop_tracker().await;
    let (second, _) = net.add_peer_with("second", Link::default(), on_dht(&boot, true)).await?;
    share_public(&net, &second, "dataset.bin", &data).await?;
    net.leave("first").await;
    let got = tokio::time::timeout(common::inproc::GET_TIMEOUT, fetching).await???;
    assert_got(&got, &data)?;
    let from_dht: u32 = got.from.iter().filter(|(holder, _)| holder.starts_with("dht:")).map(|(_, n)| n).sum();
    assert!(from_dht > 0, "the second holder, found on the DHT only, sent chunks: {:?}", got.from);
    let mut said_dht = false;
    while let Ok(event) = progress.try_recv() {
        said_dht |= matches!(event, p2pq::peer::events::Progress::FromDht(n) if n > 0);
    }
    assert!(said_dht, "the download said a holder came from the DHT (status and --json show it)");
    net.stop().await;
    Ok(())
}

#[tokio::test]
async fn hostile_dht_answers_cost_the_liar_never_the_file() -> Result<()> {
    use common::hostile::{HolderAnswer, fake_holder};
    let (_net, boot) = testnet(8).await?;
    let mut net = Net::start().await?;
    let (holder, _) = net.add_peer_with("holder", Link::default(), on_dht(&boot, true)).await?;
    let data = common::bytes(2 << 20, "hostile dht");
    let id = share_public(&net, &holder, "archive.tar", &data).await?;
    // On the DHT too: a holder that sends every chunk wrong, and an address where nobody is.
    let (liar, _liar_endpoint, _dir) = fake_holder(HolderAnswer::Corrupt(Arc::new(data.clone())));
    let (_nobody_socket, nobody) = free_port()?;
    for port in [liar.addr.port(), nobody] {
        let node = DhtNode::start(boot.clone(), Ipv4Addr::LOCALHOST, port).await?;
        tokio::time::timeout(TIMEOUT, node.announce(&id)).await.context("announce timed out")??;
    }
    let (getter, _) = net.add_peer_with("getter", Link::default(), on_dht(&boot, true)).await?;
    let (events, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let got =
        tokio::time::timeout(common::inproc::GET_TIMEOUT, getter.get_with(&id.to_hex(), Some(events), &CancellationToken::new())).await??;
    assert_got(&got, &data)?;
    let mut notes = Vec::new();
    while let Ok(event) = progress.try_recv() {
        if let p2pq::peer::events::Progress::Note(note) = event {
            notes.push(note);
        }
    }
    let liar_at = format!("dht:{}", liar.addr);
    let struck = notes.iter().any(|n| n.contains(&liar_at) && n.contains("failed verification"));
    assert!(struck, "the liar was dropped for its bad chunks, and said so: {notes:?}");
    assert_eq!(common::inproc::chunks_from(&got, &liar_at), 0, "no chunk of the liar's was kept: {:?}", got.from);
    net.stop().await;
    Ok(())
}

#[test]
fn seed_and_get_with_no_tracker_on_the_command_line() -> Result<()> {
    let net = mainline::Testnet::builder(8).build()?;
    let boot = net.bootstrap.join(",");
    let dir = tempfile::tempdir()?;
    let data = common::bytes(500 * 1024, "one-shot dht");
    std::fs::write(dir.path().join("talk.mp4"), &data)?;
    let dht = ["--no-tracker", "--dht-bootstrap", boot.as_str(), "--listen", "127.0.0.1:0"];
    let mut seed = common::Proc::spawn("seed", dir.path(), &[&["seed", "talk.mp4", "--public"][..], &dht[..]].concat());
    let line = seed.expect("on another machine: p2pq get ");
    let id = line.split_whitespace().find(|w| w.len() == 64).context("no id in the seed's line")?.to_string();
    assert_eq!(id, common::b3sum(&data), "the id is b3sum's");
    // The announce runs in the background; the seed says when it is done.
    seed.expect_any("talk.mp4 is on the DHT now");
    let mut get = common::Proc::spawn("get", dir.path(), &[&["get", id.as_str(), "--download-dir", "out"][..], &dht[..]].concat());
    assert!(get.wait_exit(TIMEOUT).success(), "get failed: {}", get.transcript());
    let out = dir.path().join("out");
    assert_eq!(std::fs::read(out.join("talk.mp4"))?, data, "the named file, byte for byte");
    Ok(())
}
