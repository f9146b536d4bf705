//! Trust: self-signed certificates pinned by fingerprint, and the QUIC configs.
//!
//! There is no certificate authority. The tracker and every peer each own a self-signed
//! certificate ([`super::identity`]). An
//! identity *is* the BLAKE3 fingerprint of a certificate: peers pin the tracker's fingerprint
//! (from its certificate file), the tracker learns each peer's fingerprint from mutual TLS, and a
//! downloader pins each holder's fingerprint as the tracker reported it. Handshake signatures are
//! still verified, so presenting a certificate proves holding its key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::protocol::Fingerprint;

/// The server name we connect with; pinning makes the name irrelevant, but TLS wants one.
pub const SERVER_NAME: &str = "p2pq";
/// Idle time after which a silent QUIC connection is dropped: a killed holder or tracker is
/// noticed within this time even when nothing else tells us.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC keep-alive, well inside the idle timeout so NAT bindings and connections stay open.
const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// Concurrent unidirectional streams a side may open: chunk requests and chunk streams in flight.
pub const MAX_UNI_STREAMS: u32 = 256;
/// Concurrent bidirectional streams: control requests are short, a few suffice.
const MAX_BIDI_STREAMS: u32 = 32;
/// Per-stream receive window: a whole chunk of a file up to 32 GiB (1 MiB) plus headroom, so a
/// chunk never waits on a window update.
const STREAM_WINDOW: u32 = 2 << 20;
/// Per-connection receive window; bounds the bytes one holder can have in flight towards us.
/// At least the bandwidth-delay product of the fastest link we aim to fill, 1 Gbit/s at 100 ms
/// (12.5 MB), with room for the congestion window to overshoot it; as deep as the most a
/// download keeps in flight at one holder (`window::MAX_BYTES`).
const CONNECTION_WINDOW: u32 = 32 << 20;
/// What a server lets a client send it unread, per stream and per connection. Clients of both
/// servers send only small requests (the largest, a `Register` listing every shared file, flows
/// through in steps), so a small window bounds what hundreds of hostile connections can make us
/// buffer without slowing anyone honest.
const SERVER_STREAM_WINDOW: u32 = 64 << 10;
/// See [`SERVER_STREAM_WINDOW`].
const SERVER_CONNECTION_WINDOW: u32 = 256 << 10;
/// Bytes a server buffers for one connection before the other side acknowledges them: what a
/// downloader granting huge windows and reading slowly can make a holder hold, and what one
/// holder can have on the wire to one downloader. 16 MiB covers the bandwidth-delay product of
/// 1 Gbit/s at 100 ms (12.5 MB); 4 MiB capped such a link at 40 MB/s.
const SERVER_SEND_WINDOW: u64 = 16 << 20;
/// Idle time after which a tracker connection is dropped: longer than twice the slowest
/// heartbeat pace ([`crate::protocol::MAX_HEARTBEAT_MS`]), since heartbeats are all that keeps
/// it open. Neither side waits this long to notice the other gone: a peer gives the tracker
/// up after two unacknowledged heartbeats, and the tracker expires a silent peer and closes
/// its connection at its own timeout.
const TRACKER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Heartbeat datagrams the tracker buffers for one connection before dropping newer ones: a
/// heartbeat is a dozen bytes, and a peer sends one every few seconds.
const TRACKER_DATAGRAM_BUFFER: usize = 4 << 10;
/// Request streams a peer may have open towards the tracker at once (heartbeat, share, get…).
const TRACKER_BIDI_STREAMS: u32 = 16;
/// Connection attempts waiting for the accept loop, and the bytes each may buffer meanwhile:
/// the accept loop takes them at once, so a short queue suffices and a flood of handshakes
/// cannot queue megabytes (quinn's defaults are 65,536 attempts and 10 MiB each).
const MAX_INCOMING: usize = 1024;
/// See [`MAX_INCOMING`].
const INCOMING_BUFFER: u64 = 64 << 10;
/// See [`MAX_INCOMING`].
const INCOMING_BUFFER_TOTAL: u64 = 8 << 20;

pub use super::identity::{Identity, fingerprint, paths, pinned_fingerprint};
pub use super::socket::{SOCKET_BUFFER, udp_socket, udp_socket_with};

pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// QUIC transport settings shared by every endpoint.
pub fn transport() -> Arc<quinn::TransportConfig> {
    client_transport(None, IDLE_TIMEOUT, Some(KEEP_ALIVE))
}

/// [`transport`], with `rtt` as the round trip assumed before the first sample (quinn's 333 ms
/// if `None`), `idle` as the idle timeout and `keep_alive` as the keep-alive interval.
fn client_transport(rtt: Option<Duration>, idle: Duration, keep_alive: Option<Duration>) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .max_concurrent_bidi_streams(MAX_BIDI_STREAMS.into())
        .stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into())
        .send_window(CONNECTION_WINDOW as u64)
        .keep_alive_interval(keep_alive);
    if let Some(rtt) = rtt {
        t.initial_rtt(rtt);
    }
    if let Ok(idle) = idle.try_into() {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// A QUIC endpoint bound to `addr` whose stateless-reset key derives from our private key.
/// After a restart we can still reset connections the old process had, so the other side
/// learns at its next packet that we are back and reconnects at once, instead of waiting out
/// an idle timeout.
pub fn endpoint(id: &Identity, server: quinn::ServerConfig, addr: SocketAddr) -> Result<quinn::Endpoint> {
    Ok(endpoint_with(id, server, addr, SOCKET_BUFFER)?.0)
}

/// [`endpoint`] with a receive buffer of `buffer` bytes asked for; returns the one granted.
pub fn endpoint_with(id: &Identity, server: quinn::ServerConfig, addr: SocketAddr, buffer: usize) -> Result<(quinn::Endpoint, usize)> {
    let (socket, granted) = udp_socket_with(addr, buffer).with_context(|| format!("cannot listen on {addr}"))?;
    let runtime = quinn::default_runtime().ok_or_else(|| anyhow!("no async runtime"))?;
    Ok((endpoint_on(id, server, runtime.wrap_udp_socket(socket)?)?, granted))
}

/// Like [`endpoint`], on a socket the caller made (a simulated link in tests and benches).
pub fn endpoint_on(id: &Identity, server: quinn::ServerConfig, socket: Arc<dyn quinn::AsyncUdpSocket>) -> Result<quinn::Endpoint> {
    let secret = blake3::derive_key("p2pq 2026-11 stateless reset key", id.key.secret_der());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let config = quinn::EndpointConfig::new(Arc::new(key));
    let runtime = quinn::default_runtime().ok_or_else(|| anyhow!("no async runtime"))?;
    Ok(quinn::Endpoint::new_with_abstract_socket(config, Some(server), socket, runtime)?)
}

/// Transport of a server's incoming connections: small receive windows (clients only send
/// requests), a send window that bounds what one connection can make us buffer, streams sent
/// in order, and for the
/// tracker no unidirectional streams at all (its protocol has none).
fn server_transport(alpn: &[u8]) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .max_concurrent_bidi_streams(MAX_BIDI_STREAMS.into())
        .stream_receive_window(SERVER_STREAM_WINDOW.into())
        .receive_window(SERVER_CONNECTION_WINDOW.into())
        .send_window(SERVER_SEND_WINDOW)
        // Streams go out in the order they were written instead of round-robin: a holder's
        // chunks then arrive one after another, each verified and its slot refilled while the
        // next is on the wire, instead of all in flight finishing together at the end of a
        // burst. Measured (chunk_throughput, p2pq_get with 8 in flight): 430 -> 472-494 MiB/s.
        .send_fairness(false)
        .keep_alive_interval(Some(KEEP_ALIVE));
    let mut idle = IDLE_TIMEOUT;
    if alpn == crate::protocol::TRACKER_ALPN {
        t.max_concurrent_uni_streams(0u32.into())
            .max_concurrent_bidi_streams(TRACKER_BIDI_STREAMS.into())
            .datagram_receive_buffer_size(Some(TRACKER_DATAGRAM_BUFFER))
            .keep_alive_interval(None);
        idle = TRACKER_IDLE_TIMEOUT;
    }
    if let Ok(idle) = idle.try_into() {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// Server config that requires a client certificate (any self-signed one) and speaks `alpn`.
pub fn server_config(id: &Identity, alpn: &[u8]) -> Result<quinn::ServerConfig> {
    let verifier = Arc::new(AnyClientCert { provider: provider() });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.clone_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config
        .transport_config(server_transport(alpn))
        .max_incoming(MAX_INCOMING)
        .incoming_buffer_size(INCOMING_BUFFER)
        .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL);
    Ok(config)
}

/// Client config that presents our certificate and accepts only a server whose certificate has
/// fingerprint `pinned`.
pub fn client_config(id: &Identity, alpn: &[u8], pinned: Fingerprint) -> Result<quinn::ClientConfig> {
    client_config_with(id, alpn, Some(pinned))
}

/// Client config that presents our certificate and accepts a server with any certificate
/// whose key it proves: for a holder nobody vouched for (found on the DHT), whose fingerprint
/// is learned from the handshake ([`remote_fingerprint`]) and then judged like any other's.
pub fn client_config_unpinned(id: &Identity, alpn: &[u8]) -> Result<quinn::ClientConfig> {
    client_config_with(id, alpn, None)
}

fn client_config_with(id: &Identity, alpn: &[u8], pinned: Option<Fingerprint>) -> Result<quinn::ClientConfig> {
    let verifier = Arc::new(PinnedServer { pinned, provider: provider() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![id.cert.clone()], id.clone_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(if alpn == crate::protocol::TRACKER_ALPN { tracker_transport() } else { transport() });
    Ok(config)
}

/// Transport of a peer's connection to the tracker: no QUIC keep-alive (the heartbeats keep
/// it open, and a keep-alive between them would double what each peer costs the tracker), and
/// an idle timeout longer than the slowest pace a busy tracker may ask for.
fn tracker_transport() -> Arc<quinn::TransportConfig> {
    client_transport(None, TRACKER_IDLE_TIMEOUT, None)
}

/// Client config of a hole-punching attempt ([`crate::protocol::PUNCH_ALPN`]): its packets open
/// our NAT towards a downloader and nothing more. It presents no certificate and accepts no
/// server (the pin is all zeros, which is nobody's fingerprint), its Initial packets are
/// resent every few tens of milliseconds, and quinn gives it up after `lifetime` of silence.
pub fn punch_config(lifetime: Duration) -> Result<quinn::ClientConfig> {
    let verifier = Arc::new(PinnedServer { pinned: Some(crate::content::id::Digest([0; 32])), provider: provider() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![crate::protocol::PUNCH_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(client_transport(Some(PUNCH_RESEND_RTT), lifetime, Some(KEEP_ALIVE)));
    Ok(config)
}

/// `config` for a connection to a holder reached through an introduction: its first packets
/// are resent as if the round trip were `rtt` (quinn resends an unanswered Initial after three
/// times the round trip it assumes, 333 ms unless told), so a first packet that met a NAT
/// not yet open is resent within tens of milliseconds, not a second.
pub fn with_initial_rtt(mut config: quinn::ClientConfig, rtt: Duration) -> quinn::ClientConfig {
    config.transport_config(client_transport(Some(rtt.max(PUNCH_RESEND_RTT)), IDLE_TIMEOUT, Some(KEEP_ALIVE)));
    config
}

/// Least round trip assumed for a punched connection's first packets: resends every 30 ms.
const PUNCH_RESEND_RTT: Duration = Duration::from_millis(10);

/// The fingerprint of the certificate the other side of `conn` presented.
pub fn remote_fingerprint(conn: &quinn::Connection) -> Result<Fingerprint> {
    let identity = conn.peer_identity().ok_or_else(|| anyhow!("the other side presented no certificate"))?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().map_err(|_| anyhow!("unexpected certificate type"))?;
    let first = certs.first().ok_or_else(|| anyhow!("the other side presented no certificate"))?;
    Ok(fingerprint(first))
}

/// Accepts a server only if its certificate has the pinned fingerprint, or any server if none
/// is pinned (the handshake still proves it holds the certificate's key).
#[derive(Debug)]
struct PinnedServer {
    pinned: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        match self.pinned {
            Some(pinned) if got != pinned => {
                Err(rustls::Error::General(format!("certificate fingerprint {} is not the pinned {}", got.short(), pinned.short())))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Requires a client certificate and proof of its key, and accepts any: the fingerprint is
/// the identity, checked by the application.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path(), "tracker").unwrap();
        let again = Identity::load_or_create(dir.path(), "tracker").unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        let (cert, _) = paths(dir.path(), "tracker");
        assert_eq!(pinned_fingerprint(&cert).unwrap(), first.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let (_, key) = paths(dir.path(), "tracker");
            assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
