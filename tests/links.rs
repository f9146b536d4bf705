//! Downloads survive slow, shared, lossy and long links, and a holder that goes silent.
//!
//! Everything runs in this process on 127.0.0.1, each peer on a simulated uplink
//! (`p2pq::net::linksim`: rate cap with a drop-tail queue, one-way delay, seeded loss), so the
//! tests need no root and no netem. A round trip between two peers is the sum of both
//! one-way delays. Each test checks what a user checks: the `get` finishes in time and the
//! file on disk is byte for byte the original.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::bytes;
use common::inproc::{GET_TIMEOUT, Net, assert_got, chunks_from, get, wait_for};
use p2pq::logbook::now_ms;
use p2pq::net::linksim::Link;
use tokio::time::Instant;

/// Chunk size of a download (the default), to reason about chunk counts.
const CHUNK: usize = 256 << 10;
/// A MiB.
const MIB: usize = 1 << 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A link with `delay_ms` one way, capped at `mbit` Mbit/s.
fn link(mbit: f64, delay_ms: u64) -> Link {
    Link::default().rate_mbit(mbit).delay(ms(delay_ms))
}

/// Control: on perfect links a 1 MiB file arrives intact (the harness works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_crosses_perfect_links() -> Result<()> {
    let mut net = Net::start().await?;
    let data = bytes(MIB, "perfect");
    net.seeder("holder", Link::default(), "f.bin", &data).await?;
    let (getter, _) = net.add_peer("getter", Link::default()).await?;
    let got = get(&getter, "f.bin").await?;
    assert_got(&got, &data)?;
    ensure!(chunks_from(&got, "holder") >= (MIB / CHUNK) as u32, "chunks from {:?}", got.from);
    net.stop().await;
    Ok(())
}

/// A holder behind a 2 Mbit/s uplink (10 ms each way): a 3 MiB file, ~13 s of uplink time,
/// arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_arrives_from_a_holder_on_a_2_mbit_uplink() -> Result<()> {
    let mut net = Net::start().await?;
    let data = bytes(3 * MIB, "2 mbit uplink");
    net.seeder("holder", link(2.0, 10), "f.bin", &data).await?;
    let (getter, _) = net.add_peer("getter", Link::default().delay(ms(10))).await?;
    let got = get(&getter, "f.bin").await?;
    eprintln!("2 Mbit/s holder: {:.1} s, chunks from {:?}", got.elapsed.as_secs_f64(), got.from);
    assert_got(&got, &data)?;
    net.stop().await;
    Ok(())
}

/// Four downloaders ask one 5 Mbit/s seeder for the same 2 MiB file at once: its uplink is
/// shared four ways (8 MiB in all, ~14 s), and every one of them gets the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_downloaders_share_one_5_mbit_seeder() -> Result<()> {
    let mut net = Net::start().await?;
    let data = bytes(2 * MIB, "shared uplink");
    net.seeder("seeder", link(5.0, 10), "f.bin", &data).await?;
    let mut getters = Vec::new();
    for n in 1..=4 {
        getters.push(net.add_peer(&format!("getter{n}"), Link::default().delay(ms(10)).seed(n)).await?.0);
    }
    let gets: Vec<_> = getters.iter().cloned().map(|peer| tokio::spawn(async move { get(&peer, "f.bin").await })).collect();
    let mut failures = Vec::new();
    for (peer, joined) in getters.iter().zip(gets) {
        match joined.await.context("get task panicked")? {
            Ok(got) => {
                eprintln!("{}: {:.1} s, chunks from {:?}", peer.id(), got.elapsed.as_secs_f64(), got.from);
                if let Err(err) = assert_got(&got, &data) {
                    failures.push(format!("{}: {err:#}", peer.id()));
                }
            }
            Err(err) => failures.push(format!("{}: {err:#}", peer.id())),
        }
    }
    ensure!(failures.is_empty(), "{} of 4 downloads failed: {}", failures.len(), failures.join("; "));
    net.stop().await;
    Ok(())
}

/// 40 ms round trip with 1% loss each way (holder capped at 20 Mbit/s): a 4 MiB file arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_crosses_a_40_ms_link_losing_1_percent() -> Result<()> {
    let mut net = Net::start().await?;
    let data = bytes(4 * MIB, "lossy link");
    net.seeder("holder", link(20.0, 20).loss_percent(1.0).seed(1), "f.bin", &data).await?;
    let (getter, _) = net.add_peer("getter", Link::default().delay(ms(20)).loss_percent(1.0).seed(2)).await?;
    let got = get(&getter, "f.bin").await?;
    eprintln!("40 ms, 1% loss: {:.1} s, chunks from {:?}", got.elapsed.as_secs_f64(), got.from);
    assert_got(&got, &data)?;
    net.stop().await;
    Ok(())
}

