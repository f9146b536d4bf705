use super::*;

fn write(root: &Path, path: &str, content: &[u8]) {
    let at = root.join(path);
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    fs::write(at, content).unwrap();
}

#[test]
fn a_walk_finds_files_and_empty_folders_and_follows_no_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.txt", b"a");
    write(root, "deep/er/still/z.bin", b"zz");
    write(root, "with space/é.txt", b"");
    fs::create_dir_all(root.join("empty/inner")).unwrap();
    fs::create_dir_all(root.join("only-skipped")).unwrap();
    write(root, "only-skipped/x.part", b"left");
    fs::create_dir_all(root.join(".p2pq-partial")).unwrap();
    write(root, ".p2pq-partial/abc.part", b"p");
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", b"s");
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("linked-dir")).unwrap();

    let tree = walk(root).unwrap();
    let mut files: Vec<(&str, u64)> = tree.files.iter().map(|f| (f.path.as_str(), f.stamp.size)).collect();
    files.sort();
    assert_eq!(files, [("a.txt", 1), ("deep/er/still/z.bin", 2), ("with space/é.txt", 0)]);
    let mut empty = tree.empty_folders.clone();
    empty.sort();
    assert_eq!(empty, ["empty/inner", "only-skipped"]);
    let mut skipped: Vec<&str> = tree.skipped.iter().map(|(p, _)| p.as_str()).collect();
    skipped.sort();
    assert_eq!(skipped, ["link", "linked-dir", "only-skipped/x.part"]);
    assert!(tree.skipped.iter().any(|(p, why)| p == "link" && why.contains("symlink")));
    assert_eq!(tree.bytes(), 3);
}

#[test]
fn names_no_listing_could_hold_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ok.txt", b"1");
    write(dir.path(), "bad\x1bname", b"2");
    write(dir.path(), "CON", b"3");
    let tree = walk(dir.path()).unwrap();
    assert_eq!(tree.files.len(), 1);
    assert_eq!(tree.skipped.len(), 2, "{:?}", tree.skipped);
    assert!(tree.skipped.iter().any(|(_, why)| why.contains("device name")));
}

#[test]
fn a_missing_folder_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = walk(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(err.starts_with("cannot read ") && err.contains("nope"), "{err}");
}
