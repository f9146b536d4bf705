//! `get`: from what the user typed (a name, an id prefix, a ticket) to a verified file in the
//! download folder, shared as soon as it is there.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::folder_get::Part;
use super::{Got, Peer, download, events};
use crate::content::folder::only::Only;
use crate::content::manifest::Manifest;
use crate::discovery::ticket::Ticket;
use crate::net::task;
use crate::protocol::{self, FileInfo, FileMatch};
use crate::store::catalog::Origin;
use crate::store::{self, Destination};

impl Peer {
    /// Starts serving a downloaded file at once and announces it from a background task (a
    /// tracker that is away hears of it on re-registering, which lists every share).
    async fn serve_in_background(&self, info: FileInfo, path: PathBuf, manifest: Arc<Manifest>) -> Result<()> {
        self.serve_now(info.clone(), path.clone(), manifest.clone(), Origin::Downloaded, false)?;
        // On disk before the summary, so a peer that exits right after still shares it at
        // its next start; only the tracker, which may be slow or away, is told later.
        self.record(&info, path, manifest, Origin::Downloaded).await;
        let peer = self.clone();
        let span = tracing::info_span!("announce", me = %self.inner.config.id, file = %info.id.short());
        task::spawn_until(&self.inner.shutdown, span, async move {
            if let Some(reason) = peer.announce_one(info).await {
                tracing::debug!("downloaded but not announced yet: {reason}");
            }
        });
        Ok(())
    }

    /// Downloads the file called `query` (or whose id starts with it) from every live holder,
    /// reporting nothing.
    pub async fn get(&self, query: &str) -> Result<Got> {
        self.get_with(query, None, &CancellationToken::new()).await
    }

    /// Like [`Peer::get`], sending [`events::Progress`] to `events` if given (the front end
    /// shows them; the engine never draws); gives up when `cancel` fires (what was verified
    /// stays for the next attempt).
    pub async fn get_with(
        &self,
        query: &str,
        events: Option<UnboundedSender<events::Progress>>,
        cancel: &CancellationToken,
    ) -> Result<Got> {
        self.get_only(query, None, events, cancel).await
    }

    /// Like [`Peer::get_with`]; with `only`, `query` must name a folder, and only its paths
    /// that `only` keeps are fetched (into `DOWNLOAD_DIR/NAME`, as the whole would be).
    pub async fn get_only(
        &self,
        query: &str,
        only: Option<&Only>,
        events: Option<UnboundedSender<events::Progress>>,
        cancel: &CancellationToken,
    ) -> Result<Got> {
        let started = Instant::now();
        // A name never holds a `/`: NAME/PATH is a part of the folder NAME.
        if let Some((folder, sub)) = query.split_once('/') {
            if only.is_some() {
                bail!("get {query}: give either NAME/PATH or --only, not both");
            }
            crate::content::folder::rules::check_path(sub).map_err(|why| anyhow::anyhow!("cannot get {query}: {why}"))?;
            return self.get_part(folder, sub, events, cancel, started).await;
        }
        let query = &self.query_of(query)?;
        let target = tokio::select! {
            target = self.lookup(query) => target?,
            _ = cancel.cancelled() => bail!("get {query} cancelled"),
        };
        let info = target.file.clone();
        if info.folder.is_some() {
            let mut target = target;
            target.holders.retain(|h| h.peer_id != self.inner.config.id);
            if target.holders.is_empty() {
                bail!("no live peer other than this one holds {}", info.name);
            }
            let part = only.map_or(Part::Whole, Part::Matching);
            return self.get_folder(target, part, events, cancel, started).await;
        }
        if only.is_some() {
            bail!("--only goes with folders; {} is a file", info.name);
        }
        if let Some(path) = self.already_have(&info).await? {
            return Ok(Got { info, path, elapsed: started.elapsed(), from: Vec::new(), resumed: 0, moved: 0 });
        }
        let _claim = self.inner.downloading.take(&info)?;
        let mut target = target;
        target.holders.retain(|h| h.peer_id != self.inner.config.id);
        if target.holders.is_empty() {
            bail!("no live peer other than this one holds {}", info.name);
        }
        if let Some(events) = &events {
            let _ = events.send(events::Progress::Found(info.clone()));
        }
        let (events, forwarding) = events::forward(&self.inner.transfers, &info, events);
        let (has_chunk, first_chunk) = tokio::sync::oneshot::channel();
        self.announce_when(&info, first_chunk);
        let ctx = download::Context {
            shares: self.inner.shares.clone(),
            has_chunk: std::sync::Mutex::new(Some(has_chunk)),
            seek: self.inner.seek.clone(),
            stall_timeout: self.inner.config.stall_timeout,
            download_dir: &self.inner.config.download_dir,
            log: &self.inner.log,
            events,
            cancel: cancel.clone(),
        };
        let span = tracing::info_span!("get", me = %self.inner.config.id, file = %info.id.short());
        let outcome = tracing::Instrument::instrument(download::download(&ctx, &target), span).await;
        drop(ctx);
        let _ = forwarding.await;
        let outcome = outcome.with_context(|| format!("download of {} failed", info.name))?;
        // The transfer ends here: announcing is the tracker's business and must not hold up
        // (or be counted in) the summary, even when the tracker just went away.
        let elapsed = started.elapsed();
        let moved = info.size - outcome.resumed_bytes.min(info.size);
        self.serve_in_background(info.clone(), outcome.path.clone(), outcome.manifest).await?;
        Ok(Got { info, path: outcome.path, elapsed, from: outcome.from, resumed: outcome.resumed, moved })
    }

