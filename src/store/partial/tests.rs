//! The partial file and its resume state, on a real temp folder.

use super::*;

fn manifest_of(data: &[u8]) -> (FileId, Manifest) {
    Manifest::from_bytes(data)
}

#[test]
fn a_checkpointed_partial_resumes_with_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3 * 256 * 1024).map(|i| (i % 251) as u8).collect();
    let (id, manifest) = manifest_of(&data);
    let (part, claimed) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    assert!(claimed.is_empty());
    let c = manifest.chunk_size as usize;
    part.write_chunk(1, c as u64, &data[c..2 * c]).unwrap();
    part.checkpoint().unwrap();
    drop(part);
    let (part, claimed) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    assert_eq!(claimed, vec![1]);
    assert!(part.recheck(&manifest, 1));
}

#[test]
fn damaged_resume_state_costs_a_recheck_not_a_wrong_file() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3 * 256 * 1024).map(|i| (i % 253) as u8).collect();
    let (id, manifest) = manifest_of(&data);
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    part.write_chunk(0, 0, &data[..256 * 1024]).unwrap();
    part.checkpoint().unwrap();
    drop(part);
    let bits = dir.path().join(PARTIAL_DIR).join(format!("{}.bits", id.to_hex()));
    fs::write(&bits, b"garbage").unwrap();
    let (part, claimed) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    assert_eq!(claimed, vec![0, 1, 2], "everything is re-checked");
    let verified: Vec<u32> = claimed.into_iter().filter(|&i| part.recheck(&manifest, i)).collect();
    assert_eq!(verified, vec![0]);
}

#[test]
fn aligned_direct_writes_and_cached_writes_make_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = 256 * 1024;
    let data: Vec<u8> = (0..2 * chunk + 1000).map(|i| (i % 241) as u8).collect();
    let (id, manifest) = manifest_of(&data);
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    // Chunk 0 from a page-aligned buffer (direct I/O where the file system has it), chunk 1
    // from an unaligned one, the short last chunk through the cache either way.
    let mut slack = vec![0u8; chunk + 2 * crate::store::DIRECT_ALIGN];
    let start = (crate::store::DIRECT_ALIGN - slack.as_ptr() as usize % crate::store::DIRECT_ALIGN) % crate::store::DIRECT_ALIGN;
    slack[start..start + chunk].copy_from_slice(&data[..chunk]);
    part.write_chunk(0, 0, &slack[start..start + chunk]).unwrap();
    slack[start + 1..start + 1 + chunk].copy_from_slice(&data[chunk..2 * chunk]);
    part.write_chunk(1, chunk as u64, &slack[start + 1..start + 1 + chunk]).unwrap();
    part.write_chunk(2, 2 * chunk as u64, &data[2 * chunk..]).unwrap();
    let path = part.finish().unwrap();
    assert!(fs::read(path).unwrap() == data, "the file differs from what was written");
}

#[test]
fn finish_never_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let (id, manifest) = manifest_of(b"new");
    fs::write(dir.path().join("f"), b"old").unwrap();
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    part.write_chunk(0, 0, b"new").unwrap();
    assert!(matches!(part.finish(), Err(StoreError::Exists(_))));
    assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"old");
}

#[test]
fn finish_links_the_complete_file_and_clears_resume_state() {
    let dir = tempfile::tempdir().unwrap();
    let (id, manifest) = manifest_of(b"abc");
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    part.write_chunk(0, 0, b"abc").unwrap();
    part.checkpoint().unwrap();
    let path = part.finish().unwrap();
    assert_eq!(fs::read(path).unwrap(), b"abc");
    assert!(!dir.path().join(PARTIAL_DIR).exists(), "the empty hidden folder was left behind");
}

#[test]
fn a_partial_with_nothing_on_disk_leaves_nothing_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..2 * 256 * 1024).map(|i| (i % 249) as u8).collect();
    let (id, manifest) = manifest_of(&data);
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    part.checkpoint().unwrap();
    part.remove_if_empty();
    assert!(!dir.path().join(PARTIAL_DIR).exists(), "an empty download left files behind");
    // One verified chunk is worth keeping.
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    part.write_chunk(0, 0, &data[..256 * 1024]).unwrap();
    part.checkpoint().unwrap();
    part.remove_if_empty();
    assert!(paths(dir.path(), &id).0.exists(), "a partial with a verified chunk was removed");
}

#[cfg(unix)]
#[test]
fn a_resume_state_that_cannot_be_written_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (id, manifest) = manifest_of(b"abc");
    let (part, _) = Partial::open(dir.path(), &id, "f", &manifest).unwrap();
    // The rename fails: a folder stands where the resume state goes.
    let bits = paths(dir.path(), &id).1;
    fs::create_dir(&bits).unwrap();
    fs::write(bits.join("x"), b"x").unwrap();
    assert!(part.checkpoint().is_err());
    assert!(!tmp_of(&bits).exists(), "a failed checkpoint left {}", tmp_of(&bits).display());
}
