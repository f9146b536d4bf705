//! A folder's small files come in batches, many to a request: a holder whose copies went bad
//! after it shared them (edited in place, same size) costs nothing but a second fetch of each
//! from another holder, and the tree still arrives byte for byte.

mod common;

use common::bytes;
use common::inproc::{Net, get};
use p2pq::net::linksim::Link;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_a_holder_sends_wrong_in_a_batch_are_fetched_again_from_another() {
    let mut net = Net::start().await.unwrap();
    // 300 files of 1-30 KiB: several batches, so both holders are asked for some.
    let tree: Vec<(String, Vec<u8>)> =
        (0..300).map(|i| (format!("tree/{:02}/{i}.bin", i % 10), bytes(1024 * (1 + i % 30), &format!("file {i}")))).collect();
    let mut written = Vec::new();
    for id in ["good", "bad"] {
        let (holder, _) = net.add_peer(id, Link::default()).await.unwrap();
        let paths: Vec<_> = tree.iter().map(|(path, data)| net.write_data(&holder, path, data).unwrap()).collect();
        holder.share("tree").await.unwrap();
        written.push(paths);
    }
    // The bad holder's files change under it after sharing: same sizes, other bytes.
    for (path, (_, data)) in written[1].iter().zip(&tree) {
        std::fs::write(path, data.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>()).unwrap();
    }
    let (getter, _) = net.add_peer("getter", Link::default()).await.unwrap();
    let got = get(&getter, "tree").await.unwrap();
    for (path, data) in &tree {
        let on_disk = std::fs::read(got.path.join(path.trim_start_matches("tree/"))).unwrap();
        assert!(on_disk == *data, "{path} arrived with other bytes");
    }
    assert_eq!(got.from, vec![("good".to_string(), 300)], "every file from the holder whose copies are right");
    net.stop().await;
}
