//! Tickets: one pasteable line that says where a file is and whom to trust to find it.
//!
//! `share` prints a ticket beside the id; `get TICKET` on another machine needs nothing else:
//! no certificate copied by hand, since the ticket carries the tracker's certificate
//! fingerprint and the peer pins it exactly as it pins a certificate file.
//!
//! Text form: `p2pq1` then unpadded lowercase RFC 4648 base32 of
//! `bincode(Body) || first 4 bytes of BLAKE3(bincode(Body))`. Base32 survives shells, chat
//! programs and double-click selection (one word, no punctuation); the checksum turns a
//! mistyped or cut ticket into a clear error instead of a lookup of the wrong file. A
//! different leading version (`p2pq2…`) is refused by name.
//!
//! A ticket proves nothing about content by itself: the file id in it is the BLAKE3 of the
//! bytes, and every chunk is still verified against it.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use crate::protocol::{FileId, FileInfo, Fingerprint, check_name};

/// What every ticket starts with: the scheme and its version.
pub const PREFIX: &str = "p2pq1";
/// Longest ticket text accepted (eight 255-byte addresses and a 255-byte name fit in it).
pub const MAX_TEXT: usize = 4096;
/// Most tracker addresses a ticket carries.
pub const MAX_ADDRESSES: usize = crate::protocol::MAX_CONTACT_ADDRESSES;
/// Longest tracker address, as `host:port`.
pub const MAX_ADDRESS_LEN: usize = crate::protocol::MAX_CONTACT_LEN;
/// Bytes of checksum after the body.
const CHECKSUM: usize = 4;

/// A file and the tracker to ask for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Addresses of one tracker, `host:port`, most likely to work first.
    pub trackers: Vec<String>,
    /// The tracker's certificate fingerprint, pinned when connecting.
    pub tracker_fingerprint: Fingerprint,
    /// The file: id, name, size.
    pub file: FileInfo,
}

/// What a `p2pq1` ticket holds, byte for byte: the file without its folder mark (a ticket
/// names an id; the tracker says whether it is a folder), so tickets stay as they always were.
#[derive(Serialize, Deserialize)]
struct Wire {
    trackers: Vec<String>,
    tracker_fingerprint: Fingerprint,
    file: (FileId, String, u64),
}

impl From<&Ticket> for Wire {
    fn from(t: &Ticket) -> Wire {
        Wire {
            trackers: t.trackers.clone(),
            tracker_fingerprint: t.tracker_fingerprint,
            file: (t.file.id, t.file.name.clone(), t.file.size),
        }
    }
}

impl From<Wire> for Ticket {
    fn from(w: Wire) -> Ticket {
        let (id, name, size) = w.file;
        Ticket { trackers: w.trackers, tracker_fingerprint: w.tracker_fingerprint, file: FileInfo { id, name, size, folder: None } }
    }
}

/// Why a text is not a usable ticket.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a ticket at all (no `p2pq1` prefix).
    #[error("not a p2pq ticket (tickets start with {PREFIX})")]
    NotATicket,
    /// A ticket from a newer p2pq.
    #[error("this ticket is for a newer p2pq ({0}…); upgrade to use it")]
    Newer(String),
    /// Cut, mistyped or altered.
    #[error("the ticket is damaged ({0}); copy the whole line again")]
    Damaged(&'static str),
    /// Well formed but holds something unusable.
    #[error("the ticket holds {0}")]
    Bad(String),
}

impl Ticket {
    /// Whether `text` looks like a ticket (so a query is not mistaken for a file name).
    pub fn looks_like(text: &str) -> bool {
        let lower = text.get(..4).map(str::to_ascii_lowercase);
        lower.as_deref() == Some("p2pq") && text.len() > PREFIX.len() && text.as_bytes()[4].is_ascii_digit()
    }