    /// Downloads the part `sub` of the folder `folder` (a name or an id prefix).
    async fn get_part(
        &self,
        folder: &str,
        sub: &str,
        events: Option<UnboundedSender<events::Progress>>,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<Got> {
        let mut target = tokio::select! {
            target = self.lookup(folder) => target?,
            _ = cancel.cancelled() => bail!("get {folder}/{sub} cancelled"),
        };
        if target.file.folder.is_none() {
            bail!("{folder} is a file, not a folder");
        }
        target.holders.retain(|h| h.peer_id != self.inner.config.id);
        if target.holders.is_empty() {
            bail!("no live peer other than this one holds {folder}");
        }
        self.get_folder(target, Part::Under(sub), events, cancel, started).await
    }

    /// What to ask the tracker for: a ticket becomes its file's full id, if it names this
    /// peer's tracker; anything else is asked as typed.
    fn query_of(&self, query: &str) -> Result<String> {
        if !Ticket::looks_like(query) {
            return Ok(query.to_string());
        }
        let ticket = Ticket::parse(query)?;
        if ticket.tracker_fingerprint != self.inner.tracker_fp {
            let theirs = ticket.trackers.first().map_or("?", String::as_str);
            bail!(
                "this ticket is for another tracker (at {theirs}) than this peer's ({}); run p2pq get TICKET, or start a peer with --tracker TICKET",
                self.inner.link.shown()
            );
        }
        Ok(ticket.id().to_hex())
    }

    /// A ticket for `file`: the tracker's addresses as it advertises them (after the one this
    /// peer dialled, unless that is loopback) and its fingerprint.
    pub async fn ticket(&self, file: &FileInfo) -> Ticket {
        let dialled = self.inner.config.tracker;
        let mut trackers = Vec::new();
        if !dialled.ip().is_loopback() {
            trackers.push(dialled.to_string());
        }
        for addr in self.inner.link.contact().await {
            if !trackers.contains(&addr) {
                trackers.push(addr);
            }
        }
        if trackers.is_empty() {
            trackers.push(dialled.to_string());
        }
        trackers.truncate(crate::discovery::ticket::MAX_ADDRESSES);
        Ticket { trackers, tracker_fingerprint: self.inner.tracker_fp, file: file.clone() }
    }

    /// Asks the tracker which file `query` means; exactly one must match.
    async fn lookup(&self, query: &str) -> Result<FileMatch> {
        let (mut found, undescribed) = self.described(self.inner.discovery.find(query).await?).await;
        found.retain(|m| protocol::check_name(&m.file.name).is_ok());
        match found.len() {
            0 if !undescribed.is_empty() => bail!("{}", undescribed.join("; ")),
            0 => bail!("no live peer shares {query:?}"),
            1 => Ok(found.remove(0)),
            n => {
                let list: Vec<String> = found.iter().map(describe_candidate).collect();
                bail!("{query:?} matches {n} different files: {}; pick one with get ID-PREFIX", list.join(", "))
            }
        }
    }

    /// The path of `info` if this peer already has it (shared or at the destination).
    async fn already_have(&self, info: &FileInfo) -> Result<Option<PathBuf>> {
        if let Some(shared) = self.inner.shares.complete(&info.id) {
            return Ok(Some(shared.path.clone()));
        }
        let (dir, name, id) = (self.inner.config.download_dir.clone(), info.name.clone(), info.id);
        match tokio::task::spawn_blocking(move || store::destination(&dir, &name, &id)).await?? {
            Destination::Free => Ok(None),
            Destination::Same(path) => {
                let manifest = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || Manifest::from_file(&path)
                })
                .await??
                .1;
                self.serve_file(info.clone(), path.clone(), Arc::new(manifest)).await?;
                Ok(Some(path))
            }
            Destination::Taken(path) => bail!("{} already exists with other content; not overwritten", path.display()),
        }
    }
}

fn describe_candidate(m: &FileMatch) -> String {
    let holders = m.holders.len();
    format!("{} ({}, {} holder{})", m.file.id.short(), crate::units::bytes(m.file.size), holders, if holders == 1 { "" } else { "s" })
}
