//! UDP sockets for QUIC endpoints, with kernel buffers big enough for what arrives at once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Kernel send and receive buffer asked for each UDP socket.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket with large kernel buffers. Loopback and LAN transfers run faster than the
/// default (~200 KiB) buffers drain, and every overflow is a lost packet QUIC must resend;
/// 4 MiB holds a full flow-control window. The kernel caps the request at `net.core.rmem_max`.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    Ok(udp_socket_with(addr, SOCKET_BUFFER)?.0)
}

/// A UDP socket asking for a receive buffer of `buffer` bytes, past `net.core.rmem_max` where
/// the process may (as root); returns it with the receive buffer the kernel granted. All of
/// IPv6 (`[::]`) is dual-stack, and where this system has no IPv6 it is all of IPv4 instead.
pub fn udp_socket_with(addr: SocketAddr, buffer: usize) -> std::io::Result<(std::net::UdpSocket, usize)> {
    match bound_with(addr, buffer) {
        Err(err) if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            tracing::debug!("no IPv6 socket here ({err}); listening on IPv4 only");
            bound_with((Ipv4Addr::UNSPECIFIED, addr.port()).into(), buffer)
        }
        made => made,
    }
}

fn bound_with(addr: SocketAddr, buffer: usize) -> std::io::Result<(std::net::UdpSocket, usize)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    // Linux reports twice what was set (its bookkeeping overhead), so compare with that.
    #[cfg(target_os = "linux")]
    if socket.recv_buffer_size().is_ok_and(|got| got < buffer * 2) {
        force_recv_buffer(&socket, buffer);
    }
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size().map_or(0, |got| if cfg!(target_os = "linux") { got / 2 } else { got });
    Ok((socket.into(), granted))
}

/// `SO_RCVBUFFORCE`: a receive buffer past `net.core.rmem_max`, allowed with CAP_NET_ADMIN;
/// without it the call fails and the capped buffer stays.
#[cfg(target_os = "linux")]
fn force_recv_buffer(socket: &socket2::Socket, buffer: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(buffer).unwrap_or(libc::c_int::MAX);
    // SAFETY: a plain setsockopt on a socket we own, with a pointer to a live c_int and its size.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}
