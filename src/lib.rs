//! p2pq: peer-to-peer file sharing with a tracker, over QUIC.
//!
//! A **tracker** knows which live peer holds which file (by BLAKE3 id) and nothing of the bytes.
//! A **peer** shares files from its data folder and downloads from every peer holding a file at
//! once: it asks the tracker for the holders, fetches the file's manifest (one BLAKE3 chaining
//! value per chunk) from one of them, checks it against the id, then pulls chunks in parallel
//! over one unidirectional QUIC stream per chunk, verifying each before writing it. Peers send
//! `alive` heartbeats; the tracker drops the silent ones. Every connection is QUIC with TLS 1.3
//! and self-signed certificates pinned by fingerprint, in both directions.
//!
//! Layers, top to bottom; each uses only those below it (no cycles):
//!
//! - [`app`]: front ends, used only by the binary (prompts, one-shot `get`/`seed`, progress bars
//!   and `--json` fed by engine events, summaries, the demo, console plumbing).
//! - [`peer`] and [`tracker`]: the two engines. A peer serves from the store, admits
//!   downloaders, keeps holder connections and runs the swarm download, reporting through
//!   events; the tracker keeps the registry of live peers and their files. Neither prints.
//! - [`discovery`] (where holders come from: the tracker today), [`store`] (files on disk:
//!   shares, partial downloads, chunk buffers, safe paths), [`net`] (TLS and pinning, QUIC
//!   configs, caps, emulated links), [`logbook`] (the logs a user asked for).
//! - [`protocol`]: every message of both protocols, the one codec, ALPNs, close codes, and the
//!   promises between the two sides.
//! - [`content`]: ids, manifests, name rules and the one `printable`; depends on nothing.
//!
//! [`units`] formats sizes and rates for any layer.

pub mod app;
pub mod content;
pub mod discovery;
pub mod logbook;
pub mod net;
pub mod peer;
pub mod protocol;
pub mod store;
pub mod tracker;
pub mod units;
