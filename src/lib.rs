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
//! Modules: [`wire`] (messages and framing), [`tls`] (identity and trust), [`limits`] (caps on
//! what one client may hold), [`linksim`] (slow, long and lossy links for tests and benches), [`manifest`]
//! (content addressing), [`store`] (files on disk), [`partial`] (unfinished downloads and resume), [`logbook`] (user-facing logs), [`console`]
//! (prompt plumbing), [`tracker`] and [`peer`] (the two programs), [`demo`].

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
