//! What the NAT tests share: the tracker on the public segment, holders and gets in the
//! bed's namespaces, and the checks on what they did.

use std::path::Path;

use super::netns::{Bed, Home, unavailable};
use super::{Proc, TIMEOUT};

/// The tracker's address on the public segment (`PUBLIC.1`).
pub const TRACKER: &str = "10.99.0.1:6771";

/// Whether the bed can run; says why not, once, when it cannot.
pub fn can_run(test: &str) -> bool {
    match unavailable() {
        Some(why) => {
            println!("skipped {test}: the NAT test bed {why}");
            false
        }
        None => true,
    }
}

/// A temp folder with `file.bin` (of `data`) in `NAME-data/` for each holder name.
pub fn folder(holders: &[&str], data: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in holders {
        let at = dir.path().join(format!("{name}-data"));
        std::fs::create_dir_all(&at).expect("data folder");
        std::fs::write(at.join("file.bin"), data).expect("data file");
    }
    dir
}

pub fn start_tracker(bed: &Bed, dir: &Path) -> Proc {
    let mut tracker = bed.spawn("tracker", &bed.public(), dir, &["tracker", "--listen", TRACKER], &[]);
    tracker.expect("tracker listening on ");
    tracker
}

/// Peer `id` in namespace `ns`, registered, sharing `file.bin` from its data folder.
pub fn start_holder(bed: &Bed, ns: &str, dir: &Path, id: &str, extra: &[&str]) -> Proc {
    let data = format!("{id}-data");
    let mut args = vec!["peer", id, "--tracker", TRACKER, "--heartbeat", "1", "--data-dir", &data];
    if !extra.contains(&"--listen") {
        args.extend(["--listen", "0.0.0.0:0"]);
    }
    args.extend_from_slice(extra);
    let mut peer = bed.spawn(&format!("peer {id}"), ns, dir, &args, &[]);
    peer.expect("connected to tracker");
    peer.command("share file.bin", "shared ");
    peer
}

/// `p2pq get file.bin` in `home`'s host, into `dl` under `dir`, with punch diagnostics on.
pub fn start_get(bed: &Bed, home: &Home, dir: &Path, dl: &str, extra: &[&str]) -> Proc {
    start_get_in(bed, &home.host, dir, dl, extra)
}

/// `p2pq get file.bin` in namespace `ns`, as [`start_get`].
pub fn start_get_in(bed: &Bed, ns: &str, dir: &Path, dl: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["get", "file.bin", "--tracker", TRACKER, "--download-dir", dl];
    args.extend_from_slice(extra);
    bed.spawn("get", ns, dir, &args, &[("RUST_LOG", "p2pq::peer::punch=debug")])
}

/// The downloader's "connected to holder" line (punch diagnostics), or "".
pub fn connected_line(get: &Proc) -> String {
    get.said().into_iter().find(|l| l.contains("connected to holder")).unwrap_or_default()
}

/// Waits for `get` to end and checks it succeeded with the original bytes in `dir/dl`.
pub fn assert_got(get: &mut Proc, dir: &Path, data: &[u8]) {
    let status = get.wait_exit(TIMEOUT);
    assert!(status.success(), "get failed:\n{}", get.transcript());
    let got = std::fs::read(dir.join("dl/file.bin")).expect("downloaded file");
    assert!(got == data, "downloaded bytes differ from the original");
}
