//! What the peer's commands print: one-line summaries, the `status` table, and their JSON.
//!
//! Shared by the prompt and the one-shot commands, so `p2pq get` and `get` at the prompt say
//! exactly the same thing.

use serde_json::{Value, json};

use crate::logbook::{Table, printable};
use crate::peer::{Got, Peer, Shared, Unshared};
use crate::store::shares::Uploads;
use crate::units;

/// `shared NAME (SIZE, N chunks) id HEX`.
pub fn shared_line(shared: &Shared) -> String {
    let info = &shared.info;
    let chunks = if shared.chunks == 1 { "1 chunk".to_string() } else { format!("{} chunks", shared.chunks) };
    let mut line = format!("shared {} ({}, {chunks}) id {}", info.name, units::bytes(info.size), info.id);
    if let Some(reason) = &shared.pending {
        line.push_str(&format!("; the tracker will hear of it once reachable ({reason})"));
    }
    printable(&line)
}

/// `stopped sharing NAME (id HEX)`.
pub fn unshared_line(unshared: &Unshared) -> String {
    let info = &unshared.info;
    let mut line = format!("stopped sharing {} (id {})", info.name, info.id);
    if let Some(reason) = &unshared.pending {
        line.push_str(&format!("; the tracker still lists it until this peer registers again ({reason})"));
    }
    printable(&line)
}

/// Where a shared file came from: `shared`, `downloaded`, or `restored (…)` from the last run.
fn origin(up: &Uploads) -> String {
    if up.restored { format!("restored ({})", up.origin.as_str()) } else { up.origin.as_str().to_string() }
}

/// `downloaded NAME (SIZE) in TIME at RATE; chunks from peers A: n, B: m; verified id HEX;
/// saved to PATH`, or `already have …`.
pub fn got_line(got: &Got) -> String {
    let info = &got.info;
    if got.from.is_empty() && got.resumed == 0 {
        return printable(&format!("already have {} at {} (id {})", info.name, got.path.display(), info.id));
    }
    let mut from: Vec<String> = got.from.iter().map(|(peer, n)| format!("{peer}: {n}")).collect();
    if got.resumed > 0 {
        from.push(format!("{} already here from an earlier attempt", got.resumed));
    }
    printable(&format!(
        "downloaded {} ({}) in {} at {}; chunks from peers {}; verified id {}; saved to {}",
        info.name,
        units::bytes(info.size),
        units::duration(got.elapsed),
        units::rate(info.size, got.elapsed),
        from.join(", "),
        info.id,
        got.path.display()
    ))
}

/// The `done` event of `p2pq get --json`.
pub fn got_json(got: &Got) -> Value {
    let secs = got.elapsed.as_secs_f64().max(1e-6);
    let from: serde_json::Map<String, Value> = got.from.iter().map(|(peer, n)| (peer.clone(), json!(n))).collect();
    json!({
        "event": "done",
        "name": got.info.name,
        "id": got.info.id.to_hex(),
        "size": got.info.size,
        "path": got.path.display().to_string(),
        "elapsed_ms": got.elapsed.as_millis() as u64,
        "bytes_per_sec": (got.info.size as f64 / secs) as u64,
        "chunks_from": from,
        "resumed_chunks": got.resumed,
        "already_had": got.from.is_empty() && got.resumed == 0,
        "verified": true,
    })
}

/// `status`: the tracker link, downloads under way, shared files (ends with `N shared files`).
pub fn status(peer: &Peer) -> String {
    let link = if peer.tracker_connected() { "connected" } else { "not connected (retrying)" };
    let mut text = format!("peer {} — tracker {} {link}\n", peer.id(), peer.tracker_addr());
    let mut downloads = Table::new(&["DOWNLOADING", "DONE", "SIZE", "RATE", "ETA", "HOLDERS"]);
    for t in peer.transfers() {
        let percent = (t.bytes * 100).checked_div(t.size).unwrap_or(100);
        let eta = if t.rate() == 0 {
            "?".to_string()
        } else {
            units::duration(std::time::Duration::from_secs((t.size - t.bytes.min(t.size)) / t.rate()))
        };
        let rate = format!("{}/s", units::bytes(t.rate()));
        downloads.row(vec![t.name, format!("{percent}%"), units::bytes(t.size), rate, eta, t.holders.to_string()]);
    }
    text.push_str(&downloads.render("download"));
    let mut shared = Table::new(&["NAME", "ID", "SIZE", "FROM", "UPLOADED", "CHUNKS SENT"]);
    for up in peer.uploads() {
        let from = origin(&up);
        let f = up.info;
        shared.row(vec![f.name, f.id.short(), units::bytes(f.size), from, units::bytes(up.bytes), up.chunks.to_string()]);
    }
    text.push_str(&shared.render("shared file"));
    text
}

/// `status --json`.
pub fn status_json(peer: &Peer) -> Value {
    let shared: Vec<Value> = peer
        .uploads()
        .into_iter()
        .map(|u| {
            json!({
                "name": u.info.name,
                "id": u.info.id.to_hex(),
                "size": u.info.size,
                "origin": u.origin.as_str(),
                "restored": u.restored,
                "uploaded_bytes": u.bytes,
                "uploaded_chunks": u.chunks,
            })
        })
        .collect();
    json!({
        "peer": peer.id(),
        "tracker": {"addr": peer.tracker_addr().to_string(), "connected": peer.tracker_connected()},
        "downloads": peer.transfers(),
        "shared": shared,
    })
}
