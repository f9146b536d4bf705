//! The network layer under both programs: a peer's further addresses ([`addrs`]), connecting at several addresses at once ([`dial`]), identities ([`identity`]), TLS pinning with the QUIC
//! configs ([`tls`]), caps on what one client may hold ([`limits`]), emulated links for tests and
//! benches ([`linksim`]), port mapping on the home router ([`portmap`]), and the task spawner that gives every task a span ([`task`]).

pub mod addrs;
pub mod dial;
pub mod identity;
pub mod limits;
pub mod linksim;
pub mod portmap;
pub mod receiver;
pub mod socket;
pub mod task;
pub mod tls;
