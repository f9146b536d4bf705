//! The resume state of an unfinished download: which chunks are on disk, and what file they
//! belong to, as kept beside the partial file in `ID.bits`.
//!
//! Version 2, written now: `p2pqbit2`, the file's size (u64), its chunk count (u32) and chunk
//! size (u32), the length (u16) and UTF-8 bytes of the name it will get, one bit per chunk
//! (chunk `i` is bit `i % 8` of byte `i / 8`), then the BLAKE3 hash of all of that, so damage
//! is detected. Integers are little-endian. Version 1 (`p2pqbit1`: size, count and bits, no
//! chunk size or name), left by earlier releases, is still read: a download it describes
//! resumes all the same, and `status` shows it by id.

use crate::content::manifest::chunk_size_for;
use crate::protocol::check_name;

/// First bytes of a version 1 resume state.
const MAGIC_V1: &[u8; 8] = b"p2pqbit1";
/// First bytes of a version 2 resume state.
const MAGIC_V2: &[u8; 8] = b"p2pqbit2";
/// Length of the trailing checksum.
const SUM_LEN: usize = 32;

/// Which chunks of a file are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitfield {
    size: u64,
    count: u32,
    bits: Vec<u8>,
}

impl Bitfield {
    /// No chunk of a `size`-byte file of `count` chunks.
    pub fn empty(size: u64, count: u32) -> Bitfield {
        Bitfield { size, count, bits: vec![0; (count as usize).div_ceil(8)] }
    }

    /// Marks chunk `index` as in.
    pub fn set(&mut self, index: u32) {
        if index < self.count {
            self.bits[index as usize / 8] |= 1 << (index % 8);
        }
    }

    /// Whether chunk `index` is in.
    pub fn has(&self, index: u32) -> bool {
        index < self.count && self.bits[index as usize / 8] & (1 << (index % 8)) != 0
    }

    /// Indices of the chunks that are in.
    pub fn ones(&self) -> Vec<u32> {
        (0..self.count).filter(|&i| self.has(i)).collect()
    }

    /// Size of the file, in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of chunks of the file.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Chunks that are in.
    pub fn count_ones(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }

    /// The bits as bytes (chunk `i` is bit `i % 8` of byte `i / 8`): the wire's and the
    /// resume state's layout.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }
}

/// What a resume state says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeState {
    /// The name the file will get (`None` in version 1).
    pub name: Option<String>,
    /// Bytes per chunk (`None` in version 1).
    pub chunk_size: Option<u32>,
    /// The chunks on disk.
    pub bits: Bitfield,
}

impl ResumeState {
    /// Serialized as version 2.
    pub fn encode(name: &str, chunk_size: u32, bits: &Bitfield) -> Vec<u8> {
        let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
        let mut out = MAGIC_V2.to_vec();
        out.extend_from_slice(&bits.size.to_le_bytes());
        out.extend_from_slice(&bits.count.to_le_bytes());
        out.extend_from_slice(&chunk_size.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&bits.bits);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Parses either version; `None` if the bytes are damaged or in no known format.
    pub fn decode(bytes: &[u8]) -> Option<ResumeState> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(SUM_LEN)?)?;
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let mut input = Reader(body.get(MAGIC_V1.len()..)?);
        let v2 = match body.get(..MAGIC_V1.len())? {
            magic if magic == MAGIC_V2 => true,
            magic if magic == MAGIC_V1 => false,
            _ => return None,
        };
        let size = u64::from_le_bytes(input.take(8)?.try_into().ok()?);
        let count = u32::from_le_bytes(input.take(4)?.try_into().ok()?);
        let (chunk_size, name) = if v2 {
            let chunk_size = u32::from_le_bytes(input.take(4)?.try_into().ok()?);
            let len = u16::from_le_bytes(input.take(2)?.try_into().ok()?);
            let name = std::str::from_utf8(input.take(len.into())?).ok().filter(|n| check_name(n).is_ok()).map(String::from);
            (Some(chunk_size), name)
        } else {
            (None, None)
        };
        let bits = input.0;
        (bits.len() == (count as usize).div_ceil(8)).then(|| ResumeState {
            name,
            chunk_size,
            bits: Bitfield { size, count, bits: bits.to_vec() },
        })
    }

    /// The chunks on disk if this state describes a `size`-byte file of `count` chunks.
    pub fn bits_for(self, size: u64, count: u32) -> Option<Bitfield> {
        (self.bits.size == size && self.bits.count == count).then_some(self.bits)
    }

    /// Chunks and bytes on disk.
    pub fn verified(&self) -> (u32, u64) {
        let chunk = u64::from(self.chunk_size.unwrap_or_else(|| chunk_size_for(self.bits.size)));
        let ones = self.bits.ones();
        let bytes = ones.iter().map(|&i| self.bits.size.saturating_sub(u64::from(i) * chunk).min(chunk)).sum();
        (ones.len() as u32, bytes)
    }
}

/// Bytes read front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bitfield {
        let mut bits = Bitfield::empty(100, 13);
        bits.set(0);
        bits.set(12);
        bits.set(99);
        bits
    }

    #[test]
    fn resume_state_round_trips_and_damage_is_detected() {
        let bits = sample();
        let bytes = ResumeState::encode("f.bin", 8, &bits);
        let state = ResumeState::decode(&bytes).unwrap();
        assert_eq!((state.name.as_deref(), state.chunk_size, &state.bits), (Some("f.bin"), Some(8), &bits));
        assert_eq!(bits.ones(), vec![0, 12]);
        // Chunk 12 is the last, 4 bytes long.
        assert_eq!(state.verified(), (2, 8 + 4));
        assert_eq!(state.clone().bits_for(100, 14), None);
        assert_eq!(state.bits_for(100, 13), Some(bits));
        for at in [0, 20, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1;
            assert_eq!(ResumeState::decode(&flipped), None, "a flipped bit at {at} went unnoticed");
        }
        assert_eq!(ResumeState::decode(&bytes[..10]), None);
    }

    #[test]
    fn version_1_resume_state_is_still_read() {
        let bits = sample();
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&100u64.to_le_bytes());
        bytes.extend_from_slice(&13u32.to_le_bytes());
        bytes.extend_from_slice(&bits.bits);
        let sum = blake3::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        let state = ResumeState::decode(&bytes).unwrap();
        assert_eq!((state.name, state.chunk_size, state.bits), (None, None, bits));
    }
}
