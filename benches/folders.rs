//! Folders against single files, in process on loopback, side by side in one run:
//!
//! - **small files**: a tree of many files of 4–64 KiB, fetched with one `get`, against one
//!   file of the same total size (target: ≥ 0.8× the single file's rate);
//! - **big files**: a tree of 100 files of 10 MiB against one file of their total size
//!   (target: ≥ 0.95×);
//! - **hashing**: `share DIR` of each tree against `b3sum` over the same files (the `b3sum`
//!   in PATH, `cargo install b3sum`; skipped if there is none) and against the blake3 crate
//!   reading each file on a thread per core (a stricter baseline: no process, no output);
//!   target ≥ 0.9× of `b3sum`.
//!
//! Each get runs on a fresh peer (so nothing is "already here"), alternating folder and file,
//! [`ROUNDS`] times; the medians are compared. The holder and getters are in-process peers
//! on perfect links (`tests/common/inproc.rs`).
//!
//! Run: `cargo bench --bench folders`. Knobs: `P2PQ_FOLDER_SMALL` (small files, default
//! 10000), `P2PQ_FOLDER_BIG` (big files, default 100), `P2PQ_FOLDER_BIG_MIB` (each, default
//! 10); a count of 0 leaves that part out. It checks free space first and needs about 3× the
//! two trees.

#[path = "common/sizes.rs"]
mod sizes;
use sizes::mib;
#[path = "../tests/common/inproc.rs"]
#[allow(dead_code)]
mod inproc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use inproc::Net;
use p2pq::net::linksim::Link;
use p2pq::peer::Peer;

/// Gets of each kind per comparison.
const ROUNDS: usize = 3;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(err) = rt.block_on(run()) {
        println!("folders: cannot run: {err:#}");
    }
}

fn env_or(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map_err(|_| anyhow!("{name}={text:?} is not a number")),
        Err(_) => Ok(default),
    }
}

async fn run() -> Result<()> {
    let small = env_or("P2PQ_FOLDER_SMALL", 10_000)? as usize;
    let big = env_or("P2PQ_FOLDER_BIG", 100)? as usize;
    let big_size = env_or("P2PQ_FOLDER_BIG_MIB", 10)? << 20;
    let mut net = Net::start().await?;
    let (holder, _) = net.add_peer("holder", Link::default()).await?;
    let small_sizes: Vec<u64> = (0..small as u64).map(|i| (4 << 10) + (i * 7919 % 61) * 1024).collect();
    let big_sizes = vec![big_size; big];
    let total: u64 = small_sizes.iter().sum::<u64>() + big_sizes.iter().sum::<u64>();
    let data = net.write_data(&holder, "probe", b"")?.parent().context("data folder")?.to_path_buf();
    let free = p2pq::store::space::free_bytes(&data).unwrap_or(0);
    ensure!(free > total * (2 + 2 * ROUNDS as u64), "needs {} free, {} free", mib(total * (2 + 2 * ROUNDS as u64)), mib(free));
    write_tree(&data.join("small"), &small_sizes)?;
    write_tree(&data.join("big"), &big_sizes)?;
    write_file(&data.join("small.bin"), small_sizes.iter().sum(), 1)?;
    write_file(&data.join("big.bin"), big_sizes.iter().sum(), 2)?;
    let parts: Vec<(&str, &str, f64, usize)> =
        [("small", "small.bin", 0.8, small), ("big", "big.bin", 0.95, big)].into_iter().filter(|p| p.3 > 0).collect();
    for &(folder, _, _, files) in &parts {
        hashing(&holder, folder, &data.join(folder), files).await?;
    }
    for name in ["small.bin", "big.bin"] {
        holder.share(name).await.with_context(|| format!("cannot share {name}"))?;
    }
    let mut getters = 0;
    let mut downloaded = Vec::new();
    for &(folder, file, target, files) in &parts {
        let (mut folder_times, mut file_times) = (Vec::new(), Vec::new());
        let (mut folder_cpu, mut file_cpu) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (name, times, cpus) in [(folder, &mut folder_times, &mut folder_cpu), (file, &mut file_times, &mut file_cpu)] {
                getters += 1;
                let id = format!("getter{getters}");
                let (getter, _) = net.add_peer(&id, Link::default()).await?;
                let (started, cpu) = (Instant::now(), cpu_seconds());
                let got = inproc::get(&getter, name).await?;
                times.push(started.elapsed());
                cpus.push(Duration::from_secs_f64(cpu_seconds() - cpu));
                // Removed at the end, not now: ext4 looks past recently deleted inodes when it
                // makes new ones, which made the next round's 10,000 creates cost seconds.
                downloaded.push(got.path);
                net.leave(&id).await;
            }
        }
        let size = if folder == "small" { small_sizes.iter().sum::<u64>() } else { big_sizes.iter().sum() };
        let (tree, one) = (median(&mut folder_times), median(&mut file_times));
        let ratio = one.as_secs_f64() / tree.as_secs_f64();
        let (tree_cpu, one_cpu) = (median(&mut folder_cpu), median(&mut file_cpu));
        println!(
            "{folder}: {files} files, {}: folder {:.2} s ({:.0} MB/s), one file {:.2} s ({:.0} MB/s): {ratio:.2}x (target {target}x); CPU of both peers {:.2} s against {:.2} s",
            mib(size),
            tree.as_secs_f64(),
            size as f64 / tree.as_secs_f64() / 1e6,
            one.as_secs_f64(),
            size as f64 / one.as_secs_f64() / 1e6,
            tree_cpu.as_secs_f64(),
            one_cpu.as_secs_f64(),
        );
    }
    net.stop().await;
    for path in downloaded {
        std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path)).ok();
    }
    Ok(())
}

