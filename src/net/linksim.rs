//! A link simulator under quinn: a UDP socket whose outgoing datagrams cross an emulated link.
//!
//! This kernel has no `sch_netem`, and tests must run on 127.0.0.1 without root, so slow, long
//! and lossy links are made here, in user space, below QUIC: [`socket`] binds a real UDP socket
//! and hands quinn an [`AsyncUdpSocket`] that sends each datagram through a [`Link`] (the
//! host's uplink): a rate cap with a drop-tail queue, a one-way delay, and random loss drawn
//! from a seeded generator, so the same seed drops the same datagrams (by count). Receiving is
//! quinn's own socket code, untouched. Give two endpoints a link each and their round trip is
//! the sum of both delays; a seeder's link is shared by every downloader, like a home uplink.
//!
//! Each datagram's departure is computed when quinn hands it over (the link is busy until
//! the previous one has been serialized at the rate), so no task ticks per byte; one task per
//! socket sleeps until each datagram's arrival time and sends it.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes of IPv4 and UDP headers each datagram costs on the link besides its payload.
const HEADER_BYTES: u64 = 28;
/// Default queue in front of a rate-capped link: 50 ms of the rate, as a home router's buffer,
/// and never below this many bytes (a few full-size datagrams).
const MIN_QUEUE_BYTES: u64 = 16 << 10;

/// What one host's outgoing link does to datagrams. `Link::default()` is a perfect link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Link {
    /// Rate cap in bits per second; `None` for no cap.
    pub rate: Option<u64>,
    /// One-way delay added to every datagram.
    pub delay: Duration,
    /// Probability that a datagram is lost (0.0 to 1.0).
    pub loss: f64,
    /// Bytes the queue before a capped link holds; `None` for 50 ms of the rate.
    pub queue: Option<u64>,
    /// Seed of the loss draws.
    pub seed: u64,
}

impl Link {
    /// A link capped at `mbit` megabits per second.
    pub fn rate_mbit(self, mbit: f64) -> Link {
        Link { rate: Some((mbit * 1e6) as u64), ..self }
    }

    /// The same link with `delay` one way.
    pub fn delay(self, delay: Duration) -> Link {
        Link { delay, ..self }
    }

    /// The same link losing `percent` % of datagrams.
    pub fn loss_percent(self, percent: f64) -> Link {
        Link { loss: percent / 100.0, ..self }
    }

    /// The same link with loss drawn from `seed`.
    pub fn seed(self, seed: u64) -> Link {
        Link { seed, ..self }
    }

    fn queue_bytes(&self, rate: u64) -> u64 {
        self.queue.unwrap_or(rate / 8 / 20).max(MIN_QUEUE_BYTES)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rate {
            Some(rate) => write!(f, "{} Mbit/s", rate as f64 / 1e6)?,
            None => write!(f, "uncapped")?,
        }
        write!(f, ", {} ms one way, {}% loss", self.delay.as_millis(), self.loss * 100.0)
    }
}

/// What a simulated link did, counted in datagrams (and the bytes it carried).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Datagrams that crossed the link.
    pub sent: AtomicU64,
    /// Datagrams lost at random.
    pub lost: AtomicU64,
    /// Datagrams dropped because the queue was full.
    pub overflowed: AtomicU64,
    /// UDP payload bytes of the datagrams that crossed the link: what a host uploaded.
    pub bytes: AtomicU64,
}

impl LinkStats {
    /// (sent, lost, overflowed) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        (get(&self.sent), get(&self.lost), get(&self.overflowed))
    }
}

/// A socket on a simulated link, its counters, and a handle that changes the link.
pub struct Simulated {
    /// The socket to give quinn.
    pub socket: Arc<dyn AsyncUdpSocket>,
    /// What the link did so far.
    pub stats: Arc<LinkStats>,
    /// Changes the link while it runs (slow it down, cut it).
    pub control: LinkControl,
}

/// Changes a running simulated link; datagrams already on their way keep their fate.
#[derive(Clone, Debug)]
pub struct LinkControl(Arc<Mutex<Shaper>>);

