//! A file's id is exactly what `b3sum` prints, for sizes around chunk boundaries.

mod common;

use common::{Swarm, b3sum, bytes};

#[test]
fn shared_ids_equal_b3sum_around_chunk_boundaries() {
    let swarm = Swarm::start("15");
    let chunk = p2pq::content::manifest::DEFAULT_CHUNK_SIZE as usize;
    let sizes = [0, 1, 1023, 1024, 1025, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk - 1, 4 * chunk + 1];
    let mut peer = swarm.peer("1");
    for size in sizes {
        let name = format!("f{size}.bin");
        let data = bytes(size, &name);
        swarm.write_data(&name, &data);
        let out = peer.command(&format!("share {name}"), "ticket p2pq1");
        let shared = out.iter().find(|l| l.starts_with("shared ")).expect("a shared line");
        assert!(shared.ends_with(&format!(" id {}", &b3sum(&data)[..12])), "size {size}: {shared}");
        // The full id, as the ticket carries it.
        let ticket = out.last().unwrap().strip_prefix("ticket ").unwrap();
        let id = p2pq::discovery::ticket::Ticket::parse(ticket).unwrap().file.id.to_hex();
        assert_eq!(id, b3sum(&data), "size {size}");
        if let Some(external) = external_b3sum(&swarm.path().join("data").join(&name)) {
            assert_eq!(id, external, "size {size} vs the b3sum tool");
        }
    }
}

/// The real `b3sum` tool's answer, when it is installed.
fn external_b3sum(path: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("b3sum").arg("--no-names").arg(path).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
