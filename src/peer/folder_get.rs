//! Getting a folder: its listing first, then every file in it from every holder, many at once,
//! into a hidden folder that takes the folder's name only when every file is verified.
//!
//! The layout while it runs, all inside the download folder:
//! ```text
//! .p2pq-folder-ID/listing      the listing, verified against the folder id
//! .p2pq-folder-ID/tree/...     the tree; each file downloads beside where it will be
//! ```
//! Nothing is created before the listing passed every rule of [`crate::content::folder`], and
//! each folder on the way is made one component at a time, never through a symlink. A get
//! run again after a crash finds what the last one verified (whole files by their id, partial
//! ones by their resume state) and fetches only the rest.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::{self, Progress};
use super::{Got, Peer, download};
use crate::content::folder::only::Only;
use crate::content::folder::{self, Listing};
use crate::content::id::Digest;
use crate::content::manifest::Manifest;
use crate::protocol::{FileInfo, FileMatch, FolderSize, Holder};

/// Jobs of one folder (a file, or a batch of small files) downloading at once: enough that the
/// holders always have the next request, few enough that a big folder does not open thousands
/// of streams.
const JOBS_AT_ONCE: usize = 32;
mod disk;
mod existing;
mod settle;
mod small;

use disk::{folds_case, has_file, lay_out, make_staging, parent_in};

/// The hidden folder a folder downloads into, before its rename.
const STAGING: &str = ".p2pq-folder-";

/// A file of the folder still to fetch.
struct Wanted {
    path: String,
    info: FileInfo,
}

/// A file of the folder in place (in the hidden tree), with its manifest.
struct Fetched {
    path: String,
    info: FileInfo,
    manifest: Arc<Manifest>,
    from: Vec<(String, u32)>,
    resumed: u32,
    resumed_bytes: u64,
}

/// What of a folder a get fetches.
#[derive(Clone, Copy)]
pub(super) enum Part<'a> {
    /// All of it, into `DOWNLOAD_DIR/NAME`.
    Whole,
    /// The folder at this path in it, into `DOWNLOAD_DIR/LAST-COMPONENT`.
    Under(&'a str),
    /// The paths these patterns keep, into `DOWNLOAD_DIR/NAME`.
    Matching(&'a Only),
}

impl Part<'_> {
    /// The name the download gets, for the folder `folder`.
    fn name<'n>(&'n self, folder: &'n str) -> &'n str {
        match self {
            Part::Under(sub) => sub.rsplit('/').next().unwrap_or(sub),
            Part::Whole | Part::Matching(_) => folder,
        }
    }

    /// What tells this part's hidden folder from the whole folder's (and from other parts').
    fn tag(&self) -> String {
        let short = |text: &str| format!("-{}", Digest::from(blake3::hash(text.as_bytes())).short());
        match self {
            Part::Whole => String::new(),
            Part::Under(sub) => short(sub),
            Part::Matching(only) => short(&format!("only\n{}", only.given().join("\n"))),
        }
    }

    /// This part of `whole`, the folder `name`.
    fn of(&self, whole: Listing, name: &str) -> Result<Listing> {
        match self {
            Part::Whole => Ok(whole),
            Part::Under(sub) => select(&whole, name, sub),
            Part::Matching(only) => whole
                .keep(|path| only.matches(path))
                .ok_or_else(|| anyhow::anyhow!("nothing in {name} matches --only {}", only.given().join(" "))),
        }
    }
}

