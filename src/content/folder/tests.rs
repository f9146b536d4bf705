use super::*;

fn id_of(content: &[u8]) -> FileId {
    Digest::from(blake3::hash(content))
}

fn file(path: &str, content: &[u8]) -> Entry {
    Entry { path: path.into(), kind: Kind::File { size: content.len() as u64, id: id_of(content) } }
}

fn empty(path: &str) -> Entry {
    Entry { path: path.into(), kind: Kind::EmptyFolder }
}

/// A small tree with what trees have: nesting, an empty file, an empty folder, spaces and
/// non-ASCII names.
fn tree() -> Vec<Entry> {
    vec![
        file("photos/2024/été à Nice.jpg", b"jpeg bytes"),
        file("README", b"hello\n"),
        empty("photos/empty album"),
        file("photos/a b.txt", b""),
        file("photos/2024/z.txt", b"z"),
    ]
}

#[test]
fn a_listing_is_sorted_by_path_bytes_and_reads_back_the_same() {
    let listing = Listing::new(tree()).unwrap();
    let paths: Vec<&str> = listing.entries().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["README", "photos/2024/z.txt", "photos/2024/été à Nice.jpg", "photos/a b.txt", "photos/empty album"]);
    assert_eq!(Listing::parse(&listing.encode()).unwrap(), listing);
    assert_eq!((listing.file_count(), listing.total_size()), (4, 17));
}

#[test]
fn the_folder_id_is_pinned_and_is_the_b3sum_of_the_listing() {
    let listing = Listing::new(tree()).unwrap();
    let text = String::from_utf8(listing.encode()).unwrap();
    let expected = format!(
        "p2pq folder v1\nf 6 {} README\nf 1 {} photos/2024/z.txt\nf 10 {} photos/2024/été à Nice.jpg\nf 0 {} photos/a b.txt\nd photos/empty album\n",
        id_of(b"hello\n"),
        id_of(b"z"),
        id_of(b"jpeg bytes"),
        id_of(b""),
    );
    assert_eq!(text, expected);
    assert_eq!(listing.id(), id_of(text.as_bytes()));
    // Pinned: a change to the encoding changes every folder's id, and must be a new version.
    assert_eq!(listing.id().to_hex(), PINNED_ID);
    // The same entries in any order are the same folder.
    let mut reversed = tree();
    reversed.reverse();
    assert_eq!(Listing::new(reversed).unwrap().id(), listing.id());
}

const PINNED_ID: &str = "fa70f1864121cad2c47558ddb704a479f4b5e7574d18624d415646814a113d79";

#[test]
fn an_empty_folder_has_a_listing_too() {
    let listing = Listing::new(Vec::new()).unwrap();
    assert_eq!(listing.encode(), b"p2pq folder v1\n");
    assert_eq!(Listing::parse(b"p2pq folder v1\n").unwrap(), listing);
}

