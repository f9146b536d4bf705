//! Connecting to one server that may answer at several addresses: every attempt starts at
//! once, the first handshake to finish wins, and the others are dropped (which abandons
//! them). The certificate the client configuration pins decides who may answer.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use quinn::{ClientConfig, Connection, Endpoint};

/// One connection attempt to `addr`, given up after `within`.
pub async fn attempt(endpoint: &Endpoint, config: ClientConfig, addr: SocketAddr, within: Duration) -> Result<Connection> {
    let connecting = endpoint.connect_with(config, addr, super::tls::SERVER_NAME)?;
    Ok(tokio::time::timeout(within, connecting).await.context("connection timed out")??)
}

/// Attempts to every address of `addrs` at once, each given up after `within`: the first
/// connection made and its address, else the first address's error.
pub async fn first_of(
    endpoint: &Endpoint,
    config: ClientConfig,
    addrs: &[SocketAddr],
    within: Duration,
) -> Result<(SocketAddr, Connection)> {
    let Some(&first) = addrs.first() else { return Err(anyhow!("no address to connect to")) };
    if addrs.len() == 1 {
        return Ok((first, attempt(endpoint, config, first, within).await?));
    }
    let mut attempts = tokio::task::JoinSet::new();
    for &addr in addrs {
        let (endpoint, config) = (endpoint.clone(), config.clone());
        attempts.spawn(async move { (addr, attempt(&endpoint, config, addr, within).await) });
    }
    let mut first_err = None;
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok((addr, Ok(conn))) => return Ok((addr, conn)),
            Ok((addr, Err(err))) if addr == first => first_err = Some(err),
            Ok((addr, Err(err))) => tracing::debug!(%addr, "no connection at this address: {err:#}"),
            Err(err) => tracing::debug!("a connection attempt ended: {err}"),
        }
    }
    Err(first_err.unwrap_or_else(|| anyhow!("no connection attempt finished")))
}
