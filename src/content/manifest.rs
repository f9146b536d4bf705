//! Content addressing: a file's id, its chunks, and how each chunk is verified.
//!
//! A file's id is its plain BLAKE3 hash, exactly what `b3sum` prints. The file is cut into
//! chunks of a power-of-two size (at least BLAKE3's 1 KiB chunk), so every chunk is a complete
//! subtree of the BLAKE3 tree. The manifest lists each chunk's chaining value; merging them with
//! `blake3::hazmat` the way BLAKE3 builds its tree yields the root, which must equal the id. So a
//! downloader trusts the manifest only once it hashes to the id it asked for, and trusts a chunk
//! only once its chaining value equals the manifest's entry. A one-chunk file is the root itself:
//! its chunk is checked against the id directly.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use serde::{Deserialize, Serialize};

use super::id::{Digest, FileId};

/// Default chunk size. 256 KiB keeps a 10 MiB file in 40 chunks (enough to spread over several
/// holders), keeps per-chunk memory small, and is large enough that per-stream overhead is noise
/// next to the bytes moved (see benches/chunk_throughput.rs).
pub const DEFAULT_CHUNK_SIZE: u32 = 256 * 1024;
/// Smallest chunk: BLAKE3's own chunk, below which chunks are not subtrees.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk a peer will accept; bounds the memory one chunk stream may take.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Most chunks in one manifest; larger files get larger chunks. Bounds the manifest to 2 MiB.
pub const MAX_CHUNKS: u64 = 1 << 16;

/// The chaining value of every chunk of a file, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File size in bytes.
    pub size: u64,
    /// Chunk size in bytes, a power of two.
    pub chunk_size: u32,
    /// One entry per chunk; for a one-chunk file the single entry is the root hash.
    pub chunks: Vec<[u8; 32]>,
}

/// Why a manifest or a chunk was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The manifest's shape is impossible (chunk size, count).
    #[error("manifest is malformed: {0}")]
    Malformed(String),
    /// The manifest does not hash to the file id.
    #[error("manifest does not match the file id")]
    WrongRoot,
    /// The chunk's bytes do not hash to the manifest's entry.
    #[error("chunk {0} failed verification")]
    BadChunk(u32),
    /// The chunk has the wrong length.
    #[error("chunk {index} is {got} bytes, expected {want}")]
    BadLength {
        /// Chunk index.
        index: u32,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: u64,
    },
}

/// The chunk size p2pq uses for a file of `size` bytes: the default, doubled until the file fits
/// in [`MAX_CHUNKS`] chunks.
pub fn chunk_size_for(size: u64) -> u32 {
    let mut chunk = DEFAULT_CHUNK_SIZE;
    while size.div_ceil(chunk as u64) > MAX_CHUNKS && chunk < MAX_CHUNK_SIZE {
        chunk *= 2;
    }
    chunk
}

/// Number of chunks of a `size`-byte file (0 for an empty file).
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(chunk_size as u64)
}

/// The chaining value of chunk `index` (non-root; only for files of two or more chunks).
pub fn chunk_cv(index: u32, chunk_size: u32, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index as u64 * chunk_size as u64);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Merges chunk chaining values into a subtree value, splitting the way BLAKE3 does: the left
/// subtree takes the largest power of two of chunks that leaves at least one for the right.
fn merge(cvs: &[[u8; 32]], root: bool) -> [u8; 32] {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let left_len = 1usize << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
    let left = merge(&cvs[..left_len], false);
    let right = merge(&cvs[left_len..], false);
    if root { *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes() } else { merge_subtrees_non_root(&left, &right, Mode::Hash) }
}

impl Manifest {
    /// Hashes a whole file already in memory (tests and benches).
    pub fn from_bytes(data: &[u8]) -> (FileId, Manifest) {
        let size = data.len() as u64;
        let chunk_size = chunk_size_for(size);
        let chunks = data.chunks(chunk_size as usize).enumerate();
        let chunks = chunks.map(|(i, piece)| piece_entry(i as u64, chunk_size, size, piece)).collect();
        let manifest = Manifest { size, chunk_size, chunks };
        (manifest.root(), manifest)
    }

    /// Reads and hashes a file on disk (blocking: call from a blocking thread).
    pub fn from_file(path: &Path) -> std::io::Result<(FileId, Manifest)> {
        Manifest::from_file_watched(path, &mut |_| true)
    }