impl LinkControl {
    /// The link as it is now.
    pub fn get(&self) -> Link {
        lock(&self.0).link
    }

    /// From now on datagrams cross `link`.
    pub fn set(&self, link: Link) {
        lock(&self.0).link = link;
    }

    /// From now on every datagram is lost: the host is still up but nothing it sends arrives.
    pub fn cut(&self) {
        let link = self.get();
        self.set(Link { loss: 1.0, ..link });
    }
}

fn lock(shaper: &Mutex<Shaper>) -> std::sync::MutexGuard<'_, Shaper> {
    shaper.lock().unwrap_or_else(|p| p.into_inner())
}

/// Binds a UDP socket at `addr` whose outgoing datagrams cross `link`. Call it inside a tokio
/// runtime: the task that delivers datagrams runs there, until the socket is dropped.
pub fn socket(addr: SocketAddr, link: Link) -> io::Result<Simulated> {
    let std_socket = crate::net::tls::udp_socket(addr)?;
    let sender = tokio::net::UdpSocket::from_std({
        let clone = std_socket.try_clone()?;
        clone.set_nonblocking(true)?;
        clone
    })?;
    let runtime = quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime"))?;
    let io = runtime.wrap_udp_socket(std_socket)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(LinkStats::default());
    let span = tracing::debug_span!("simulated link", addr = ?io.local_addr().ok());
    super::task::spawn(span, deliver(sender, rx, stats.clone()));
    let shaper = Arc::new(Mutex::new(Shaper { link, free_at: Instant::now(), rng: link.seed ^ 0x9e37_79b9_7f4a_7c15 }));
    let socket = SimSocket { io, shaper: shaper.clone(), tx, stats: stats.clone() };
    Ok(Simulated { socket: Arc::new(socket), stats, control: LinkControl(shaper) })
}

/// One datagram on its way, due at the far end at `at`.
struct Packet {
    at: Instant,
    to: SocketAddr,
    data: Vec<u8>,
}

