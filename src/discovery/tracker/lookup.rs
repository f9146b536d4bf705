//! The tracker as a [`Discovery`] source: a lookup by name or id prefix, and the holders of a
//! file a download already knows.

use anyhow::{Result, bail};

use super::TrackerLink;
use crate::discovery::{Discovery, Found};
use crate::protocol::{FileId, FileMatch, TrackerRequest};

impl Discovery for TrackerLink {
    fn holders(&self, id: FileId) -> Found<'_> {
        Box::pin(self.matches(TrackerRequest::Holders(id)))
    }

    fn find<'a>(&'a self, query: &'a str) -> Found<'a> {
        Box::pin(self.matches(TrackerRequest::Lookup { query: query.to_string() }))
    }
}

impl TrackerLink {
    /// The files and holders the tracker answers `request` with.
    async fn matches(&self, request: TrackerRequest) -> Result<Vec<FileMatch>> {
        match self.request(&request).await?.into_matches() {
            Some(found) => Ok(found),
            None => bail!("unexpected answer from the tracker"),
        }
    }
}