/// A listing made of `lines` after the header, each ending in a newline.
fn text(lines: &[String]) -> Vec<u8> {
    let mut out = format!("{HEADER}\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

fn f(path: &str) -> String {
    format!("f 1 {} {path}", id_of(b"x"))
}

/// Hostile listings, each refused: (what it tries, the listing, words the error must hold).
fn hostile() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let id = id_of(b"x").to_hex();
    let long = "n".repeat(256);
    let deep = vec!["d"; 2100].join("/");
    vec![
        ("nothing", Vec::new(), "not a p2pq folder listing"),
        ("another version", b"p2pq folder v2\n".to_vec(), "not a p2pq folder listing"),
        ("header without newline", b"p2pq folder v1".to_vec(), "not a p2pq folder listing"),
        ("not UTF-8", [b"p2pq folder v1\nf 1 ".as_slice(), id.as_bytes(), b" \xff\xfe\n"].concat(), "not UTF-8"),
        ("last line unterminated", format!("{HEADER}\n{}", f("a")).into_bytes(), "newline"),
        ("CRLF line ends", format!("{HEADER}\r\n{}\r\n", f("a")).into_bytes(), "not a p2pq folder listing"),
        ("CR inside a path", text(&[f("a\r")]), "control character"),
        ("unknown entry type", text(&["x a".into()]), "neither a file"),
        ("file without id", text(&["f 1".into()]), "has no id"),
        ("file without path", text(&[format!("f 1 {id}")]), "has no path"),
        ("size with a leading zero", text(&[format!("f 01 {id} a")]), "plain decimal"),
        ("size with a sign", text(&[format!("f +1 {id} a")]), "plain decimal"),
        ("negative size", text(&[format!("f -1 {id} a")]), "plain decimal"),
        ("size past u64", text(&[format!("f 99999999999999999999999 {id} a")]), "too large"),
        ("upper-case id", text(&[format!("f 1 {} a", id.to_uppercase())]), "64 lowercase hex"),
        ("short id", text(&[format!("f 1 {} a", &id[..63])]), "64 lowercase hex"),
        ("two spaces", text(&[format!("f 1  {id} a")]), "64 lowercase hex"),
        ("absolute path", text(&[f("/etc/passwd")]), "absolute"),
        ("parent folder", text(&[f("../outside")]), "not a file"),
        ("parent deeper in", text(&[f("a/../../outside")]), "not a file"),
        ("current folder", text(&[f("./a")]), "not a file"),
        ("empty component", text(&[f("a//b")]), "empty file name"),
        ("trailing slash", text(&[f("a/")]), "empty file name"),
        ("empty path", text(&["d ".into()]), "empty file name"),
        ("backslash", text(&[f("a\\b")]), "separator"),
        ("backslash parent", text(&[f("..\\outside")]), "separator"),
        ("NUL", text(&[f("a\0b")]), "control character"),
        ("terminal escape", text(&[f("a\x1b[2Jb")]), "control character"),
        ("DEL", text(&[f("a\x7fb")]), "control character"),
        ("bidi override", text(&[f("evil\u{202e}txt.exe")]), "control character"),
        ("Windows device", text(&[f("CON")]), "device name"),
        ("Windows device with extension", text(&[f("nul.txt")]), "device name"),
        ("Windows device deeper in", text(&[f("a/com1")]), "device name"),
        ("component of 256 bytes", text(&[f(&long)]), "255-byte limit"),
        ("path over 4096 bytes", text(&[f(&deep)]), "4096-byte limit"),
        ("same path twice", text(&[f("a"), f("a")]), "twice"),
        ("out of order", text(&[f("b"), f("a")]), "not in order"),
        ("file that is a folder", text(&[f("a"), f("a/b")]), "as a file and as a folder"),
        ("empty folder with a file in it", text(&["d a".into(), f("a/b")]), "as empty"),
        ("total over the limit", text(&[format!("f {} {id} a", 9u64 << 40), format!("f {} {id} b", 9u64 << 40)]), "add up to more"),
    ]
}

#[test]
fn hostile_listings_are_refused_with_a_clear_reason() {
    let cases = hostile();
    assert!(cases.len() >= 30);
    for (what, bytes, words) in cases {
        let err = Listing::parse(&bytes).expect_err(what).to_string();
        assert!(err.contains(words), "{what}: {err:?} should say {words:?}");
        assert!(!err.contains('\n') && !err.contains('\x1b'), "{what}: {err:?} is not one printable line");
    }
}

#[test]
fn oversized_listings_are_refused_before_they_are_read() {
    let huge = vec![b'a'; MAX_LISTING_BYTES + 1];
    assert_eq!(Listing::parse(&huge), Err(ListingError::TooLarge(MAX_LISTING_BYTES + 1)));
    let lines: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("d {i:07}")).collect();
    assert_eq!(Listing::parse(&text(&lines)), Err(ListingError::TooManyEntries));
}

#[test]
fn names_that_differ_only_in_case_clash_where_case_folds() {
    let clash = Listing::new(vec![file("Photo.JPG", b"1"), file("photo.jpg", b"2")]).unwrap();
    assert!(matches!(clash.check_case(), Err(ListingError::CaseClash(..))));
    let through_folder = Listing::new(vec![file("Album/x", b"1"), file("album/y", b"2")]).unwrap();
    assert!(matches!(through_folder.check_case(), Err(ListingError::CaseClash(..))));
    assert_eq!(Listing::new(tree()).unwrap().check_case(), Ok(()));
}

#[test]
fn listings_made_here_follow_the_same_rules() {
    assert!(matches!(Listing::new(vec![file("a", b"1"), file("a/b", b"2")]), Err(ListingError::FileAndFolder(_))));
    assert!(matches!(Listing::new(vec![file("a", b"1"), file("a", b"2")]), Err(ListingError::Duplicate(_))));
    assert!(matches!(Listing::new(vec![file("../x", b"1")]), Err(ListingError::Path { .. })));
}

#[test]
fn a_part_of_a_folder_is_a_folder_of_its_own() {
    let listing = Listing::new(tree()).unwrap();
    let part = listing.part("photos/2024").unwrap();
    let paths: Vec<&str> = part.entries().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["z.txt", "été à Nice.jpg"]);
    assert_eq!(Listing::parse(&part.encode()).unwrap(), part);
    assert!(listing.part("photos/20").is_none(), "a prefix of a name is not a folder");
    assert!(listing.part("README").is_none());
    assert_eq!(listing.file("README").map(|(size, _)| size), Some(6));
}