    /// Like [`Manifest::from_file`], calling `watch` with the bytes of each chunk once it is
    /// hashed; when `watch` returns `false` the hashing stops at once with an
    /// [`std::io::ErrorKind::Interrupted`] error. So a cancelled share stops reading within one
    /// chunk (at most [`MAX_CHUNK_SIZE`]), not at the end of the file.
    pub fn from_file_watched(path: &Path, watch: &mut dyn FnMut(u64) -> bool) -> std::io::Result<(FileId, Manifest)> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        Manifest::from_open(&mut file, size, &mut Vec::new(), watch)
    }

    /// Hashes the first `size` bytes of an open file, reading through `buf` (grown to one
    /// chunk, or the whole file if it is smaller, and kept for the next file: a folder of
    /// thousands of small files is hashed without an allocation each); `watch` as in
    /// [`Manifest::from_file_watched`].
    pub fn from_open(
        file: &mut impl Read,
        size: u64,
        buf: &mut Vec<u8>,
        watch: &mut dyn FnMut(u64) -> bool,
    ) -> std::io::Result<(FileId, Manifest)> {
        let chunk_size = chunk_size_for(size);
        let need = size.min(chunk_size as u64) as usize;
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let count = chunk_count(size, chunk_size);
        let mut chunks = Vec::with_capacity(count as usize);
        for index in 0..count {
            let piece = &mut buf[..chunk_len(size, chunk_size, index) as usize];
            file.read_exact(piece)?;
            chunks.push(piece_entry(index, chunk_size, size, piece));
            if !watch(piece.len() as u64) {
                return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "hashing cancelled"));
            }
        }
        let manifest = Manifest { size, chunk_size, chunks };
        Ok((manifest.root(), manifest))
    }

    /// The manifest of a file of one chunk (at most [`DEFAULT_CHUNK_SIZE`] bytes): its one
    /// chunk hash is its id, so nothing needs to be kept to rebuild it. `None` for a size of
    /// more than one chunk.
    pub fn of_one_chunk(id: &FileId, size: u64) -> Option<Manifest> {
        let chunk_size = chunk_size_for(size);
        match chunk_count(size, chunk_size) {
            0 => Some(Manifest { size, chunk_size, chunks: Vec::new() }),
            1 => Some(Manifest { size, chunk_size, chunks: vec![id.0] }),
            _ => None,
        }
    }

    /// The file id this manifest stands for.
    pub fn root(&self) -> FileId {
        match self.chunks.len() {
            0 => blake3::hash(&[]).into(),
            _ => Digest(merge(&self.chunks, true)),
        }
    }

    /// Number of chunks.
    pub fn count(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// Byte offset of chunk `index`.
    pub fn offset(&self, index: u32) -> u64 {
        index as u64 * self.chunk_size as u64
    }

    /// Length of chunk `index` (the last one may be short).
    pub fn len_of(&self, index: u32) -> u64 {
        chunk_len(self.size, self.chunk_size, index as u64)
    }

    /// Checks the shape and that the manifest hashes to `id`.
    pub fn validate(&self, id: &FileId) -> Result<(), VerifyError> {
        let cs = self.chunk_size;
        if !cs.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&cs) {
            return Err(VerifyError::Malformed(format!("chunk size {cs}")));
        }
        let want = chunk_count(self.size, cs);
        if want > MAX_CHUNKS || self.chunks.len() as u64 != want {
            return Err(VerifyError::Malformed(format!("{} chunks for {} bytes", self.chunks.len(), self.size)));
        }
        if self.root() != *id {
            return Err(VerifyError::WrongRoot);
        }
        Ok(())
    }

    /// Checks one chunk's bytes against the manifest (blocking: hashes `data`).
    pub fn verify(&self, index: u32, data: &[u8]) -> Result<(), VerifyError> {
        let want = self.len_of(index);
        if index >= self.count() || data.len() as u64 != want {
            return Err(VerifyError::BadLength { index, got: data.len(), want });
        }
        let ok = if self.count() == 1 {
            blake3::hash(data).as_bytes() == &self.chunks[0]
        } else {
            chunk_cv(index, self.chunk_size, data) == self.chunks[index as usize]
        };
        if ok { Ok(()) } else { Err(VerifyError::BadChunk(index)) }
    }
}

/// The manifest entry of one chunk: its chaining value, or the root for a one-chunk file.
fn piece_entry(index: u64, chunk_size: u32, size: u64, piece: &[u8]) -> [u8; 32] {
    if chunk_count(size, chunk_size) == 1 { *blake3::hash(piece).as_bytes() } else { chunk_cv(index as u32, chunk_size, piece) }
}