    /// Parses a ticket's text (surrounding spaces and case do not matter).
    pub fn parse(text: &str) -> Result<Ticket, TicketError> {
        let text = text.trim();
        if !Ticket::looks_like(text) {
            return Err(TicketError::NotATicket);
        }
        if text.len() > MAX_TEXT {
            return Err(TicketError::Damaged("too long"));
        }
        let version = &text[4..5];
        if version != "1" {
            return Err(TicketError::Newer(format!("p2pq{version}")));
        }
        let encoded = text[PREFIX.len()..].to_ascii_uppercase();
        let bytes = BASE32_NOPAD.decode(encoded.as_bytes()).map_err(|_| TicketError::Damaged("not base32"))?;
        let body_len = bytes.len().checked_sub(CHECKSUM).ok_or(TicketError::Damaged("too short"))?;
        let (body, sum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes()[..CHECKSUM] != *sum {
            return Err(TicketError::Damaged("checksum mismatch"));
        }
        let config = bincode::config::standard().with_limit::<MAX_TEXT>();
        let (wire, used): (Wire, usize) =
            bincode::serde::decode_from_slice(body, config).map_err(|_| TicketError::Damaged("unreadable"))?;
        if used != body.len() {
            return Err(TicketError::Damaged("trailing bytes"));
        }
        let ticket = Ticket::from(wire);
        ticket.check()?;
        Ok(ticket)
    }

    /// Checks what a ticket holds: a valid name, one to [`MAX_ADDRESSES`] sane addresses.
    fn check(&self) -> Result<(), TicketError> {
        check_name(&self.file.name).map_err(|e| TicketError::Bad(format!("a bad file name: {e}")))?;
        if self.trackers.is_empty() || self.trackers.len() > MAX_ADDRESSES {
            return Err(TicketError::Bad(format!("{} tracker addresses (1 to {MAX_ADDRESSES} allowed)", self.trackers.len())));
        }
        for addr in &self.trackers {
            if !usable_address(addr) {
                return Err(TicketError::Bad(format!("a bad tracker address {}", crate::protocol::printable(addr))));
            }
        }
        Ok(())
    }

    /// The file's id.
    pub fn id(&self) -> FileId {
        self.file.id
    }

    /// Whether every tracker address is loopback: the ticket works on this machine only.
    pub fn local_only(&self) -> bool {
        self.trackers.iter().all(|a| {
            let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        })
    }
}

/// Whether `addr` can stand in a ticket: 1 to [`MAX_ADDRESS_LEN`] printable ASCII bytes, no
/// spaces (it is resolved later; this only keeps junk and terminal escapes out).
pub fn usable_address(addr: &str) -> bool {
    !addr.is_empty() && addr.len() <= MAX_ADDRESS_LEN && addr.bytes().all(|b| b.is_ascii_graphic())
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut body = bincode::serde::encode_to_vec(Wire::from(self), bincode::config::standard()).map_err(|_| fmt::Error)?;
        let sum = blake3::hash(&body);
        body.extend_from_slice(&sum.as_bytes()[..CHECKSUM]);
        write!(f, "{PREFIX}{}", BASE32_NOPAD.encode(&body).to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            trackers: vec!["192.168.1.5:6771".into(), "tracker.example:6771".into()],
            tracker_fingerprint: blake3::hash(b"cert").into(),
            file: FileInfo { id: blake3::hash(b"file").into(), name: "holiday photos.zip".into(), size: 43_200_000, folder: None },
        }
    }

    #[test]
    fn a_ticket_reads_back_to_itself_in_any_case() {
        let text = ticket().to_string();
        assert!(text.starts_with("p2pq1") && text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
        assert_eq!(Ticket::parse(&text).unwrap(), ticket());
        assert_eq!(Ticket::parse(&format!("  {}\n", text.to_ascii_uppercase())).unwrap(), ticket());
    }

    #[test]
    fn a_changed_or_cut_ticket_is_refused_by_its_checksum() {
        let text = ticket().to_string();
        let cut = &text[..text.len() - 3];
        assert!(matches!(Ticket::parse(cut), Err(TicketError::Damaged(_))));
        for at in [PREFIX.len(), text.len() / 2, text.len() - 1] {
            let mut bytes = text.clone().into_bytes();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(matches!(Ticket::parse(&changed), Err(TicketError::Damaged(_))), "{changed}");
        }
    }

    #[test]
    fn a_loopback_ticket_is_known_to_work_here_only() {
        let mut local = ticket();
        assert!(!local.local_only());
        local.trackers = vec!["127.0.0.1:6771".into(), "[::1]:6771".into(), "localhost:1".into()];
        assert!(local.local_only());
    }

    #[test]
    fn other_texts_and_versions_are_named() {
        assert_eq!(Ticket::parse("notes.txt"), Err(TicketError::NotATicket));
        assert!(!Ticket::looks_like("p2pq-notes.txt") && !Ticket::looks_like("5f1c2a"));
        assert_eq!(Ticket::parse("p2pq2aaaa"), Err(TicketError::Newer("p2pq2".into())));
        assert!(Ticket::parse(&format!("p2pq1{}", "a".repeat(MAX_TEXT))).is_err());
    }

    #[test]
    fn a_ticket_with_a_hostile_name_or_address_is_refused() {
        let mut bad = ticket();
        bad.file.name = "../../etc/passwd".into();
        assert!(matches!(Ticket::parse(&bad.to_string()), Err(TicketError::Bad(_))));
        let mut bad = ticket();
        bad.trackers = vec!["evil\u{1b}[31m:1".into()];
        assert!(matches!(Ticket::parse(&bad.to_string()), Err(TicketError::Bad(_))));
        let mut bad = ticket();
        bad.trackers.clear();
        assert!(matches!(Ticket::parse(&bad.to_string()), Err(TicketError::Bad(_))));
    }
}
