//! Where holders come from. A [`Discovery`] turns what the user typed (a name, or an id or its
//! first hex digits) into the files it may mean, each with the peers holding it. The tracker
//! is the first source ([`tracker::TrackerLink`], which also keeps this peer registered and
//! its shares announced); the Mainline DHT ([`dht`]) finds holders by full id, and
//! [`many::Many`] asks several sources at once and merges what they find.

pub mod dht;
pub mod many;
pub mod ticket;
pub mod tracker;

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

use crate::protocol::{FileId, FileMatch};

/// A future a [`Discovery`] returns (boxed, so the trait can be used as `dyn`).
pub type Found<'a> = Pin<Box<dyn Future<Output = Result<Vec<FileMatch>>> + Send + 'a>>;

/// A source of candidate holders.
pub trait Discovery: Send + Sync {
    /// Every file `query` may name, each with the holders this source knows of.
    fn find<'a>(&'a self, query: &'a str) -> Found<'a>;

    /// The holders of the file `id` now, for a download already under way (a source may
    /// answer this more cheaply than a search, and need not record it as a new request).
    fn holders(&self, id: FileId) -> Found<'_> {
        Box::pin(async move { self.find(&id.to_hex()).await })
    }
}