/// Length of chunk `index` of a `size`-byte file.
fn chunk_len(size: u64, chunk_size: u32, index: u64) -> u64 {
    let start = index * chunk_size as u64;
    size.saturating_sub(start).min(chunk_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_one_chunk_manifest_is_rebuilt_from_its_id_alone() {
        for size in [0usize, 1, 1000, DEFAULT_CHUNK_SIZE as usize] {
            let (id, manifest) = Manifest::from_bytes(&data(size));
            assert_eq!(Manifest::of_one_chunk(&id, size as u64), Some(manifest), "size {size}");
        }
        let (id, _) = Manifest::from_bytes(&data(DEFAULT_CHUNK_SIZE as usize + 1));
        assert_eq!(Manifest::of_one_chunk(&id, DEFAULT_CHUNK_SIZE as u64 + 1), None);
    }

    #[test]
    fn hashing_through_a_kept_buffer_equals_hashing_each_file_afresh() {
        let mut buf = Vec::new();
        for size in [3 * DEFAULT_CHUNK_SIZE as usize + 5, 10, 0, DEFAULT_CHUNK_SIZE as usize] {
            let bytes = data(size);
            let got = Manifest::from_open(&mut &bytes[..], size as u64, &mut buf, &mut |_| true).unwrap();
            assert_eq!(got, Manifest::from_bytes(&bytes), "size {size}");
        }
    }

    #[test]
    fn root_equals_plain_blake3_around_chunk_boundaries() {
        let c = DEFAULT_CHUNK_SIZE as usize;
        for len in [0, 1, 1023, 1024, 1025, c - 1, c, c + 1, 2 * c, 3 * c + 5, 4 * c, 5 * c - 1, 7 * c + 1] {
            let bytes = data(len);
            let (id, manifest) = Manifest::from_bytes(&bytes);
            assert_eq!(id, Digest::from(blake3::hash(&bytes)), "len {len}");
            manifest.validate(&id).unwrap();
            for i in 0..manifest.count() {
                let start = manifest.offset(i) as usize;
                let end = start + manifest.len_of(i) as usize;
                manifest.verify(i, &bytes[start..end]).unwrap();
            }
        }
    }

    #[test]
    fn a_flipped_bit_fails_its_chunk() {
        let mut bytes = data(3 * DEFAULT_CHUNK_SIZE as usize);
        let (_, manifest) = Manifest::from_bytes(&bytes);
        bytes[DEFAULT_CHUNK_SIZE as usize + 7] ^= 1;
        let c = DEFAULT_CHUNK_SIZE as usize;
        assert_eq!(manifest.verify(1, &bytes[c..2 * c]), Err(VerifyError::BadChunk(1)));
        assert!(manifest.verify(0, &bytes[..c]).is_ok());
    }

    #[test]
    fn tampered_manifest_is_refused() {
        let bytes = data(3 * DEFAULT_CHUNK_SIZE as usize);
        let (id, mut manifest) = Manifest::from_bytes(&bytes);
        manifest.chunks[2][0] ^= 1;
        assert_eq!(manifest.validate(&id), Err(VerifyError::WrongRoot));
        manifest.chunks.pop();
        assert!(matches!(manifest.validate(&id), Err(VerifyError::Malformed(_))));
    }

    #[test]
    fn hashing_a_file_stops_when_told_and_reports_every_byte_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes = data(5 * DEFAULT_CHUNK_SIZE as usize + 3);
        std::fs::write(&path, &bytes).unwrap();
        let mut seen = 0;
        let (id, _) = Manifest::from_file_watched(&path, &mut |n| {
            seen += n;
            true
        })
        .unwrap();
        assert_eq!((id, seen), (Digest::from(blake3::hash(&bytes)), bytes.len() as u64));
        let mut calls = 0;
        let err = Manifest::from_file_watched(&path, &mut |_| {
            calls += 1;
            calls < 2
        })
        .unwrap_err();
        assert_eq!((err.kind(), calls), (std::io::ErrorKind::Interrupted, 2));
    }

    #[test]
    fn big_files_get_bigger_chunks() {
        assert_eq!(chunk_size_for(10 << 20), DEFAULT_CHUNK_SIZE);
        let tib = 1u64 << 40;
        assert!(chunk_count(tib, chunk_size_for(tib)) <= MAX_CHUNKS);
    }
}
