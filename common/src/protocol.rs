//! The replication protocol between central and relays, spoken over QUIC.
//!
//! A relay opens one connection (ALPN [`ALPN`]) and, on its first bidirectional
//! stream (the *control* stream), says [`RelayMessage::Hello`] with its id and token;
//! central answers [`CentralMessage::Welcome`] (or `Refused`) and from then on pushes
//! the site's activated packages whenever they change, while the relay reports what
//! it holds. Every other bidirectional stream carries one [`Request`] and its
//! [`Response`], followed, when the response says so, by exactly `len` raw bytes —
//! so fragments travel over parallel streams without any framing overhead.
//!
//! Messages are framed as a 4-byte big-endian length and a JSON body. Decoding is
//! pure and bounded: a length above [`MAX_MESSAGE`] is refused before any allocation.

use std::net::Ipv4Addr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{ComputerId, PackageId, RelayId, SiteName};
use crate::power::MacAddr;
use crate::wire::PublicKey;

/// ALPN protocol name: a relay and a central that disagree on it never talk.
pub const ALPN: &[u8] = b"sitecast/1";
/// Protocol version carried in the hello.
pub const VERSION: u32 = 1;
/// Largest control message; fragments are not messages and have their own bound.
pub const MAX_MESSAGE: u32 = 4 << 20;

/// A frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("message of {len} bytes exceeds the limit of {MAX_MESSAGE} bytes")]
    TooLong { len: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// What a relay says on its control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMessage {
    Hello {
        version: u32,
        relay_id: RelayId,
        token: String,
        software: String,
    },
    /// The relay's holdings and counters, sent whenever they change (coalesced).
    Report(RelayReport),
}

/// What a relay holds and how many bytes it moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayReport {
    /// Packages whose signed info the relay holds, with the fragments held.
    pub holdings: Vec<HeldPackage>,
    /// Bytes received from central since the relay started (infos, fragments, deltas).
    pub bytes_from_central: u64,
    /// UDP payload bytes received on the relay's QUIC connections since it
    /// started: what crossed the WAN, protocol overhead included.
    #[serde(default)]
    pub quic_bytes_from_central: u64,
    /// Bytes served to agents since the relay started.
    pub bytes_to_agents: u64,
    /// Whether the relay's schedule admits fragment bytes now.
    #[serde(default = "yes")]
    pub window_open: bool,
    /// The relay's cap on fragment bytes per second, if any.
    #[serde(default)]
    pub max_rate: Option<u64>,
    /// Bytes per second received from central, over the last few seconds.
    #[serde(default)]
    pub rate: u64,
    /// Disk, quota, kept delta bases, scrub and software version.
    #[serde(default)]
    pub health: crate::wire::RelayHealth,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPackage {
    pub package_id: PackageId,
    pub info_sha256: String,
    pub held: u32,
}

/// What central says on a relay's control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CentralMessage {
    Welcome {
        site: SiteName,
        /// Keys that sign infos: the relay checks what it caches.
        signing_keys: Vec<PublicKey>,
        /// Central's root public key (PEM), pinned by the relay at its first welcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root_key: Option<String>,
        /// The root-signed key set (a DSSE envelope), whose keys sign infos.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyset: Option<String>,
    },
    /// A new key set (rotated, revoked or renewed): sent before the activated
    /// set whose infos it signs.
    KeySet {
        keyset: String,
    },
    Refused {
        reason: String,
    },
    /// The complete set of packages activated for the relay's site (not a delta:
    /// a relay that missed a message loses nothing by reading the next one).
    Activated {
        packages: Vec<ActivatedPackage>,
    },
    /// Send Wake-on-LAN magic packets on the relay's LAN (a job container with
    /// `wol` started).
    Wake {
        targets: Vec<WakeTarget>,
    },
}

/// One magic packet to send: the MAC it names, to the broadcast address of the
/// relay's subnet that contains the computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeTarget {
    pub computer_id: ComputerId,
    pub mac: MacAddr,
    pub broadcast: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivatedPackage {
    pub id: PackageId,
    pub priority: u8,
    pub info_sha256: String,
    pub size: u64,
    pub fragments: u32,
    /// The package this one supersedes (from its signed info): a relay holding
    /// it keeps it as a delta base and may ask for a delta.
    #[serde(default)]
    pub supersedes: Option<PackageId>,
}

