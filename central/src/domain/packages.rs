//! Packages: an upload streamed, fragmented, hashed and signed into a package;
//! finding, listing and deleting packages; their signed envelopes.
//!
//! An upload's parameters are checked ([`draft`]) before a byte of its body is
//! read; the files are published before the record is stored, so a stored
//! package always has its files.

mod draft;

use futures_util::{Stream, StreamExt};
use sitecast_common::fragment::sha256_hex;
use sitecast_common::ids::PackageId;
use sitecast_common::info::{Archive, Info};
use sitecast_common::signing;
use sitecast_common::wire::{Package, UploadParams};
use std::sync::Arc;

use super::records;
use crate::error::CentralError;
use crate::packaging::{UploadError, UploadSink};
use crate::state::Central;

pub use draft::package_record;

/// The package `id` names, as the API shows it.
pub fn show(c: &Central, id: &str) -> Result<Package, CentralError> {
    Ok(records::package(c, id)?.into())
}

pub fn list(c: &Central) -> Result<Vec<Package>, CentralError> {
    Ok(c.store.packages()?.into_iter().map(Package::from).collect())
}

/// Streams an upload into a new package: checks the parameters, writes the
/// body to a temporary file while hashing its fragments (never whole in
/// memory), signs the info and publishes files, then the record.
pub async fn create<S, E>(
    c: &Arc<Central>,
    params: UploadParams,
    body: S,
) -> Result<Package, CentralError>
where
    S: Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let mut draft = draft::draft(&params, c.config.default_fragment_size.bytes())?;
    if c.store
        .package_id_by_name(&draft.doc.name, &draft.doc.version)?
        .is_some()
    {
        return Err(CentralError::conflict(format!(
            "package '{}' version '{}' already exists",
            draft.doc.name, draft.doc.version
        )));
    }
    // Checked before a byte of the body is read, like every other parameter.
    draft.doc.supersedes =
        superseded(c, &draft.doc.name, params.supersedes.as_deref())?.map(String::from);

    let limit = c.config.max_package_size.bytes();
    let mut sink = UploadSink::start(c.files.temp_upload(), draft.doc.fragment_size, limit)?;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let pushed = match chunk {
            Ok(bytes) => sink.push(bytes).await,
            Err(e) => Err(UploadError::Body(e.to_string())),
        };
        match pushed {
            Ok(()) => {}
            Err(UploadError::WriterStopped) => return Err(upload_error(sink.finish().await.err())),
            Err(e) => return Err(upload_error(Some(e))),
        }
    }
    let received = sink.finish().await.map_err(|e| upload_error(Some(e)))?;

    let mut id = draft::new_package_id(&draft.doc.name, &draft.doc.version)?;
    while c.store.package(&id)?.is_some() || c.files.data_path(&id).exists() {
        id = draft::new_package_id(&draft.doc.name, &draft.doc.version)?;
    }
    let plan = &received.plan;
    let mut doc = draft.doc;
    doc.id = id.to_string();
    doc.archive = draft
        .explicit_archive
        .unwrap_or_else(|| Archive::sniff(&received.head))
        .as_str()
        .into();
    doc.size = plan.size();
    doc.sha256 = hex::encode(plan.sha256());
    doc.fragments = plan.fragments().iter().map(hex::encode).collect();
    let now = c.clock.now();
    doc.issued_at = now.to_string();
    let info = Info::try_from(doc).map_err(draft::info_error)?;
    let envelope = signing::sign_info(&c.keys().signing, &info);
    let package = package_record(&info, sha256_hex(&envelope), now);

    let reply = Package::from(package.clone());
    c.blocking(move |c| {
        c.files.publish(&package.id, received.file, &envelope)?;
        if let Err(e) = c.store.add_package(&package) {
            // Lost a race with an identical name and version: take the files back.
            c.files.remove(&package.id)?;
            return Err(e);
        }
        Ok(())
    })
    .await?;
    tracing::info!(id = %reply.id, size = reply.size, fragments = reply.fragments, "package created");
    Ok(reply)
}

/// The package a new version of `name` supersedes (versions): the one `given`
/// names, which must exist and bear the same name; none for `none`; by default
/// the newest existing package of that name (none if it is the first).
fn superseded(
    c: &Central,
    name: &str,
    given: Option<&str>,
) -> Result<Option<PackageId>, CentralError> {
    let text = match given.map(str::trim) {
        None => return Ok(c.store.packages_named(name)?.pop().map(|p| p.id)),
        Some("none") => return Ok(None),
        Some("") => {
            return Err(CentralError::invalid(
                "bad supersedes: empty (give a package id of the same name, or none)",
            ))
        }
        Some(text) => text,
    };
    let id: PackageId = text
        .parse()
        .map_err(|e| CentralError::invalid(format!("bad supersedes: {e}")))?;
    let Some(old) = c.store.package(&id)? else {
        return Err(CentralError::NotFoundIn {
            field: "supersedes",
            what: "package",
            name: id.to_string(),
        });
    };
    if old.name != name {
        return Err(CentralError::invalid(format!(
            "bad supersedes: package '{id}' is named '{}', not '{name}' (a package supersedes only an older version of its own name)",
            old.name
        )));
    }
    Ok(Some(id))
}

fn upload_error(e: Option<UploadError>) -> CentralError {
    match e {
        Some(UploadError::TooLarge { limit }) => CentralError::TooLarge { limit },
        Some(e @ UploadError::TooManyFragments { .. }) => CentralError::invalid(e.to_string()),
        Some(UploadError::Body(m)) => {
            CentralError::invalid(format!("the upload was interrupted: {m}"))
        }
        Some(UploadError::Central(e)) => e,
        Some(UploadError::WriterStopped) | None => CentralError::WriterStopped,
    }
}

/// Deletes a package: its record, its place in package groups, its deltas and
/// its files; relays drop it.
pub fn delete(c: &Central, id: &str) -> Result<(), CentralError> {
    let package = records::package(c, id)?;
    c.store.delete_package(&package.id)?;
    super::groups::forget_package(c, &package.id)?;
    c.deltas.forget(&package.id)?;
    c.files.remove(&package.id)?;
    c.notify_relays();
    Ok(())
}

/// The signed envelope, byte for byte as it was signed.
pub async fn envelope(c: &Central, id: &PackageId) -> Result<Vec<u8>, CentralError> {
    let path = c.files.info_path(id);
    tokio::fs::read(&path)
        .await
        .map_err(CentralError::io(&path))
}