impl Peer {
    /// Downloads the folder `target`, or the `part` of it asked for.
    pub(super) async fn get_folder(
        &self,
        target: FileMatch,
        part: Part<'_>,
        ui: Option<UnboundedSender<Progress>>,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<Got> {
        let info = target.file.clone();
        let name = part.name(&info.name).to_string();
        let dest = self.inner.config.download_dir.join(&name);
        let into_existing = existing::is_there(&dest)?;
        let _claim = self.inner.downloading.take(&info)?;
        let tag = part.tag();
        let staging = self.inner.config.download_dir.join(format!("{STAGING}{}{tag}", info.id.to_hex()));
        make_staging(&staging)?;
        if let Some(ui) = &ui {
            let _ = ui.send(Progress::Found(FileInfo { name: name.clone(), ..info.clone() }));
        }
        let (events, forwarding) = events::forward(&self.inner.transfers, &info, ui);
        let whole = self.checked_listing(&target, &staging, cancel).await?;
        let listing = part.of(whole, &info.name).inspect_err(|_| {
            // Asked for what is not there: nothing of this attempt is worth keeping.
            let _ = std::fs::remove_dir_all(&staging);
        })?;
        let (todo, present) = match into_existing {
            true => {
                let (dest, listing) = (dest.clone(), listing.clone());
                let compared = tokio::task::spawn_blocking(move || existing::compare(&dest, &listing)).await?;
                compared.inspect_err(|_| {
                    // Refused before anything was fetched: only a listing to throw away.
                    let _ = std::fs::remove_dir_all(&staging);
                })?
            }
            false => (Some(listing.clone()), Vec::new()),
        };
        let root = staging.join("tree");
        let mut fetched = match &todo {
            Some(todo) => self.fetch_tree(&target, &name, &root, todo, &events, cancel).await?,
            None => Vec::new(),
        };
        match (&todo, into_existing) {
            (Some(todo), true) => existing::merge(&root, &dest, todo)?,
            (Some(_), false) => {
                std::fs::rename(&root, &dest).with_context(|| format!("cannot move the folder into place at {}", dest.display()))?
            }
            (None, _) => {}
        }
        fetched.extend(present);
        let _ = events.send(Progress::Done);
        drop(events);
        let _ = forwarding.await;
        let elapsed = started.elapsed();
        let got = match part {
            Part::Whole => self.settle(&info, &dest, &staging, &listing, fetched).await?,
            Part::Under(_) | Part::Matching(_) => {
                let size = FolderSize { files: listing.file_count() as u64, bytes: listing.total_size() };
                let shown = FileInfo { id: listing.id(), name, size: listing.encode().len() as u64, folder: Some(size) };
                self.settle_part(&shown, &dest, &staging, fetched).await?
            }
        };
        Ok(Got { elapsed, ..got })
    }

    /// [`Peer::fetch_listing`]; a listing that breaks the rules is worth nothing, so nothing
    /// of it stays.
    async fn checked_listing(&self, target: &FileMatch, staging: &Path, cancel: &CancellationToken) -> Result<Listing> {
        match self.fetch_listing(target, staging, cancel).await {
            Ok(listing) => Ok(listing),
            Err(err) => {
                if err.downcast_ref::<folder::ListingError>().is_some() {
                    let _ = std::fs::remove_dir_all(staging);
                }
                Err(err.context(format!("cannot get the listing of {}", target.file.name)))
            }
        }
    }

    /// Lays the tree out under `root`, then fetches what is not there yet, reporting bytes and
    /// files to `events`.
    async fn fetch_tree(
        &self,
        target: &FileMatch,
        name: &str,
        root: &Path,
        listing: &Listing,
        events: &UnboundedSender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<Vec<Fetched>> {
        let wanted = tokio::task::spawn_blocking({
            let (root, listing) = (root.to_path_buf(), listing.clone());
            move || lay_out(&root, &listing)
        })
        .await??;
        let (size, total) = (listing.total_size(), listing.file_count());
        let _ = events.send(Progress::Start { name: name.to_string(), size, holders: target.holders.len() });
        let left: u64 = wanted.iter().map(|w| w.info.size).sum();
        if size > left {
            let _ = events.send(Progress::Resumed { bytes: size - left });
        }
        let _ = events.send(Progress::Files { done: (total - wanted.len()) as u64, total: total as u64 });
        let fetched = self.fetch_files(target, root, wanted, total, events, cancel).await;
        fetched.with_context(|| format!("download of {} failed", target.file.name))
    }

    /// The listing: the one an earlier attempt left (if it still hashes to the id), or fetched
    /// now like any file; then checked against every rule.
    async fn fetch_listing(&self, target: &FileMatch, staging: &Path, cancel: &CancellationToken) -> Result<Listing> {
        let path = staging.join("listing");
        let (id, there) = (target.file.id, path.clone());
        if !tokio::task::spawn_blocking(move || has_file(&there, &id)).await? {
            let file = FileInfo { name: "listing".into(), folder: None, ..target.file.clone() };
            if file.size > folder::MAX_LISTING_BYTES as u64 {
                bail!("the listing is {} bytes, over the limit", file.size);
            }
            let (quiet, _) = mpsc::unbounded_channel();
            let ctx = self.context(staging, quiet, cancel);
            download::download(&ctx, &FileMatch { file, holders: target.holders.clone() }).await?;
            // Served as the folder once the folder is in place; until then its partial (in this
            // hidden folder, which may go) must not linger among the shares.
            self.inner.shares.remove_partial(&id);
        }
        let bytes = tokio::fs::read(&path).await.with_context(|| format!("cannot read {}", path.display()))?;
        let listing = Listing::parse(&bytes)?;
        let probe = staging.to_path_buf();
        if tokio::task::spawn_blocking(move || folds_case(&probe)).await? {
            listing.check_case()?;
        }
        Ok(listing)
    }

    /// A download context for one file of the folder, into `dir`.
    fn context<'a>(&'a self, dir: &'a Path, events: UnboundedSender<Progress>, cancel: &CancellationToken) -> download::Context<'a> {
        download::Context {
            shares: self.inner.shares.clone(),
            has_chunk: std::sync::Mutex::new(None),
            seek: self.inner.seek.clone(),
            stall_timeout: self.inner.config.stall_timeout,
            download_dir: dir,
            log: &self.inner.log,
            events,
            cancel: cancel.clone(),
        }
    }

    /// Fetches every wanted file, [`JOBS_AT_ONCE`] at a time, from the folder's holders (and
    /// whoever else the finder turns up for each file); the first failure stops the rest.
    async fn fetch_files(
        &self,
        target: &FileMatch,
        root: &Path,
        wanted: Vec<Wanted>,
        in_folder: usize,
        events: &UnboundedSender<Progress>,
        cancel: &CancellationToken,
    ) -> Result<Vec<Fetched>> {
        let stop = cancel.child_token();
        let _links = self.hold_links(&target.holders);
        let mut running = JoinSet::new();
        let mut fetched = Vec::new();
        let done_before = in_folder - wanted.len().min(in_folder);
        let holders: Arc<[Holder]> = target.holders.clone().into();
        let mut queue = small::jobs(wanted).into_iter();
        loop {
            while running.len() < JOBS_AT_ONCE
                && let Some(job) = queue.next()
            {
                let (peer, holders, root, events, stop) = (self.clone(), holders.clone(), root.to_path_buf(), events.clone(), stop.clone());
                running.spawn(async move { peer.fetch_job(job, holders, &root, events, &stop).await });
            }
            let Some(done) = running.join_next().await else { break };
            match done? {
                Ok(files) => {
                    fetched.extend(files);
                    let _ = events.send(Progress::Files { done: (done_before + fetched.len()) as u64, total: in_folder as u64 });
                }
                Err(err) => {
                    stop.cancel();
                    while running.join_next().await.is_some() {}
                    return Err(err);
                }
            }
        }
        Ok(fetched)
    }

    /// Connects to each of `holders` in the background and keeps the links until the
    /// returned set is dropped: the pool keeps a link only while someone uses it, and a gap
    /// between two small files must not cost a new handshake.
    fn hold_links(&self, holders: &[Holder]) -> JoinSet<()> {
        let mut keeping = JoinSet::new();
        for holder in holders {
            let (seek, holder) = (self.inner.seek.clone(), holder.clone());
            keeping.spawn(async move {
                let link = seek.pool.link(seek.endpoint.clone(), &seek.identity, &holder).await;
                std::future::pending::<()>().await;
                drop(link);
            });
        }
        keeping
    }

    /// Fetches a job's files into their places in `root`, reporting their bytes: small files
    /// in one request, a bigger file with the swarm download.
    async fn fetch_job(
        &self,
        job: small::Job,
        holders: Arc<[Holder]>,
        root: &Path,
        events: UnboundedSender<Progress>,
        stop: &CancellationToken,
    ) -> Result<Vec<Fetched>> {
        match job {
            small::Job::Batch(files) => tokio::select! {
                fetched = self.fetch_batch(files, holders, root, &events) => fetched,
                _ = stop.cancelled() => bail!("cancelled"),
            },
            small::Job::One(file) => Ok(vec![self.fetch_one(file, holders.to_vec(), root, events, stop).await?]),
        }
    }

    /// Fetches one file of more than one chunk into its place in `root` with the swarm
    /// download, reporting its bytes.
    async fn fetch_one(
        &self,
        file: Wanted,
        holders: Vec<Holder>,
        root: &Path,
        events: UnboundedSender<Progress>,
        stop: &CancellationToken,
    ) -> Result<Fetched> {
        let dir = parent_in(root, &file.path);
        let (mine, mut heard) = mpsc::unbounded_channel();
        let relay = tokio::spawn(async move {
            while let Some(event) = heard.recv().await {
                if matches!(event, Progress::Chunk { .. } | Progress::Resumed { .. } | Progress::Note(_)) {
                    let _ = events.send(event);
                }
            }
        });
        let ctx = self.context(&dir, mine, stop);
        let target = FileMatch { file: file.info.clone(), holders };
        let outcome = download::download(&ctx, &target).await;
        drop(ctx);
        let _ = relay.await;
        let outcome = outcome.with_context(|| file.path.clone())?;
        // Served again once the folder is in place (its path changes then); until then the
        // finished partial would hold a descriptor per file, thousands for a big folder.
        self.inner.shares.remove_partial(&file.info.id);
        let (from, resumed, resumed_bytes) = (outcome.from, outcome.resumed, outcome.resumed_bytes);
        Ok(Fetched { path: file.path, info: file.info, manifest: outcome.manifest, from, resumed, resumed_bytes })
    }
}

/// The part of `whole` (the folder `name`) under `sub`; a file there is pointed to by its id.
fn select(whole: &Listing, name: &str, sub: &str) -> Result<Listing> {
    if let Some((_, id)) = whole.file(sub) {
        bail!("{sub} is a file in {name}, not a folder: get {id} fetches it alone");
    }
    whole.part(sub).ok_or_else(|| anyhow::anyhow!("{name} has no folder {sub}"))
}
