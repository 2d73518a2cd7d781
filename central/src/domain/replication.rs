//! What central answers a relay's request on the replication link: the byte
//! range of a file to send (a signed info, a fragment of the data file, or a
//! delta from an older version), or why there is none. Decided here; the
//! `quic` link only reads the request and streams the bytes.
//!
//! A relay gets only what is activated for its site: an authenticated relay is
//! trusted to cache its site's packages, not to read every package central holds.

use std::path::PathBuf;

use sitecast_common::ids::{PackageId, RelayId};
use sitecast_common::protocol::{ActivatedPackage, Request};

use crate::domain::{activation, convert};
use crate::error::CentralError;
use crate::state::Central;
use crate::store::PackageRecord;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send `len` bytes of `path` from `offset`.
    Send {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// Central has no such package or fragment.
    NotFound(String),
    /// A delta central will not send; the relay fetches the fragments instead.
    Declined(String),
}

/// What the relay must hold now (`activation::for_relay`), or `None` once it
/// was deleted.
pub fn activated(
    c: &Central,
    relay: &RelayId,
) -> Result<Option<Vec<ActivatedPackage>>, CentralError> {
    match c.store.relay(relay)? {
        Some(record) => activation::for_relay(c, &record).map(Some),
        None => Ok(None),
    }
}

/// The answer to `relay`'s `request`. Blocking: it reads the store and may compute a
/// delta.
pub fn answer(c: &Central, relay: &RelayId, request: &Request) -> Result<Answer, CentralError> {
    let id = request.package_id();
    let Some(relay) = c.store.relay(relay)? else {
        return Ok(Answer::NotFound(format!(
            "relay '{relay}' no longer exists"
        )));
    };
    let Some(package) = c.store.package(id)? else {
        return Ok(Answer::NotFound(format!("package '{id}' not found")));
    };
    // Told like a missing package: the relay stops asking, and learns nothing more.
    if !convert::activated_for(&package, &relay.site) {
        return Ok(Answer::NotFound(format!(
            "package '{id}' is not activated for site '{}'",
            relay.site
        )));
    }
    match request {
        Request::Info { .. } => {
            let path = c.files.info_path(&package.id);
            let len = std::fs::metadata(&path)
                .map_err(CentralError::io(&path))?
                .len();
            Ok(Answer::Send {
                path,
                offset: 0,
                len,
            })
        }
        Request::Fragment { index, .. } => Ok(fragment(c, &package, *index)),
        Request::Delta {
            base_id, lacking, ..
        } => delta(c, &package, base_id, *lacking),
    }
}

/// Fragment `index` (from 1) of the package's data file.
fn fragment(c: &Central, package: &PackageRecord, index: u32) -> Answer {
    if index == 0 || index > package.fragments {
        return Answer::NotFound(format!("package '{}' has no fragment {index}", package.id));
    }
    let offset = u64::from(index - 1) * package.fragment_size;
    Answer::Send {
        path: c.files.data_path(&package.id),
        offset,
        len: package
            .fragment_size
            .min(package.size.saturating_sub(offset)),
    }
}

/// The delta from `base_id` to `package` if it is worth sending: the base is
/// what the package supersedes, and the delta is smaller than the `lacking`
/// fragment bytes it would replace.
fn delta(
    c: &Central,
    package: &PackageRecord,
    base_id: &PackageId,
    lacking: u64,
) -> Result<Answer, CentralError> {
    if package.supersedes.as_ref() != Some(base_id) {
        return Ok(Answer::Declined(format!(
            "'{}' does not supersede '{base_id}'",
            package.id
        )));
    }
    let Some(base) = c.store.package(base_id)? else {
        return Ok(Answer::Declined(format!(
            "base '{base_id}' no longer exists"
        )));
    };
    let (base_data, data) = (c.files.data_path(&base.id), c.files.data_path(&package.id));
    let computed = c.deltas.get_or_compute(
        (&base.id, &base_data),
        (&package.id, &data),
        package.fragment_size,
    );
    Ok(match computed {
        Ok((path, len)) if len < lacking => Answer::Send {
            path,
            offset: 0,
            len,
        },
        Ok((_, len)) => Answer::Declined(format!(
            "a delta of {len} bytes is not smaller than the {lacking} bytes lacking"
        )),
        // The relay can still fetch the fragments: a delta central cannot
        // make is declined, not a broken link.
        Err(e) => {
            tracing::warn!(package = %package.id, base = %base_id, error = %e, "cannot compute a delta");
            Answer::Declined(format!("no delta: {e}"))
        }
    })
}
