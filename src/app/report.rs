//! What the peer's commands print: one-line summaries, the `status` table, and their JSON.
//!
//! Shared by the prompt and the one-shot commands, so `p2pq get` and `get` at the prompt say
//! exactly the same thing.

use crate::discovery::ticket::Ticket;
use serde_json::{Value, json};

use crate::logbook::{Table, local_time, printable};
use crate::peer::{Got, Peer, Shared, Unshared};
use crate::protocol::FileInfo;
use crate::store::shares::Uploads;
use crate::units;

/// Left-out paths of a folder named in its summary line (the count says how many in all).
const SKIPPED_SHOWN: usize = 5;

/// `shared NAME (size, chunks) id …`, or for a folder `shared folder NAME (files, size) id …`
/// and what was left out of it.
pub fn shared_line(shared: &Shared) -> String {
    let info = &shared.info;
    let chunks = if shared.chunks == 1 { "1 chunk".to_string() } else { format!("{} chunks", shared.chunks) };
    let mut line = match &shared.folder {
        None => format!("shared {} ({}, {chunks}) id {}", info.name, units::bytes(info.size), info.id.short()),
        Some(folder) => {
            let files = if folder.files == 1 { "1 file".to_string() } else { format!("{} files", folder.files) };
            format!("shared folder {} ({files}, {}) id {}", info.name, units::bytes(folder.bytes), info.id.short())
        }
    };
    if let Some(skipped) = shared.folder.as_ref().map(|f| &f.skipped).filter(|s| !s.is_empty()) {
        let shown: Vec<String> = skipped.iter().take(SKIPPED_SHOWN).map(|(path, why)| format!("{path} ({why})")).collect();
        let more = skipped.len().saturating_sub(SKIPPED_SHOWN);
        line.push_str(&format!("; left out {}: {}", skipped.len(), shown.join(", ")));
        if more > 0 {
            line.push_str(&format!(" and {more} more"));
        }
    }
    if let Some(reason) = &shared.pending {
        line.push_str(&format!("; the tracker will hear of it once reachable ({reason})"));
    }
    printable(&line)
}

/// `ticket p2pq1…`: what to paste on another machine (`p2pq get TICKET`), then, when every
/// address in it is loopback, a line saying it works on this machine only and how to fix it.
pub fn ticket_lines(ticket: &Ticket) -> String {
    let mut text = format!("ticket {ticket}");
    if ticket.local_only() {
        text.push_str(
            "\n(this ticket works on this machine only: the tracker listens on loopback; start it with --listen 0.0.0.0:6771, or --advertise HOST, for other machines)",
        );
    }
    text
}

/// What sharing `info` publicly means, said once when it is made public.
pub fn public_line(info: &FileInfo, dht: bool) -> String {
    let line = format!(
        "{} is public: anyone who knows its id can fetch it from this peer and see this peer's address; {}",
        info.name,
        if dht { "announcing it on the DHT" } else { "not on the DHT (this peer runs with --no-dht)" }
    );
    printable(&line)
}

/// `stopped sharing NAME (id HEX)`.
pub fn unshared_line(unshared: &Unshared) -> String {
    let info = &unshared.info;
    let mut line = format!("stopped sharing {} (id {})", info.name, info.id.short());
    if let Some(reason) = &unshared.pending {
        line.push_str(&format!("; the tracker still lists it until this peer registers again ({reason})"));
    }
    printable(&line)
}

/// Where a shared file came from: `shared`, `downloaded`, or `restored (…)` from the last run.
fn origin(up: &Uploads) -> String {
    if let Some((done, all)) = up.partial {
        return format!("downloading ({done}/{all} chunks)");
    }
    if up.restored { format!("restored ({})", up.origin.as_str()) } else { up.origin.as_str().to_string() }
}

/// `downloaded NAME (SIZE) in TIME at RATE; chunks from peers A: n, B: m; verified id
/// HEX12; saved to PATH` (`peer` when one sent them all), or `already have …`. Ids are cut to
/// 12 hex digits here; `--json` and tickets carry them whole.
pub fn got_line(got: &Got) -> String {
    let info = &got.info;
    if got.from.is_empty() && got.resumed == 0 {
        return printable(&format!("already have {} at {} (id {})", info.name, got.path.display(), info.id.short()));
    }
    // Holders tried that sent nothing (a crowd's partial holders that had nothing new, a liar)
    // are left out: the line says where the file came from.
    let sent: Vec<&(String, u32)> = got.from.iter().filter(|(_, n)| *n > 0).collect();
    let mut from: Vec<String> = sent.iter().map(|(peer, n)| format!("{peer}: {n}")).collect();
    if got.resumed > 0 {
        from.push(format!("{} already here from an earlier attempt", got.resumed));
    }
    let peers = if sent.len() == 1 { "peer" } else { "peers" };
    let what = match info.folder {
        Some(folder) => format!("folder {} ({} files, {})", info.name, folder.files, units::bytes(folder.bytes)),
        None => format!("{} ({})", info.name, units::bytes(info.size)),
    };
    printable(&format!(
        "downloaded {what} in {} at {}; chunks from {peers} {}; verified id {}; saved to {}",
        units::duration(got.elapsed),
        units::rate(got.moved, got.elapsed),
        from.join(", "),
        info.id.short(),
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
        "bytes_per_sec": (got.moved as f64 / secs) as u64,
        "bytes_moved": got.moved,
        "chunks_from": from,
        "resumed_chunks": got.resumed,
        "already_had": got.from.is_empty() && got.resumed == 0,
        "verified": true,
    })
}