/// Sends each datagram when it is due; ends when the socket is dropped.
async fn deliver(socket: tokio::net::UdpSocket, mut rx: mpsc::UnboundedReceiver<Packet>, stats: Arc<LinkStats>) {
    while let Some(packet) = rx.recv().await {
        if packet.at > Instant::now() {
            tokio::time::sleep_until(packet.at).await;
        }
        // A full kernel buffer drops the datagram, as a real link would.
        if socket.send_to(&packet.data, packet.to).await.is_ok() {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(packet.data.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The link's state: when it is free again, and the loss generator.
#[derive(Debug)]
struct Shaper {
    link: Link,
    free_at: Instant,
    rng: u64,
}

/// What becomes of one datagram.
#[derive(Debug, PartialEq)]
enum Fate {
    Lost,
    Overflowed,
    Arrives(Instant),
}

impl Shaper {
    /// Decides the fate of a datagram of `len` bytes handed over at `now`.
    fn admit(&mut self, len: usize, now: Instant) -> Fate {
        if self.link.loss >= 1.0 || (self.link.loss > 0.0 && self.draw() < self.link.loss) {
            return Fate::Lost;
        }
        let Some(rate) = self.link.rate.filter(|&r| r > 0) else {
            return Fate::Arrives(now + self.link.delay);
        };
        let start = self.free_at.max(now);
        let queued = (start - now).as_secs_f64() * rate as f64 / 8.0;
        if queued > self.link.queue_bytes(rate) as f64 {
            return Fate::Overflowed;
        }
        let bits = (len as u64 + HEADER_BYTES) * 8;
        self.free_at = start + Duration::from_secs_f64(bits as f64 / rate as f64);
        Fate::Arrives(self.free_at + self.link.delay)
    }

    /// A uniform draw in [0, 1) (splitmix64).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
    }
}

/// quinn's socket for receiving, with every datagram sent through the [`Shaper`].
struct SimSocket {
    io: Arc<dyn AsyncUdpSocket>,
    shaper: Arc<Mutex<Shaper>>,
    tx: mpsc::UnboundedSender<Packet>,
    stats: Arc<LinkStats>,
}

impl fmt::Debug for SimSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSocket").field("io", &self.io).finish_non_exhaustive()
    }
}

/// Sending never blocks (the link queues or drops), so the socket is always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for SimSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let size = transmit.segment_size.unwrap_or(transmit.contents.len()).max(1);
        let mut shaper = lock(&self.shaper);
        let now = Instant::now();
        for datagram in transmit.contents.chunks(size) {
            match shaper.admit(datagram.len(), now) {
                Fate::Lost => self.stats.lost.fetch_add(1, Ordering::Relaxed),
                Fate::Overflowed => self.stats.overflowed.fetch_add(1, Ordering::Relaxed),
                Fate::Arrives(at) => {
                    let packet = Packet { at, to: transmit.destination, data: datagram.to_vec() };
                    self.tx.send(packet).map_err(|_| io::Error::other("link closed"))?;
                    0
                }
            };
        }
        Ok(())
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        self.io.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn max_receive_segments(&self) -> usize {
        self.io.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.io.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaper(link: Link) -> Shaper {
        Shaper { link, free_at: Instant::now(), rng: link.seed }
    }

    #[test]
    fn a_capped_link_spaces_datagrams_at_its_rate_and_adds_its_delay() {
        let link = Link::default().rate_mbit(8.0).delay(Duration::from_millis(20));
        let mut s = shaper(link);
        let now = Instant::now();
        // 1000 + 28 bytes at 8 Mbit/s take 1.028 ms each.
        let arrivals: Vec<Fate> = (0..3).map(|_| s.admit(1000, now)).collect();
        let at = |k: u32| Fate::Arrives(now + Duration::from_micros(1028) * k + Duration::from_millis(20));
        for (k, fate) in arrivals.iter().enumerate() {
            let Fate::Arrives(got) = fate else { panic!("{fate:?}") };
            let Fate::Arrives(want) = at(k as u32 + 1) else { unreachable!() };
            assert!(got.duration_since(want) < Duration::from_micros(2) && want.duration_since(*got) < Duration::from_micros(2));
        }
    }

    #[test]
    fn a_full_queue_drops_what_comes_next() {
        let mut s = shaper(Link { queue: Some(20_000), ..Link::default().rate_mbit(1.0) });
        let now = Instant::now();
        let fates: Vec<Fate> = (0..40).map(|_| s.admit(1000, now)).collect();
        let kept = fates.iter().filter(|f| matches!(f, Fate::Arrives(_))).count();
        assert!((19..=22).contains(&kept), "kept {kept}");
        assert_eq!(fates.last(), Some(&Fate::Overflowed));
    }

    #[tokio::test]
    async fn the_link_counts_the_datagrams_and_bytes_that_crossed_it() -> io::Result<()> {
        let receiver = tokio::net::UdpSocket::bind(("127.0.0.1", 0)).await?;
        let sim = socket(([127, 0, 0, 1], 0).into(), Link::default())?;
        let contents = [7u8; 3000];
        // Three datagrams (1200, 1200 and 600 bytes), as quinn hands over a segmented transmit.
        let transmit =
            Transmit { destination: receiver.local_addr()?, ecn: None, contents: &contents, segment_size: Some(1200), src_ip: None };
        sim.socket.try_send(&transmit)?;
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf)).await.map_err(io::Error::other)??;
        }
        assert_eq!(sim.stats.snapshot(), (3, 0, 0));
        assert_eq!(sim.stats.bytes.load(Ordering::Relaxed), 3000);
        Ok(())
    }

    #[test]
    fn loss_follows_the_seed_and_the_rate() {
        let link = Link::default().loss_percent(10.0).seed(7);
        let now = Instant::now();
        let run = |mut s: Shaper| (0..10_000).map(|_| s.admit(1200, now) == Fate::Lost).collect::<Vec<bool>>();
        let (a, b) = (run(shaper(link)), run(shaper(link)));
        assert_eq!(a, b, "same seed, same losses");
        let lost = a.iter().filter(|l| **l).count();
        assert!((900..1100).contains(&lost), "lost {lost} of 10000");
        assert_ne!(a, run(shaper(link.seed(8))));
    }
}
