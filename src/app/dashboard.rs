//! The tracker's live web dashboard and metrics (`p2pq tracker --http ADDR`), served with axum.
//!
//! Three read-only routes: `/` a page that redraws itself every 2 s from `/api/state` (live
//! peers and files, the first [`ROWS`] of each, and the counters), and `/metrics` the same
//! counters in Prometheus' text format. Each request costs what it shows: counts are kept by
//! the registry, the rows are the first by id or name (never the whole swarm copied), and the
//! lock is held only while they are read. Nothing here can change the tracker. It shows the
//! addresses of the peers: bind it to loopback (the default of the example) unless the people
//! who can reach it may see them.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::tracker::{Tracker, metrics};

/// Peers and files listed on the page, at most, each.
pub const ROWS: usize = 200;

/// The page, with its script; every value it shows is set as text, never as HTML.
const PAGE: &str = include_str!("dashboard/page.html");

/// Serves the dashboard for `tracker` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, tracker: Tracker, shutdown: CancellationToken) -> Result<()> {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/state", get(state))
        .route("/metrics", get(metrics))
        .with_state(tracker);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await.context("the dashboard stopped")
}

/// Binds the dashboard's address (port 0 for any free one); the bound address is what to print.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot serve the dashboard on {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

async fn state(State(tracker): State<Tracker>) -> Json<Value> {
    Json(snapshot(&tracker))
}

/// What `/api/state` says: counts, the first rows, the counters.
pub fn snapshot(tracker: &Tracker) -> Value {
    let (peers, files, listings) = tracker.counts();
    let peer_rows: Vec<Value> = tracker
        .peer_rows(ROWS)
        .into_iter()
        .map(|p| {
            let ago = p.last_alive.elapsed().as_millis() as u64;
            json!({"id": p.id, "addr": p.addr.to_string(), "reached": p.reach, "files": p.files, "last_alive_ms_ago": ago, "fingerprint": p.fingerprint.to_hex()})
        })
        .collect();
    let file_rows: Vec<Value> = tracker
        .first_files_upto(ROWS)
        .into_iter()
        .map(|m| {
            let bytes = m.file.folder.map_or(m.file.size, |f| f.bytes);
            json!({"name": m.file.name, "id": m.file.id.to_hex(), "size": m.file.size, "bytes": bytes, "folder": m.file.folder, "holders": m.holders.len()})
        })
        .collect();
    json!({
        "uptime_s": tracker.uptime().as_secs(),
        "peers": peers,
        "files": files,
        "listings": listings,
        "metrics": tracker.metrics().snapshot(),
        "peer_rows": peer_rows,
        "file_rows": file_rows,
    })
}

async fn metrics(State(tracker): State<Tracker>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus(&tracker))
}

/// The counters in Prometheus' text exposition format.
pub fn prometheus(tracker: &Tracker) -> String {
    let (peers, files, listings) = tracker.counts();
    let metrics = tracker.metrics();
    let m = metrics.snapshot();
    let mut out = String::new();
    let mut single = |name: &str, help: &str, kind: &str, value: u64| {
        metrics::family(&mut out, name, help, kind);
        out.push_str(&format!("{name} {value}\n"));
    };
    single("p2pq_tracker_peers", "Live registered peers.", "gauge", peers as u64);
    single("p2pq_tracker_files", "Files known.", "gauge", files as u64);
    single("p2pq_tracker_listings", "(peer, file) listings kept.", "gauge", listings as u64);
    single("p2pq_tracker_uptime_seconds", "Seconds since the tracker started.", "counter", tracker.uptime().as_secs());
    single("p2pq_tracker_registrations_total", "Registrations accepted.", "counter", m.registered);
    single("p2pq_tracker_turned_away_total", "Connections that did not register (refused, or no registration).", "counter", m.turned_away);
    single("p2pq_tracker_expired_total", "Peers dropped for going silent.", "counter", m.expired);
    single("p2pq_tracker_request_errors_total", "Requests answered with an error.", "counter", m.errors);
    metrics.write_prometheus(&mut out);
    out
}
