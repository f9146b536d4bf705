//! Sharing folders: one id for a tree (the b3sum of its listing), each file in it still a file
//! of its own that downloads alone and matches `b3sum`; symlinks and changing files left out.

mod common;

use std::path::Path;

use common::inproc::{Net, get};
use common::{Swarm, b3sum, bytes};
use p2pq::content::folder::{Entry, Kind, Listing};
use p2pq::content::id::Digest;
use p2pq::net::linksim::Link;

/// The tree shared in these tests: (path, content).
fn album() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("album/cover.jpg", bytes(300_000, "cover")),
        ("album/2024/été à Nice.jpg", bytes(70_000, "nice")),
        ("album/2024/deeper/still/notes.txt", b"notes\n".to_vec()),
        ("album/empty.txt", Vec::new()),
    ]
}

/// The listing a person would write by hand with `b3sum` over each file of [`album`].
fn expected_listing() -> Listing {
    let mut entries: Vec<Entry> = album()
        .into_iter()
        .map(|(path, data)| {
            let id = Digest::from(blake3::hash(&data));
            Entry { path: path.trim_start_matches("album/").into(), kind: Kind::File { size: data.len() as u64, id } }
        })
        .collect();
    entries.push(Entry { path: "nothing here".into(), kind: Kind::EmptyFolder });
    Listing::new(entries).unwrap()
}

fn symlink(target: &Path, link: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_folder_has_the_id_of_its_listing_and_each_file_downloads_alone() {
    let mut net = Net::start().await.unwrap();
    let (holder, _) = net.add_peer("1", Link::default()).await.unwrap();
    let (getter, _) = net.add_peer("2", Link::default()).await.unwrap();
    for (path, data) in album() {
        net.write_data(&holder, path, &data).unwrap();
    }
    let cover = net.write_data(&holder, "album/cover.jpg", &album()[0].1).unwrap();
    let album_dir = cover.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(album_dir.join("nothing here")).unwrap();
    let secret = net.write_data(&holder, "secret.txt", b"outside the folder").unwrap();
    symlink(&secret, &album_dir.join("link-out"));

    let shared = holder.share("album").await.unwrap();
    let folder = shared.folder.as_ref().expect("a folder summary");
    let listing = expected_listing();
    assert_eq!(shared.info.id, listing.id(), "the folder id is the b3sum of its listing");
    assert_eq!(shared.info.id.to_hex(), b3sum(&listing.encode()));
    assert_eq!((shared.info.name.as_str(), folder.files, folder.bytes), ("album", 4, listing.total_size()));
    assert!(folder.skipped.iter().any(|(path, why)| path == "link-out" && why.contains("symlink")), "{:?}", folder.skipped);
    assert!(shared.pending.is_none(), "{:?}", shared.pending);
    // The same tree shared again is the same folder.
    assert_eq!(holder.share("album").await.unwrap().info.id, listing.id());

    // A file in the folder is a file of its own: fetched by its id, it matches b3sum.
    let (_, nice) = &album()[1];
    let got = get(&getter, &b3sum(nice)).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), *nice);
    assert_eq!(got.path.file_name().unwrap(), "été à Nice.jpg");
    // What the symlink points to was never shared.
    let Err(refused) = get(&getter, &b3sum(b"outside the folder")).await else { panic!("the symlink's target was shared") };
    assert!(format!("{refused:#}").contains("no"), "{refused:#}");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_and_a_folder_of_many_small_files_share() {
    let mut net = Net::start().await.unwrap();
    let (holder, _) = net.add_peer("1", Link::default()).await.unwrap();
    let marker = net.write_data(&holder, "marker", b"").unwrap();
    std::fs::create_dir_all(marker.with_file_name("void")).unwrap();
    let shared = holder.share("void").await.unwrap();
    assert_eq!(shared.info.id.to_hex(), b3sum(b"p2pq folder v1\n"));
    assert_eq!(shared.folder.as_ref().map(|f| f.files), Some(0));

    for i in 0..500 {
        net.write_data(&holder, &format!("many/{:03}/{i}.txt", i % 7), format!("file {i}").as_bytes()).unwrap();
    }
    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let shared = holder.share_with("many", Some(events), &Default::default()).await.unwrap();
    assert_eq!(shared.folder.as_ref().map(|f| f.files), Some(500));
    // The bar counts files: from none to all of them.
    let mut files = Vec::new();
    while let Ok(event) = seen.try_recv() {
        if let p2pq::peer::events::Hashing::Files { done, total } = event {
            files.push((done, total));
        }
    }
    assert_eq!((files.first(), files.last()), (Some(&(0, 500)), Some(&(500, 500))), "{files:?}");
    net.stop().await;
}

