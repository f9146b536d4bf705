//! The benches' free-space check: a bench that would fill the disk stops before it writes.

use std::path::Path;

use anyhow::{Result, bail};

/// Fails when `dir` cannot hold `need` bytes; warns and goes on when the free space cannot
/// be read.
pub fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    match p2pq::store::space::free_bytes(dir) {
        Some(free) if free < need => {
            bail!("{} has {} free, the bench needs {}", dir.display(), super::sizes::mib(free), super::sizes::mib(need))
        }
        Some(_) => Ok(()),
        None => {
            eprintln!("warning: cannot tell the free space in {}; going on", dir.display());
            Ok(())
        }
    }
}
