//! The network layer under both programs: identities ([`identity`]), TLS pinning with the QUIC
//! configs ([`tls`]), caps on what one client may hold ([`limits`]), emulated links for tests and
//! benches ([`linksim`]), and the task spawner that gives every task a span ([`task`]).

pub mod identity;
pub mod limits;
pub mod linksim;
pub mod task;
pub mod tls;
