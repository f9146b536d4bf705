//! Several trackers: a peer given more than one registers with all, asks all, and tells all
//! what it shares; one going away is a notice, and the others carry on.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::inproc::{Net, PEER_TIMEOUT, SETTLE_TIMEOUT, assert_got, get, wait_for};
use p2pq::net::linksim::{self, Link};
use p2pq::peer::{OtherTracker, Peer};
use p2pq::tracker::{self, Running, TrackerConfig};

/// A second tracker with a certificate of its own.
async fn second_tracker(dir: &std::path::Path) -> Result<Running> {
    let config = TrackerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        certs: dir.join("certs-2"),
        state_dir: dir.join("tracker-2"),
        peer_timeout: PEER_TIMEOUT,
        advertise: Vec::new(),
        limits: tracker::Limits::default(),
    };
    let sim = linksim::socket(config.listen, Link::default())?;
    tracker::start_on(&config, sim.socket).await.context("cannot start the second tracker")
}

/// Waits until `tracker` lists a file called `name` held by `peer`.
async fn lists(tracker: &Running, name: &str, peer: &Peer) -> Result<()> {
    let held = || tracker.tracker.files().iter().any(|m| m.file.name == name && m.holders.iter().any(|h| h.peer_id == peer.id()));
    wait_for(SETTLE_TIMEOUT, held).await.with_context(|| format!("the second tracker never listed {name} at {}", peer.id()))
}

#[tokio::test]
async fn with_two_trackers_one_killed_lookups_and_shares_go_on_through_the_other() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let other = second_tracker(scratch.path()).await?;
    let both = {
        let pin = OtherTracker { addrs: vec![other.addr], pin: other.fingerprint };
        move |config: &mut p2pq::peer::PeerConfig| config.other_trackers = vec![pin]
    };
    let mut net = Net::start().await?;
    let (holder, _) = net.add_peer_with("holder", Link::default(), both.clone()).await?;
    let (getter, _) = net.add_peer_with("getter", Link::default(), both).await?;
    let first = common::bytes(400 * 1024, "before");
    net.write_data(&holder, "before.bin", &first)?;
    holder.share("before.bin").await?;
    lists(&other, "before.bin", &holder).await?;
    assert_got(&get(&getter, "before.bin").await?, &first)?;

    net.stop_tracker().await;
    // Shared after the first tracker died: only the second can hear of it, and name it.
    let later = common::bytes(300 * 1024, "after");
    net.write_data(&holder, "after.bin", &later)?;
    holder.share("after.bin").await?;
    lists(&other, "after.bin", &holder).await?;
    let got = tokio::time::timeout(Duration::from_secs(60), getter.get("after.bin")).await??;
    assert_got(&got, &later)?;
    assert!(other.tracker.peers().iter().any(|(id, _)| id == "getter"), "the getter is still registered with the second tracker");
    net.stop().await;
    other.stop().await;
    Ok(())
}
