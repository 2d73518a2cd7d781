//! Wake-on-LAN on the relay's LAN: central asks (a job container with `wol`
//! started) and the relay sends each computer's magic packet as a UDP
//! broadcast on its own subnet, where routers would have dropped one from
//! central.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use sitecast_common::power::magic_packet;
use sitecast_common::protocol::WakeTarget;

use crate::error::RelayError;

/// Each packet goes out this many times: UDP may lose one, and a NIC in a
/// low-power state may miss the first.
pub const REPEAT: usize = 3;
/// Pause between the repeats.
const GAP: Duration = Duration::from_millis(100);

/// Sends every target's magic packet [`REPEAT`] times to its broadcast address
/// on `port`; returns the datagrams sent. A target that cannot be sent to is
/// logged and the others still go out.
pub async fn wake(targets: &[WakeTarget], port: u16) -> Result<usize, RelayError> {
    let socket = tokio::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .await
        .map_err(RelayError::io("Wake-on-LAN socket"))?;
    socket
        .set_broadcast(true)
        .map_err(RelayError::io("Wake-on-LAN socket"))?;
    let mut sent = 0;
    for round in 0..REPEAT {
        if round > 0 {
            tokio::time::sleep(GAP).await;
        }
        for target in targets {
            let to = SocketAddr::from((target.broadcast, port));
            match socket.send_to(&magic_packet(target.mac), to).await {
                Ok(_) => {
                    sent += 1;
                    if round == 0 {
                        tracing::info!(computer = %target.computer_id, mac = %target.mac, %to, "Wake-on-LAN magic packet sent");
                    }
                }
                Err(e) => {
                    tracing::warn!(computer = %target.computer_id, mac = %target.mac, %to, error = %e, "cannot send the Wake-on-LAN magic packet")
                }
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_target_gets_its_magic_packet_three_times() {
        let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mac = "0a:1b:2c:3d:4e:5f".parse().unwrap();
        let targets = vec![WakeTarget {
            computer_id: "pc-1".parse().unwrap(),
            mac,
            broadcast: Ipv4Addr::LOCALHOST,
        }];
        assert_eq!(wake(&targets, port).await.unwrap(), REPEAT);
        for _ in 0..REPEAT {
            let mut buf = [0u8; 200];
            let (n, _) = listener.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &magic_packet(mac)[..]);
        }
    }
}
