//! Checks on names that come from people or the network, and escaping for the terminal.

use serde::Deserialize;

/// Longest reason text kept from the network, in bytes; a longer one is cut (it is for display).
pub const MAX_REASON_LEN: usize = 512;
/// Longest file name accepted from anyone, in bytes (the common file-system limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest peer id, in bytes.
pub const MAX_PEER_ID_LEN: usize = 64;

/// `text` made safe to print on a terminal: control characters (escape sequences, NUL, newlines)
/// and bidirectional overrides are shown escaped (`\u{1b}`); everything else, accents and all,
/// stays as it is. Applying it twice changes nothing more. The one rule for every line p2pq
/// prints that holds text from a file name, a peer or the network.
pub fn printable(text: &str) -> String {
    printable_capped(text, usize::MAX)
}

/// [`printable`], cut to `limit` bytes (then `…`): a reason from the network, whose length a
/// hostile peer chooses, is cut to [`MAX_REASON_LEN`]. Applying it twice changes nothing more.
pub fn printable_capped(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit));
    let mut escaped = String::new();
    for c in text.chars() {
        escaped.clear();
        if c.is_control() || is_bidi_control(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
        // Cut before a piece that would not fit, so that applying it twice changes nothing.
        if out.len().saturating_add(escaped.len()) > limit {
            out.push('…');
            break;
        }
        out.push_str(&escaped);
    }
    out
}

/// Unicode's bidirectional formatting characters: invisible, and they reorder what a terminal
/// shows (`exe.txt` shown for `txt.exe`), so names refuse them and reasons escape them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Decodes a reason from the network, made printable and capped (serde `deserialize_with`).
pub fn printable_reason<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    String::deserialize(de).map(|text| printable_capped(&text, MAX_REASON_LEN))
}

/// Decodes a chunk header's result, its reason made printable and capped.
pub fn printable_result<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Result<u32, String>, D::Error> {
    Result::<u32, String>::deserialize(de).map(|r| r.map_err(|text| printable_capped(&text, MAX_REASON_LEN)))
}

/// Why a name that came from the network or the user cannot be used as a file name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty file name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("file name is {} bytes, over the {MAX_NAME_LEN}-byte limit", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("file name {name:?} is not a file"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("file name {} contains a path separator", quoted(name)));
    }
    // On Windows `C:x` joined to a folder is a path on drive C, `x:y` a hidden stream, and
    // `NUL` or `COM1` a device; elsewhere these are ordinary names.
    #[cfg(windows)]
    if name.contains(':') || is_windows_device(name) {
        return Err(format!("file name {} cannot be a file name on Windows", quoted(name)));
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(format!("file name {} contains a control character", quoted(name)));
    }
    Ok(())
}

/// `name` in quotes, escaped for display (`{:?}`-style, with bidi controls escaped too).
fn quoted(name: &str) -> String {
    format!("\"{}\"", printable(&name.escape_debug().to_string()))
}

/// Why a peer id cannot be used: ids are short names of letters, digits, `-` and `_`.
pub fn check_peer_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_PEER_ID_LEN {
        return Err(format!("peer id must be 1 to {MAX_PEER_ID_LEN} characters"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("peer id {id:?} may hold only letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// Whether `name` is one of Windows' reserved device names (with or without an extension).
pub(crate) fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4 && (stem.starts_with("COM") || stem.starts_with("LPT")) && stem.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_paths_or_controls_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "..\\x", "a\0b", "\x1b[31m", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a.txt", "résumé.pdf", "x..y", &"x".repeat(255)] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn reasons_are_made_printable_once_and_for_all() {
        assert_eq!(printable("a\x1b[31mb\u{202e}c"), "a\\u{1b}[31mb\\u{202e}c");
        let long = format!("{}\x07", "x".repeat(MAX_REASON_LEN - 3));
        let once = printable_capped(&long, MAX_REASON_LEN);
        assert!(once.ends_with('…') && once.len() <= MAX_REASON_LEN + 3, "{once}");
        assert_eq!(printable_capped(&once, MAX_REASON_LEN), once);
        assert_eq!(printable("données\tà\x1b"), "données\\u{9}à\\u{1b}", "accents stay, controls are escaped");
        assert_eq!(printable(&long).len(), long.len() + "\\u{7}".len() - 1, "uncapped");
    }

    #[test]
    fn peer_ids() {
        assert!(check_peer_id("alice_2-b").is_ok());
        assert!(check_peer_id("a b").is_err());
        assert!(check_peer_id("").is_err());
    }
}
