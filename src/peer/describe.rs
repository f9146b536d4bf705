//! Files found by id alone (on the DHT) get their name, size and kind from their holders.
//!
//! Each holder is asked at once (`Describe`, over the connection the download then uses). The
//! first answer describes the file; a holder that refuses (it does not share the file
//! publicly), cannot be reached, or describes another size or kind is left out of the
//! download. What a holder says is a claim: the manifest must still hash to the id, and every
//! chunk is verified.

use tokio::task::JoinSet;
use tracing::Span;

use super::Peer;
use crate::discovery::dht::source::is_undescribed;
use crate::net::task;
use crate::protocol::{FileInfo, FileMatch, Holder};

impl Peer {
    /// `found`, each file that no source described asked of its holders; a file none of whose
    /// holders describes it is left out, and why is returned.
    pub(super) async fn described(&self, found: Vec<FileMatch>) -> (Vec<FileMatch>, Vec<String>) {
        let (mut out, mut why) = (Vec::with_capacity(found.len()), Vec::new());
        for m in found {
            // Only what the DHT found is asked about: a tracker that names a file with no name
            // is not to be helped out by its holders.
            if !is_undescribed(&m.file) || m.holders.iter().any(|h| h.vouched()) {
                out.push(m);
                continue;
            }
            let id = m.file.id.short();
            match self.describe(m).await {
                Ok(m) => out.push(m),
                Err(reasons) => why.push(format!("no holder of {id} found on the DHT would describe it ({reasons})")),
            }
        }
        (out, why)
    }

    /// The file of `found` as its holders describe it, with the holders that agree.
    async fn describe(&self, found: FileMatch) -> Result<FileMatch, String> {
        let mut asking = JoinSet::new();
        for holder in found.holders.into_iter().filter(|h| h.peer_id != self.inner.config.id) {
            let (seek, id) = (self.inner.seek.clone(), found.file.id);
            task::spawn_in(&mut asking, Span::current(), async move {
                let link = seek.pool.link(seek.endpoint.clone(), &seek.identity, &holder).await;
                let info = match link {
                    Ok(link) => link.describe(id).await,
                    Err(err) => Err(err),
                };
                (holder, info)
            });
        }
        let (mut file, mut holders, mut failures): (Option<FileInfo>, Vec<Holder>, Vec<String>) = (None, Vec::new(), Vec::new());
        while let Some(Ok((holder, info))) = asking.join_next().await {
            match (info, &file) {
                (Ok(info), Some(first)) if info.size != first.size || info.folder != first.folder => {
                    failures.push(format!("{} describes it otherwise", holder.peer_id));
                }
                (Ok(info), _) => {
                    file.get_or_insert(info);
                    holders.push(holder);
                }
                (Err(err), _) => failures.push(format!("{}: {err:#}", holder.peer_id)),
            }
        }
        match file {
            Some(file) => {
                failures.iter().for_each(|f| tracing::info!("holder left out: {f}"));
                Ok(FileMatch { file, holders })
            }
            None => Err(failures.join("; ")),
        }
    }
}
