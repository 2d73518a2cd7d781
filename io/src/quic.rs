//! What central's QUIC endpoint and a relay's share: the UDP socket with room
//! for bursts, the largest datagram accepted and probed for, path MTU
//! discovery, and the endpoint configuration. One copy, so both ends of the
//! link always agree.

use std::net::SocketAddr;
use std::time::Duration;

/// The largest UDP payload either side accepts and probes for: above the
/// 1472-byte default so MTU discovery can use larger packets where the path
/// allows (quinn's default costs about 2.6 % of headers and tags on every byte).
/// Not 8952 (jumbo frames): at 8192 bytes and up, quinn declared packets lost on
/// loopback although every datagram arrived (the receive-offload batches grow
/// past 64 KiB), took it for an MTU black hole and fell back to 1200 bytes;
/// 6144 moved the same bytes with no loss.
pub const MAX_UDP_PAYLOAD: u16 = 6144;

/// Socket buffers of QUIC endpoints: a burst of full-size packets should not
/// overflow the kernel's default (about 208 KiB); losses slow the link down and
/// can read as an MTU black hole. The kernel caps it at `net.core.rmem_max`.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER`]-sized buffers (best
/// effort: a smaller cap is not an error).
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Path MTU discovery up to [`MAX_UDP_PAYLOAD`]: larger datagrams cost fewer
/// packets (and syscalls) per byte where the path allows them; it falls back
/// to what works.
pub fn mtu_discovery() -> quinn::MtuDiscoveryConfig {
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    // A loss burst in a replication burst reads as a black hole and drops to
    // 1200-byte packets; probe again after 10 s rather than quinn's minute,
    // since the probes had shown the path carries the larger size.
    mtu.black_hole_cooldown(Duration::from_secs(10));
    mtu
}

/// The endpoint configuration central and relays share: packets up to
/// [`MAX_UDP_PAYLOAD`] are accepted.
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    // Within the bounds quinn accepts (1200..=65527).
    let _ = config.max_udp_payload_size(MAX_UDP_PAYLOAD);
    config
}

/// The transport settings both ends of the link share: a keep-alive every 5 s
/// so middleboxes keep the flow and a dead peer shows; a connection silent for
/// 30 s is closed; 8 MiB of credit per stream so a fragment of several MiB
/// flows without waiting for the reader; MTU discovery ([`mtu_discovery`]).
pub fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            30_000,
        ))))
        .stream_receive_window((8u32 << 20).into())
        .mtu_discovery_config(Some(mtu_discovery()));
    transport
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_binds_with_room_for_bursts() {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(socket.local_addr().unwrap().port() > 0);
        let socket = socket2::Socket::from(socket);
        // The kernel may cap it lower, never below its default.
        assert!(socket.recv_buffer_size().unwrap() >= 200 << 10);
    }
}
