//! What the replicator ([`crate::replicator`]) needs of a link to central, and
//! what a link tells it: the seam between the one task that owns replication
//! and the QUIC connection ([`crate::link`]), which only connects,
//! authenticates and carries requests. Tests put a fake link behind it.

use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use futures_util::future::BoxFuture;
use sitecast_common::protocol::{Request, Response, WakeTarget};
use sitecast_common::replication::Wanted;

use crate::error::LinkError;

/// Central's answer to a request: its response, and the stream its data follows on.
pub type Answer = (Response, Box<dyn Body>);

/// A connected, authenticated link to central.
pub trait Upstream: Send + Sync + 'static {
    /// Sends `request` on a stream of its own; answers central's response and
    /// the stream its data (if any) follows on.
    fn request(&self, request: Request) -> BoxFuture<'static, Result<Answer, LinkError>>;

    /// Ends the connection: something it carried showed it broken. The link
    /// then reports [`LinkEvent::Disconnected`] and connects again.
    fn close(&self);
}

/// The data of one response.
pub trait Body: Send {
    /// Up to `max` more bytes; `None` at the end of the stream.
    fn chunk(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Bytes>, LinkError>>;
}

/// What a link tells the replicator, in the order it happens.
pub enum LinkEvent {
    /// Connected and welcomed; `keys` are central's signing keys of the welcome.
    Connected {
        upstream: Arc<dyn Upstream>,
        keys: Vec<VerifyingKey>,
    },
    /// Central's key set changed: the keys to verify with from now on.
    Keys(Vec<VerifyingKey>),
    /// The complete set of packages activated for the site.
    Activated(Vec<Wanted>),
    /// Central asks for Wake-on-LAN packets on the site's network.
    Wake(Vec<WakeTarget>),
    /// The connection ended; whatever it carried is lost.
    Disconnected,
}

impl std::fmt::Debug for LinkEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkEvent::Connected { keys, .. } => f
                .debug_struct("Connected")
                .field("keys", &keys.len())
                .finish_non_exhaustive(),
            LinkEvent::Keys(k) => f.debug_tuple("Keys").field(&k.len()).finish(),
            LinkEvent::Activated(w) => f.debug_tuple("Activated").field(w).finish(),
            LinkEvent::Wake(t) => f.debug_tuple("Wake").field(t).finish(),
            LinkEvent::Disconnected => f.write_str("Disconnected"),
        }
    }
}
