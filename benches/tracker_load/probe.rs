//! What the bench reads off the tracker process: CPU time and resident memory from `/proc`,
//! and its counters from the dashboard's `/metrics` over plain HTTP/1.0 on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("read /proc/PID/stat")?;
    // Fields after the command name (which may hold spaces) start after its closing ')'.
    let rest = stat.rsplit_once(')').context("odd /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(fields.get(i).context("short /proc/PID/stat")?.parse::<f64>()?) };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

/// The kernel's clock ticks per second, the unit of `/proc/PID/stat`'s times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Resident memory of the process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/PID/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).context("odd VmRSS")?.parse()?;
    Ok(kib * 1024)
}

/// The body of `GET path` from the dashboard at `addr`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (_, body) = reply.split_once("\r\n\r\n").context("no HTTP body")?;
    Ok(body.to_string())
}

/// The value of the unlabelled metric `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// UDP datagrams the kernel dropped at a full receive buffer so far: at sockets bound to
/// `port`, and at every other socket (`/proc/net/udp` and `udp6`, the last column).
pub fn udp_drops(port: u16) -> Result<(u64, u64)> {
    let (mut at, mut elsewhere) = (0, 0);
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let drops: u64 = fields.last().and_then(|d| d.parse().ok()).unwrap_or(0);
            if local_port == Some(port) { at += drops } else { elsewhere += drops }
        }
    }
    Ok((at, elsewhere))
}

/// Follows the dashboard's event stream at `addr` (as an open page does) until `stop` is set,
/// and returns the bytes and the snapshots (`data:` lines) it was sent.
pub fn watch(addr: SocketAddr, stop: &std::sync::atomic::AtomicBool) -> Result<(u64, u64)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(stream, "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")?;
    let (mut bytes, mut snapshots, mut buf) = (0u64, 0u64, vec![0u8; 1 << 16]);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                snapshots += buf[..n].windows(5).filter(|w| w == b"data:").count() as u64;
            }
            Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok((bytes, snapshots))
}
