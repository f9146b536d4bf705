//! The tracker's live web dashboard and metrics (`p2pq tracker --http ADDR`), served with axum.
//!
//! Four read-only routes: `/` one page (embedded, no build step) that shows the swarm live,
//! pushed to it by `/api/events` ([`sse`]: server-sent events, one snapshot a second at most,
//! shared by every viewer); `/api/state` the same snapshot once, for scripts (live peers and
//! files, the first [`ROWS`] of each, the last [`EVENTS`] events, the totals and counters);
//! and `/metrics` the counters in Prometheus' text format. Counts are kept by the registry, the
//! rows are the first by id or name (never the whole swarm copied), the lock is held only
//! while they are read, and the events come from the end of the log only; two costs still grow
//! with the swarm (finding the first peers by id looks at every id, and a listed file's holders
//! are copied to be counted), so the stream paces itself by what a snapshot took
//! (`sse::COST_SHARE`). Nothing here can change the tracker. It shows the addresses of the peers: bind it
//! to loopback (the default of the example) unless the people who can reach it may see them.

mod sse;

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::tracker::{Tracker, metrics};

/// Peers and files listed on the page, at most, each.
pub const ROWS: usize = 200;
/// Recent events listed on the page, at most: a screenful.
pub const EVENTS: usize = 50;

/// The page, with its script; every value it shows is set as text, never as HTML.
const PAGE: &str = include_str!("dashboard/page.html");

/// What every route is served from.
#[derive(Clone)]
struct App {
    tracker: Tracker,
    hub: sse::Hub,
}

/// Serves the dashboard for `tracker` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, tracker: Tracker, shutdown: CancellationToken) -> Result<()> {
    let hub = sse::Hub::start(tracker.clone(), shutdown.clone());
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/state", get(state))
        .route("/api/events", get(|State(app): State<App>| async move { app.hub.respond() }))
        .route("/metrics", get(metrics))
        .with_state(App { tracker, hub });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await.context("the dashboard stopped")
}

/// Binds the dashboard's address (port 0 for any free one); the bound address is what to print.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot serve the dashboard on {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// `/api/state`: one snapshot, built off the runtime's threads (it reads the log's end).
async fn state(State(app): State<App>) -> Response {
    match tokio::task::spawn_blocking(move || snapshot(&app.tracker)).await {
        Ok(snapshot) => Json(snapshot).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("no snapshot: {err}")).into_response(),
    }
}

/// What `/api/state` says and `/api/events` pushes: counts, the first rows, the last events,
/// the counters (blocking: it reads the end of the event log).
pub fn snapshot(tracker: &Tracker) -> Value {
    let (peers, files, listings) = tracker.counts();
    let (up, down) = tracker.rates();
    let peer_rows: Vec<Value> = tracker
        .peer_rows(ROWS)
        .into_iter()
        .map(|p| {
            let ago = p.last_alive.elapsed().as_millis() as u64;
            let (up, down) = p.rates;
            let also: Vec<String> = p.also.iter().map(|a| a.to_string()).collect();
            json!({"id": p.id, "addr": p.addr.to_string(), "also": also, "reached": p.reach, "files": p.files, "last_alive_ms_ago": ago,
                "fingerprint": p.fingerprint.to_hex(), "upload_bps": up, "download_bps": down})
        })
        .collect();
    let file_rows: Vec<Value> = tracker
        .file_rows(ROWS)
        .into_iter()
        .map(|row| {
            let file = row.info;
            let bytes = file.folder.map_or(file.size, |f| f.bytes);
            json!({"name": file.name, "id": file.id.to_hex(), "size": file.size, "bytes": bytes, "folder": file.folder,
                "holders": row.holders, "partial": row.partial, "bar": row.bar})
        })
        .collect();
    json!({
        "uptime_s": tracker.uptime().as_secs(),
        "peers": peers,
        "files": files,
        "listings": listings,
        "upload_bps": up,
        "download_bps": down,
        "metrics": tracker.metrics().snapshot(),
        "peer_rows": peer_rows,
        "file_rows": file_rows,
        "events": recent_events(tracker),
    })
}

/// The last [`EVENTS`] events but heartbeats; none if the log cannot be read (said once in
/// the tracker's own log, at debug level: the page still shows the rest).
fn recent_events(tracker: &Tracker) -> Value {
    match tracker.recent_events(EVENTS) {
        Ok(events) => serde_json::to_value(events).unwrap_or_default(),
        Err(err) => {
            tracing::debug!("cannot read the event log: {err}");
            Value::Array(Vec::new())
        }
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let mut text = prometheus(&app.tracker);
    app.hub.write_prometheus(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
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
    let (up, down) = tracker.rates();
    single("p2pq_tracker_upload_bytes_per_second", "Upload rate of the swarm, as its live peers last reported.", "gauge", up);
    single("p2pq_tracker_download_bytes_per_second", "Download rate of the swarm, as its live peers last reported.", "gauge", down);
    single("p2pq_tracker_uptime_seconds", "Seconds since the tracker started.", "counter", tracker.uptime().as_secs());
    single("p2pq_tracker_registrations_total", "Registrations accepted.", "counter", m.registered);
    single("p2pq_tracker_turned_away_total", "Connections that did not register (refused, or no registration).", "counter", m.turned_away);
    single("p2pq_tracker_expired_total", "Peers dropped for going silent.", "counter", m.expired);
    single("p2pq_tracker_request_errors_total", "Requests answered with an error.", "counter", m.errors);
    single("p2pq_tracker_shed_total", "Lookups and listings answered busy, retry (the tracker was busy).", "counter", m.shed);
    let (interval, expiry) = tracker.heartbeat_pace();
    single("p2pq_tracker_heartbeat_interval_seconds", "Heartbeat interval asked of peers.", "gauge", interval.as_secs());
    single("p2pq_tracker_peer_expiry_seconds", "Silence after which a peer is expired.", "gauge", expiry.as_secs());
    metrics.write_prometheus(&mut out);
    out
}