/// Shares the tree at `tree` (called `name` in the data folder) and hashes its files with
/// `b3sum` (if it is in PATH) and with the blake3 crate on every core, alternating,
/// [`ROUNDS`] times each; prints the medians side by side.
async fn hashing(holder: &Peer, name: &str, tree: &Path, files: usize) -> Result<()> {
    let paths = files_under(tree);
    let has_b3sum = std::process::Command::new("b3sum").arg("--version").output().is_ok_and(|o| o.status.success());
    let (mut ours, mut tool, mut crate_) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let shared = holder.share(name).await?;
        ensure!(shared.folder.map(|f| f.files) == Some(files), "not every file was shared");
        ours.push(started.elapsed());
        if has_b3sum {
            let started = Instant::now();
            b3sum(&paths)?;
            tool.push(started.elapsed());
        }
        let started = Instant::now();
        blake3_on_every_core(&paths);
        crate_.push(started.elapsed());
    }
    let ours = median(&mut ours);
    let mut line = format!("hashing {name} ({files} files): share {:.3} s", ours.as_secs_f64());
    if has_b3sum {
        let theirs = median(&mut tool);
        line += &format!("; b3sum {:.3} s: {:.2}x", theirs.as_secs_f64(), theirs.as_secs_f64() / ours.as_secs_f64());
    }
    let theirs = median(&mut crate_);
    line += &format!(
        "; blake3 crate, a thread per core {:.3} s: {:.2}x (target 0.9x of b3sum{})",
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        if has_b3sum { "" } else { "; no b3sum in PATH: cargo install b3sum" }
    );
    println!("{line}");
    Ok(())
}

/// `b3sum` over every file, as a person would check them.
fn b3sum(paths: &[PathBuf]) -> Result<()> {
    // One command line for all (as `b3sum **/*` would), in pieces that fit ARG_MAX.
    for part in paths.chunks(2000) {
        let status = std::process::Command::new("b3sum").args(part).stdout(std::process::Stdio::null()).status()?;
        ensure!(status.success(), "b3sum failed");
    }
    Ok(())
}

/// Every file read and hashed with the blake3 crate, the files split across one thread per
/// core: a baseline with no per-process or per-file cost beyond the read.
fn blake3_on_every_core(paths: &[PathBuf]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for part in paths.chunks(paths.len().div_ceil(cores).max(1)) {
            scope.spawn(move || {
                for path in part {
                    let _ = std::fs::read(path).map(|bytes| blake3::hash(&bytes));
                }
            });
        }
    });
}

fn write_tree(root: &Path, sizes: &[u64]) -> Result<()> {
    for (i, &size) in sizes.iter().enumerate() {
        let dir = root.join(format!("{:03}", i % 100));
        std::fs::create_dir_all(&dir)?;
        write_file(&dir.join(format!("{i}.bin")), size, i as u64 + 10)?;
    }
    Ok(())
}

/// A file of `size` bytes of seeded noise (so no two files are alike).
fn write_file(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut left = size;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = left.min(8) as usize;
        std::io::Write::write_all(&mut out, &state.to_le_bytes()[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// CPU seconds (user + system) this process has used: both peers run in it.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given, which lives for the call.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return 0.0;
    }
    // SAFETY: written by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