/// `status`: the tracker link, downloads under way, unfinished ones that can resume (when there
/// are some), shared files (ends with `N shared files`).
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
        let holders = if t.from_dht == 0 { t.holders.to_string() } else { format!("{} ({} from the DHT)", t.holders, t.from_dht) };
        downloads.row(vec![t.name, format!("{percent}%"), units::bytes(t.size), rate, eta, holders]);
    }
    text.push_str(&downloads.render("download"));
    text.push_str(&hashing(peer));
    text.push_str(&unfinished(peer));
    let mut shared = Table::new(&["NAME", "ID", "SIZE", "FROM", "SERVING", "UPLOADED", "CHUNKS SENT"]);
    for up in peer.uploads() {
        let from = origin(&up);
        let serving = crate::logbook::count(up.serving, "peer");
        let f = up.info;
        let (name, size) = match f.folder {
            Some(folder) => (format!("{}/", f.name), format!("{} in {} files", units::bytes(folder.bytes), folder.files)),
            None => (f.name, units::bytes(f.size)),
        };
        shared.row(vec![name, f.id.short(), size, from, serving, units::bytes(up.bytes), up.chunks.to_string()]);
    }
    text.push_str(&shared.render("shared file"));
    text
}

/// The files being hashed for `share`, with how far each is; nothing when there are none.
fn hashing(peer: &Peer) -> String {
    let now = peer.hashing();
    if now.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&["HASHING", "DONE", "SIZE", "RATE"]);
    let footer = format!("{} being hashed", crate::logbook::count(now.len(), "file"));
    for h in now {
        let percent = (h.bytes * 100).checked_div(h.size).unwrap_or(100);
        let (done, rate) = if h.waiting {
            ("waiting".to_string(), "-".to_string())
        } else {
            (format!("{percent}%"), units::rate(h.bytes, std::time::Duration::from_millis(h.elapsed_ms.max(1))))
        };
        table.row(vec![h.name, done, units::bytes(h.size), rate]);
    }
    table.render_with(&footer)
}

/// The unfinished downloads `get` would resume: how much of each is verified, and since when;
/// nothing when there are none.
fn unfinished(peer: &Peer) -> String {
    let found = peer.unfinished();
    if found.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&["UNFINISHED", "ID", "VERIFIED", "CHUNKS", "SIZE", "SAVED"]);
    for u in &found {
        let verified = format!("{}% ({})", u.percent(), units::bytes(u.verified_bytes));
        let chunks = format!("{}/{}", u.verified_chunks, u.chunks);
        let saved = u.saved_ms().map(local_time).unwrap_or_else(|| "?".into());
        table.row(vec![u.label(), u.id.short(), verified, chunks, units::bytes(u.size), saved]);
    }
    let text = table.render("unfinished download");
    format!("{text}(get resumes one; discard NAME drops it)\n")
}

/// `discarded NAME (…% verified, N of M chunks); its partial file is deleted`.
pub fn discarded_line(gone: &crate::store::unfinished::Unfinished) -> String {
    let (label, pct, n, m) = (gone.label(), gone.percent(), gone.verified_chunks, gone.chunks);
    printable(&format!("discarded unfinished {label} ({pct}% verified, {n} of {m} chunks); its partial file is deleted"))
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
                "serving_peers": u.serving,
                "partial": u.partial.map(|(done, all)| json!({"verified_chunks": done, "chunks": all})),
                "folder": u.info.folder.map(|f| json!({"files": f.files, "bytes": f.bytes})),
                "uploaded_bytes": u.bytes,
                "uploaded_chunks": u.chunks,
            })
        })
        .collect();
    json!({
        "peer": peer.id(),
        "tracker": {"addr": peer.tracker_addr().to_string(), "connected": peer.tracker_connected()},
        "downloads": peer.transfers(),
        "hashing": peer.hashing(),
        "unfinished": unfinished_json(peer),
        "shared": shared,
    })
}

fn unfinished_json(peer: &Peer) -> Vec<Value> {
    let found = peer.unfinished().into_iter();
    found
        .map(|u| {
            json!({
                "name": u.name,
                "id": u.id.to_hex(),
                "size": u.size,
                "chunks": u.chunks,
                "verified_chunks": u.verified_chunks,
                "verified_bytes": u.verified_bytes,
                "percent": u.percent(),
                "saved_ms": u.saved_ms(),
            })
        })
        .collect()
}