/// Slow is not dead: 2 Mbit/s, 200 ms round trip, 2% loss each way on both the holder and the
/// getter (their tracker traffic crosses those links too). Lookup, manifest and a 1 MiB file
/// all get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_crosses_a_slow_long_lossy_link() -> Result<()> {
    let mut net = Net::start().await?;
    let data = bytes(MIB, "slow long lossy");
    let bad = link(2.0, 100).loss_percent(2.0);
    net.seeder("holder", bad.seed(1), "f.bin", &data).await?;
    let (getter, _) = net.add_peer("getter", bad.seed(2)).await?;
    let got = get(&getter, "f.bin").await?;
    eprintln!("2 Mbit/s, 200 ms, 2% loss: {:.1} s, chunks from {:?}", got.elapsed.as_secs_f64(), got.from);
    assert_got(&got, &data)?;
    net.stop().await;
    Ok(())
}

/// A holder that goes silent mid-download (up, but nothing it sends arrives any more) is left
/// within seconds: the healthy holder delivers the rest, the file arrives well inside the
/// timeout, and most chunks came from the healthy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_gone_silent_is_left_for_a_healthy_one() -> Result<()> {
    /// From the cut to the file in place: the healthy holder alone moves all 8 MiB in ~4 s;
    /// this leaves room for noticing the silence, not for waiting on it for long.
    const AFTER_CUT: Duration = Duration::from_secs(20);
    let mut net = Net::start().await?;
    let data = bytes(8 * MIB, "silent holder");
    let count = data.len().div_ceil(CHUNK);
    let (_, doomed) = net.seeder("doomed", link(16.0, 10).seed(1), "f.bin", &data).await?;
    net.seeder("healthy", link(16.0, 10).seed(2), "f.bin", &data).await?;
    let (getter, _) = net.add_peer("getter", Link::default().delay(ms(10))).await?;
    let getting = tokio::spawn({
        let getter = getter.clone();
        async move { get(&getter, "f.bin").await }
    });
    // Cut once the doomed holder has delivered a chunk: it is then part of the download.
    let from_doomed = || getter.chunk_log().map(|log| log.iter().any(|r| r.from == "doomed")).unwrap_or(false);
    wait_for(Duration::from_secs(30), from_doomed).await.context("no chunk from the doomed holder")?;
    doomed.cut();
    let cut = Instant::now();
    let done_at_cut = getter.chunk_log()?.len();
    ensure!(done_at_cut < count / 2, "the cut came too late to test anything: {done_at_cut} of {count} chunks were in");
    let got = getting.await.context("get task panicked")??;
    let after_cut = cut.elapsed();
    eprintln!("cut after {done_at_cut} chunks; done {:.1} s later, chunks from {:?}", after_cut.as_secs_f64(), got.from);
    assert_got(&got, &data)?;
    ensure!(after_cut < AFTER_CUT, "the get took {after_cut:?} after the holder went silent (limit {AFTER_CUT:?})");
    let healthy = chunks_from(&got, "healthy") as usize;
    ensure!(healthy > count / 2, "only {healthy} of {count} chunks came from the healthy holder: {:?}", got.from);
    ensure!(got.elapsed < GET_TIMEOUT / 3, "the get took {:?}", got.elapsed);
    net.stop().await;
    Ok(())
}

/// A holder that is slow but steady is kept: beside a 16 Mbit/s holder, a 1 Mbit/s one (a
/// chunk every ~2.1 s) goes on delivering until the end of a 32 MiB download (~17 s), instead
/// of being dropped for being slow after its first chunks. Its last chunk must land in the
/// download's final third: a holder dropped at the first long wait (~5 s in) stops at ~7 s, and
/// one kept is never more than a couple of its chunks (~4.4 s) from the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_moving_holder_is_kept() -> Result<()> {
    let mut net = Net::start().await?;
    let data = bytes(32 * MIB, "slow holder");
    net.seeder("fast", link(16.0, 10).seed(1), "f.bin", &data).await?;
    net.seeder("slow", link(1.0, 10).seed(2), "f.bin", &data).await?;
    let (getter, _) = net.add_peer("getter", Link::default().delay(ms(10))).await?;
    let started = now_ms();
    let got = get(&getter, "f.bin").await?;
    let ended = now_ms();
    let slow_at: Vec<i64> = getter.chunk_log()?.iter().filter(|r| r.from == "slow").map(|r| r.ts_ms - started).collect();
    let took = ended - started;
    eprintln!("16 + 1 Mbit/s: {:.1} s, chunks from {:?}, slow chunks at {slow_at:?} ms", got.elapsed.as_secs_f64(), got.from);
    assert_got(&got, &data)?;
    ensure!(chunks_from(&got, "slow") >= 1, "the slow holder delivered no chunk: {:?}", got.from);
    let last = slow_at.iter().copied().max().unwrap_or(0);
    ensure!(
        last >= took * 2 / 3,
        "the slow holder's last chunk landed {last} ms into a {took} ms download: it was dropped, not kept ({:?})",
        got.from
    );
    net.stop().await;
    Ok(())
}
