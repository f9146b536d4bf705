//! `get NAME --only PATTERN`: which paths of a folder a partial get keeps.
//!
//! Patterns are globs (`*` and `?` within one component, `**` across components, `[abc]`,
//! `{jpg,png}`), matched case-sensitively, as `.gitignore` reads them:
//! - a pattern without `/` is matched against every component of a path, so `*.jpg` keeps
//!   every JPEG at any depth, and `raw` keeps everything in any folder called `raw`;
//! - a pattern with `/` is matched from the folder's top (a leading `/` is allowed), against
//!   the path and each folder above it, so `2024/summer` keeps that folder whole and
//!   `2024/*.jpg` the JPEGs right in `2024`; `/raw` keeps only the top folder `raw`.
//!
//! A trailing `/` is ignored.
//! A path is kept when any pattern matches it.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Most patterns one get may give.
pub const MAX_PATTERNS: usize = 64;
/// Longest pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// A pattern that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OnlyError {
    /// Not a valid glob.
    #[error("--only {0:?}: {1}")]
    Bad(String, String),
    /// Too many or too long.
    #[error("--only takes at most {MAX_PATTERNS} patterns of at most {MAX_PATTERN_BYTES} bytes")]
    TooMany,
}

/// The patterns of one `--only`.
#[derive(Clone, Debug)]
pub struct Only {
    /// Patterns without `/`, matched against each component.
    names: GlobSet,
    /// Patterns with `/`, matched against the path and each folder above it.
    paths: GlobSet,
    /// The patterns as given.
    given: Vec<String>,
}

impl Only {
    /// The patterns `given`, checked.
    pub fn new(given: &[String]) -> Result<Only, OnlyError> {
        if given.is_empty() || given.len() > MAX_PATTERNS || given.iter().any(|p| p.len() > MAX_PATTERN_BYTES) {
            return Err(OnlyError::TooMany);
        }
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for pattern in given {
            let trimmed = pattern.trim_start_matches('/').trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(OnlyError::Bad(pattern.clone(), "matches nothing".into()));
            }
            let glob = glob(trimmed).map_err(|e| OnlyError::Bad(pattern.clone(), e.kind().to_string()))?;
            if trimmed.contains('/') || pattern.starts_with('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |set: GlobSetBuilder| set.build().map_err(|e| OnlyError::Bad(given.join(" "), e.to_string()));
        Ok(Only { names: build(names)?, paths: build(paths)?, given: given.to_vec() })
    }

    /// Whether the listing path `path` (relative, `/` between components) is kept.
    pub fn matches(&self, path: &str) -> bool {
        if path.split('/').any(|component| self.names.is_match(component)) {
            return true;
        }
        let ends = path.match_indices('/').map(|(i, _)| i).chain([path.len()]);
        ends.into_iter().any(|end| self.paths.is_match(&path[..end]))
    }

    /// The patterns as given.
    pub fn given(&self) -> &[String] {
        &self.given
    }
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).backslash_escape(true).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(patterns: &[&str]) -> Only {
        Only::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    const TREE: &[&str] =
        &["cover.jpg", "2024/a.jpg", "2024/notes.txt", "2024/summer/b.JPG", "2024/summer/raw/c.cr2", "raw/d.cr2", "x/raw"];

    fn kept(patterns: &[&str]) -> Vec<&'static str> {
        let only = only(patterns);
        TREE.iter().copied().filter(|p| only.matches(p)).collect()
    }

    #[test]
    fn a_pattern_without_a_slash_matches_any_component() {
        assert_eq!(kept(&["*.jpg"]), ["cover.jpg", "2024/a.jpg"]);
        assert_eq!(kept(&["raw"]), ["2024/summer/raw/c.cr2", "raw/d.cr2", "x/raw"]);
        assert_eq!(kept(&["*.{jpg,JPG}"]), ["cover.jpg", "2024/a.jpg", "2024/summer/b.JPG"]);
    }

    #[test]
    fn a_pattern_with_a_slash_matches_from_the_top_and_keeps_folders_whole() {
        assert_eq!(kept(&["2024/summer"]), ["2024/summer/b.JPG", "2024/summer/raw/c.cr2"]);
        assert_eq!(kept(&["/2024/*.jpg"]), ["2024/a.jpg"]);
        assert_eq!(kept(&["2024/**/*.cr2"]), ["2024/summer/raw/c.cr2"]);
        assert_eq!(kept(&["summer/b.JPG"]), Vec::<&str>::new(), "anchored at the top");
        assert_eq!(kept(&["*.txt", "/raw"]), ["2024/notes.txt", "raw/d.cr2"]);
    }

    #[test]
    fn bad_patterns_are_one_clear_error() {
        let bad = |p: &[&str]| Only::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err().to_string();
        assert!(bad(&["[abc"]).starts_with("--only \"[abc\": "), "{}", bad(&["[abc"]));
        assert!(bad(&["/"]).contains("matches nothing"));
        assert!(bad(&[]).contains("at most"));
        assert!(bad(&[&"a".repeat(2000)]).contains("at most"));
    }
}