/// A request on its own stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Info {
        package_id: PackageId,
    },
    Fragment {
        package_id: PackageId,
        index: u32,
    },
    /// `package_id` as a delta against `base_id`, which the relay holds whole;
    /// `lacking` is the fragment bytes the relay still needs: central declines a
    /// delta that is not smaller.
    Delta {
        package_id: PackageId,
        base_id: PackageId,
        lacking: u64,
    },
}

impl Request {
    /// The package asked for.
    pub fn package_id(&self) -> &PackageId {
        match self {
            Request::Info { package_id }
            | Request::Fragment { package_id, .. }
            | Request::Delta { package_id, .. } => package_id,
        }
    }
}

/// The answer to a [`Request`]; `Data` is followed by `len` raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Data {
        len: u64,
    },
    NotFound {
        reason: String,
    },
    /// No delta: the relay fetches plain fragments.
    Declined {
        reason: String,
    },
}

/// Frames a message: 4-byte big-endian length, then JSON.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Messages are plain data; serialising them into memory cannot fail.
    let body = serde_json::to_vec(message).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a frame header: the body length, refused if over the limit.
pub fn body_len(header: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header);
    if len > MAX_MESSAGE {
        return Err(ProtocolError::TooLong { len });
    }
    Ok(len as usize)
}

/// Decodes a frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(m: T) {
        let framed = encode(&m);
        let len = body_len(framed[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, framed.len() - 4);
        assert_eq!(decode::<T>(&framed[4..]).unwrap(), m);
    }

    #[test]
    fn messages_round_trip() {
        round_trip(RelayMessage::Hello {
            version: VERSION,
            relay_id: "relay-paris-1".parse().unwrap(),
            token: "t".into(),
            software: "sitecast-relay 0.1.0".into(),
        });
        round_trip(RelayMessage::Report(RelayReport {
            holdings: vec![HeldPackage {
                package_id: "p-1".parse().unwrap(),
                info_sha256: "ab".into(),
                held: 3,
            }],
            bytes_from_central: 10,
            quic_bytes_from_central: 12,
            bytes_to_agents: 20,
            window_open: false,
            max_rate: Some(20_000_000),
            rate: 19_000_000,
            health: crate::wire::RelayHealth {
                version: "sitecast-relay 0.1.0".into(),
                disk_used: 1 << 30,
                kept: vec!["p-0".parse().unwrap()],
                ..Default::default()
            },
        }));
        round_trip(CentralMessage::Activated {
            packages: vec![ActivatedPackage {
                id: "p-1".parse().unwrap(),
                priority: 0,
                info_sha256: "ab".into(),
                size: 5,
                fragments: 1,
                supersedes: Some("p-0".parse().unwrap()),
            }],
        });
        round_trip(CentralMessage::Wake {
            targets: vec![WakeTarget {
                computer_id: "pc-1".parse().unwrap(),
                mac: "aa:bb:cc:dd:ee:ff".parse().unwrap(),
                broadcast: "10.1.255.255".parse().unwrap(),
            }],
        });
        round_trip(Request::Fragment {
            package_id: "p-1".parse().unwrap(),
            index: 7,
        });
        round_trip(Response::Data { len: 1 << 40 });
        round_trip(Request::Delta {
            package_id: "p-2".parse().unwrap(),
            base_id: "p-1".parse().unwrap(),
            lacking: 1 << 33,
        });
        round_trip(Response::Declined {
            reason: "not smaller".into(),
        });
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        assert_eq!(
            body_len((MAX_MESSAGE + 1).to_be_bytes()),
            Err(ProtocolError::TooLong {
                len: MAX_MESSAGE + 1
            })
        );
        assert!(matches!(
            decode::<Request>(b"{\"type\":\"nope\"}"),
            Err(ProtocolError::Malformed(_))
        ));
        // An id that is not an id is refused while decoding, not later.
        assert!(decode::<Request>(br#"{"type":"info","package_id":"../etc"}"#).is_err());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<RelayMessage>(&bytes);
            let _ = decode::<CentralMessage>(&bytes);
            let _ = decode::<Request>(&bytes);
            if bytes.len() >= 4 {
                let _ = body_len(bytes[..4].try_into().unwrap());
            }
        }
    }
}
