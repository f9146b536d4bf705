//! The network layer under both programs: TLS identities and pinning with the QUIC configs
//! ([`tls`]), caps on what one client may hold ([`limits`]), and emulated links for tests and
//! benches ([`linksim`]).

pub mod limits;
pub mod linksim;
pub mod tls;