#[cfg(unix)]
#[test]
fn share_at_the_prompt_says_what_a_folder_holds_and_what_was_left_out() {
    let swarm = Swarm::start("15");
    std::fs::write(swarm.path().join("secret.txt"), b"outside the data folder").unwrap();
    swarm.write_data("trip/day 1.txt", b"sun");
    swarm.write_data("trip/day 2.txt", b"rain");
    std::os::unix::fs::symlink(swarm.path().join("secret.txt"), swarm.path().join("data/trip/escape")).unwrap();
    let mut peer = swarm.peer("1");
    let out = peer.command("share trip", "shared ");
    let line = out.last().unwrap();
    assert!(line.starts_with("shared folder trip (2 files, 7 B) id "), "{line}");
    assert!(line.contains("left out 1: escape (a symlink (not followed))"), "{line}");
    // The folder and its two files reach the tracker; the link's target never does.
    let mut tracker = swarm.tracker;
    let files = tracker.command("files", " file");
    assert!(files.iter().any(|l| l.contains("day 1.txt")) && files.iter().any(|l| l.contains("trip")), "{files:?}");
    assert!(!files.iter().any(|l| l.contains("secret")), "{files:?}");
}

#[test]
fn a_folder_deleted_between_runs_is_dropped_in_a_few_lines_and_forgotten() {
    let swarm = Swarm::start("15");
    for i in 0..40 {
        swarm.write_data(&format!("trip/day {i}.txt"), format!("day {i}").as_bytes());
    }
    swarm.write_data("kept.txt", b"still here");
    let mut peer = swarm.peer("1");
    peer.command("share trip", "shared folder trip (40 files");
    peer.command("share kept.txt", "shared kept.txt");
    peer.command("exit", "bye");
    peer.wait_exit(common::TIMEOUT);
    std::fs::remove_dir_all(swarm.path().join("data/trip")).unwrap();

    let mut peer = swarm.peer("1");
    // Restoring runs in the background: its last line may come after registering.
    if !peer.seen.iter().any(|(_, l)| l.contains("sharing 1 file from the last run")) {
        peer.expect("sharing 1 file from the last run");
    }
    let said: Vec<&str> = peer.seen.iter().map(|(_, l)| l.as_str()).filter(|l| l.contains("last run")).collect();
    // One line for the folder, none for each of its files.
    assert_eq!(
        said,
        [
            "folder trip: 40 of its 40 files are gone or changed since the last run; no longer shared as a folder (share it again)",
            "sharing 1 file from the last run"
        ],
    );
    let status = peer.command("status", "shared file");
    assert!(status.last().unwrap().contains("1 shared file"), "{status:?}");
    let list = std::fs::read_to_string(swarm.path().join(".p2pq/peer-1/shares.json")).unwrap_or_default();
    assert!(list.contains("kept.txt") && !list.contains("day 1"), "the share list forgets the folder: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changes_while_it_is_hashed_is_left_out_and_said_so() {
    use p2pq::peer::events::Hashing;
    let mut net = Net::start().await.unwrap();
    let (holder, _) = net.add_peer("1", Link::default()).await.unwrap();
    net.write_data(&holder, "logs/steady.txt", b"steady").unwrap();
    // Sparse: big enough to be caught in the middle of hashing, yet it takes no disk.
    let growing = net.write_data(&holder, "logs/growing.log", b"").unwrap();
    std::fs::File::options().write(true).open(&growing).unwrap().set_len(1 << 30).unwrap();
    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let sharing = tokio::spawn({
        let holder = holder.clone();
        async move { holder.share_with("logs", Some(events), &Default::default()).await }
    });
    let first = tokio::time::timeout(common::TIMEOUT, seen.recv()).await.unwrap();
    assert!(matches!(first, Some(Hashing::Start { ref name, size }) if name == "logs" && size == (1 << 30) + 6), "{first:?}");
    while !matches!(tokio::time::timeout(common::TIMEOUT, seen.recv()).await.unwrap(), Some(Hashing::Hashed { .. })) {}
    // Written to while it is read, as a log file is.
    std::io::Write::write_all(&mut std::fs::File::options().append(true).open(&growing).unwrap(), b"one more line\n").unwrap();
    let shared = tokio::time::timeout(common::TIMEOUT, sharing).await.unwrap().unwrap().unwrap();
    let folder = shared.folder.unwrap();
    assert_eq!(folder.files, 1, "{:?}", folder.skipped);
    assert!(
        folder.skipped.iter().any(|(path, why)| path == "growing.log" && why.contains("changed while it was hashed")),
        "{:?}",
        folder.skipped
    );
    net.stop().await;
}

/// Every file and folder under `root`, relative, with the bytes of each file.
fn snapshot(root: &Path) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
    let rel = |path: &Path| path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let read = |path: &Path| path.is_file().then(|| std::fs::read(path).unwrap());
    common::paths_under(root, &[]).into_iter().map(|path| (rel(&path), read(&path))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_downloads_whole_from_every_holder_and_appears_only_when_complete() {
    let mut net = Net::start().await.unwrap();
    let mut homes = Vec::new();
    for id in ["1", "2"] {
        let (holder, _) = net.add_peer(id, Link::default()).await.unwrap();
        for (path, data) in album() {
            net.write_data(&holder, path, &data).unwrap();
        }
        let cover = net.write_data(&holder, "album/cover.jpg", &album()[0].1).unwrap();
        std::fs::create_dir_all(cover.with_file_name("nothing here")).unwrap();
        let shared = holder.share("album").await.unwrap();
        assert_eq!(shared.info.id, expected_listing().id());
        homes.push((holder, cover.parent().unwrap().to_path_buf()));
    }
    let (getter, _) = net.add_peer("3", Link::default()).await.unwrap();
    let got = get(&getter, "album").await.unwrap();
    assert_eq!(got.path.file_name().unwrap(), "album");
    assert_eq!(snapshot(&got.path), snapshot(&homes[0].1), "the tree arrived byte for byte");
    // 4 chunks: the cover's 2 (256 KiB chunks), one each for the other non-empty files; a tree
    // this small may well come from one holder alone.
    let chunks: u32 = got.from.iter().filter(|(peer, _)| peer == "1" || peer == "2").map(|(_, n)| n).sum();
    assert_eq!(chunks, 4, "chunks by holder: {:?}", got.from);
    let downloads = got.path.parent().unwrap();
    let debris: Vec<_> = std::fs::read_dir(downloads).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "album").collect();
    assert!(debris.is_empty(), "left in the download folder: {debris:?}");
    // The getter now holds the folder too: a fourth peer gets it from all three.
    let (fourth, _) = net.add_peer("4", Link::default()).await.unwrap();
    let again = get(&fourth, &expected_listing().id().to_hex()).await.unwrap();
    assert_eq!(snapshot(&again.path), snapshot(&got.path));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_ten_thousand_small_files_arrives_whole() {
    let mut net = Net::start().await.unwrap();
    let (holder, _) = net.add_peer("1", Link::default()).await.unwrap();
    let mut root = None;
    // 10,000 files of 1–6 KiB (34 MiB), in 100 folders.
    for i in 0..10_000 {
        let path =
            net.write_data(&holder, &format!("small/{:02}/{i}.txt", i % 100), &bytes(1000 + (i % 50) * 100, &i.to_string())).unwrap();
        root.get_or_insert(path.parent().unwrap().parent().unwrap().to_path_buf());
    }
    assert_eq!(holder.share("small").await.unwrap().folder.unwrap().files, 10_000);
    let (getter, _) = net.add_peer("2", Link::default()).await.unwrap();
    // A debug build on two busy cores moves about 300 files a second: a bound well past that.
    let started = std::time::Instant::now();
    let got = tokio::time::timeout(std::time::Duration::from_secs(300), getter.get("small")).await.expect("within 300 s").unwrap();
    println!("10,000 files in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(snapshot(&got.path), snapshot(&root.unwrap()));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_folder_get_keeps_what_it_verified_and_the_next_one_finishes() {
    use p2pq::peer::events::Progress;
    let mut net = Net::start().await.unwrap();
    // 16 Mbit/s: the 8 MiB tree takes seconds, long enough to stop it in the middle.
    let (holder, _) = net.add_peer("1", Link::default().rate_mbit(16.0)).await.unwrap();
    let mut root = None;
    for i in 0..8 {
        let path = net.write_data(&holder, &format!("big/part {i}.bin"), &bytes(1 << 20, &format!("part {i}"))).unwrap();
        root.get_or_insert(path.parent().unwrap().to_path_buf());
    }
    holder.share("big").await.unwrap();
    let (getter, _) = net.add_peer("2", Link::default()).await.unwrap();
    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let first = tokio::spawn({
        let (getter, cancel) = (getter.clone(), cancel.clone());
        async move { getter.get_with("big", Some(events), &cancel).await }
    });
    // Stop once a few MiB are verified.
    let mut verified = 0;
    while verified < 3 << 20 {
        match tokio::time::timeout(common::TIMEOUT, seen.recv()).await.unwrap() {
            Some(Progress::Chunk { bytes }) => verified += bytes,
            Some(_) => {}
            None => panic!("the get ended before it was stopped"),
        }
    }
    cancel.cancel();
    assert!(tokio::time::timeout(common::TIMEOUT, first).await.unwrap().unwrap().is_err());
    // Not under its name until complete; what was verified waits in a hidden folder.
    let downloads = getter.state_dir().parent().unwrap().join("downloads");
    assert!(!downloads.join("big").exists());
    let hidden: Vec<_> = std::fs::read_dir(&downloads).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(hidden.len() == 1 && hidden[0].starts_with(".p2pq-folder-"), "{hidden:?}");
    let again = get(&getter, "big").await.unwrap();
    assert_eq!(snapshot(&again.path), snapshot(&root.unwrap()));
    assert!(again.moved < 8 << 20, "the second get fetched everything again: {} bytes", again.moved);
    net.stop().await;
}

/// Files under `dir` (at any depth) that are complete copies of one of `wanted`.
fn complete_copies(dir: &Path, wanted: &[Vec<u8>]) -> usize {
    let all = common::paths_under(dir, &[]);
    all.iter().filter(|p| std::fs::read(p).is_ok_and(|bytes| wanted.contains(&bytes))).count()
}

#[test]
fn a_folder_get_killed_in_the_middle_resumes_at_the_next_start() {
    let swarm = Swarm::start("15");
    let parts: Vec<Vec<u8>> = (0..6).map(|i| bytes(512 << 10, &format!("trip {i}"))).collect();
    for (i, data) in parts.iter().enumerate() {
        swarm.write_data(&format!("trip/day {i}.raw"), data);
    }
    // 1 MiB/s: the 3 MiB folder takes about three seconds.
    let mut holder = swarm.peer_with("1", &["--upload-limit", "1M"]);
    holder.command("share trip", "shared folder trip");
    let mut getter = swarm.peer("2");
    getter.send("get trip");
    let downloads = swarm.downloaded("2", "trip").parent().unwrap().to_path_buf();
    // Killed once a file or two are whole in the hidden folder.
    common::wait_until(common::TIMEOUT, || complete_copies(&downloads, &parts) >= 1);
    getter.signal("KILL");
    getter.wait_exit(common::TIMEOUT);
    assert!(!downloads.join("trip").exists(), "the folder appeared before it was complete");
    let mut again = swarm.peer("2");
    let done = again.command("get trip", "downloaded folder trip");
    assert!(done.last().unwrap().contains("(6 files, 3.0 MiB)"), "{done:?}");
    for (i, data) in parts.iter().enumerate() {
        assert!(std::fs::read(downloads.join(format!("trip/day {i}.raw"))).unwrap() == *data, "day {i} differs");
    }
    let left: Vec<_> = std::fs::read_dir(&downloads).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "trip").collect();
    assert!(left.is_empty(), "left in the download folder: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_of_a_folder_downloads_alone_under_its_own_name() {
    let mut net = Net::start().await.unwrap();
    let (holder, _) = net.add_peer("1", Link::default()).await.unwrap();
    let mut album_dir = None;
    for (path, data) in album() {
        album_dir = Some(net.write_data(&holder, path, &data).unwrap().parent().unwrap().to_path_buf());
    }
    holder.share("album").await.unwrap();
    let (getter, _) = net.add_peer("2", Link::default()).await.unwrap();
    let got = get(&getter, "album/2024").await.unwrap();
    assert_eq!(got.path.file_name().unwrap(), "2024");
    let source = album_dir.unwrap().parent().unwrap().join("album/2024");
    assert_eq!(snapshot(&got.path), snapshot(&source));
    assert_eq!(got.info.folder.map(|f| f.files), Some(2));
    for (query, words) in [("album/cover.jpg", "is a file in album"), ("album/nope", "has no folder nope"), ("album/../x", "not a file")] {
        let Err(err) = get(&getter, query).await else { panic!("{query} was fetched") };
        assert!(format!("{err:#}").contains(words), "{query}: {err:#}");
    }
    let debris: Vec<_> =
        std::fs::read_dir(got.path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "2024").collect();
    assert!(debris.is_empty(), "left in the download folder: {debris:?}");
    net.stop().await;
}

fn holder_dir(net: &Net, holder: &p2pq::peer::Peer) -> std::path::PathBuf {
    net.write_data(holder, "probe", b"").unwrap().parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_paths_a_pattern_keeps_download_and_a_pattern_that_keeps_none_leaves_nothing() {
    use p2pq::content::folder::only::Only;
    let mut net = Net::start().await.unwrap();
    let (holder, _) = net.add_peer("1", Link::default()).await.unwrap();
    for (path, data) in album() {
        net.write_data(&holder, path, &data).unwrap();
    }
    net.write_data(&holder, "single.txt", b"one file").unwrap();
    std::fs::create_dir_all(holder_dir(&net, &holder).join("album/nothing here")).unwrap();
    holder.share("album").await.unwrap();
    holder.share("single.txt").await.unwrap();
    let (getter, _) = net.add_peer("2", Link::default()).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let jpegs = Only::new(&["*.jpg".to_string()]).unwrap();
    let got = getter.get_only("album", Some(&jpegs), None, &cancel).await.unwrap();
    let mut want = std::collections::BTreeMap::new();
    for (path, data) in album().into_iter().filter(|(p, _)| p.ends_with(".jpg")) {
        want.insert(path.trim_start_matches("album/").to_string(), Some(data));
    }
    want.insert("2024".into(), None);
    assert_eq!(snapshot(&got.path), want, "the JPEGs, at their paths, and nothing else");
    assert_eq!(got.info.folder.map(|f| f.files), Some(2));
    // A second pattern adds to the folder; the whole then fills in the rest.
    let texts = Only::new(&["2024/**/*.txt".to_string()]).unwrap();
    let got = getter.get_only("album", Some(&texts), None, &cancel).await.unwrap();
    assert!(got.path.join("2024/deeper/still/notes.txt").is_file() && got.path.join("cover.jpg").is_file());
    assert_eq!((got.moved, got.info.folder.map(|f| f.files)), (6, Some(1)), "only notes.txt moved");
    let got = getter.get_only("album", None, None, &cancel).await.unwrap();
    let source = holder_dir(&net, &holder).join("album");
    assert_eq!(snapshot(&got.path), snapshot(&source), "the whole folder, as shared");
    // A file there that differs is never overwritten.
    std::fs::remove_file(got.path.join("empty.txt")).unwrap();
    std::fs::write(got.path.join("cover.jpg"), b"edited here").unwrap();
    let Err(err) = getter.get_only("album", None, None, &cancel).await else { panic!("fetched over an edited file") };
    assert!(format!("{err:#}").contains("cover.jpg is there already and differs from the folder's; not overwritten"), "{err:#}");
    assert_eq!(std::fs::read(got.path.join("cover.jpg")).unwrap(), b"edited here");
    for (query, pattern, words) in
        [("album", "*.png", "nothing in album matches --only *.png"), ("single.txt", "*", "--only goes with folders")]
    {
        let only = Only::new(&[pattern.to_string()]).unwrap();
        let Err(err) = getter.get_only(query, Some(&only), None, &cancel).await else { panic!("{query} --only {pattern} was fetched") };
        assert!(format!("{err:#}").contains(words), "{query} --only {pattern}: {err:#}");
    }
    let debris: Vec<_> =
        std::fs::read_dir(got.path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "album").collect();
    assert!(debris.is_empty(), "left in the download folder: {debris:?}");
    net.stop().await;
}
