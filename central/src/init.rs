//! `sitecast-central init`: a new central's directory, its keys, certificates,
//! tokens and configuration, and loading them back for `serve`.
//!
//! Everything is written into a sibling temporary directory that is renamed into
//! place at the end, so a crash never leaves a half-initialised DIR behind.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::OsRng;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use sitecast_common::{layout, signing};

use sitecast_io::fsync_dir;

use crate::clock::Clock;
use crate::config::CentralConfig;
use crate::error::CentralError;
use crate::keys::KeyRing;
use crate::tokens;

/// Default HTTPS API address.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8443";
/// Default QUIC address.
pub const DEFAULT_QUIC_LISTEN: &str = "127.0.0.1:4433";

/// The files of a central's DIR; their names live in `sitecast-common`, which
/// the admin CLI shares for `--central-dir`.
pub use sitecast_common::layout::CentralLayout as Layout;

/// What `init` is asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub api_listen: SocketAddr,
    pub quic_listen: SocketAddr,
    /// Names the server certificate is issued for (host names or IP addresses).
    pub names: Vec<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            quic_listen: SocketAddr::from(([127, 0, 0, 1], 4433)),
            names: vec!["127.0.0.1".into(), "localhost".into()],
        }
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CentralError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(CentralError::io(path))?;
    f.write_all(contents).map_err(CentralError::io(path))?;
    f.sync_all().map_err(CentralError::io(path))
}

/// Creates a new central in `dir`, which must not exist or be empty.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<Layout, CentralError> {
    if dir.exists()
        && fs::read_dir(dir)
            .map_err(CentralError::io(dir))?
            .next()
            .is_some()
    {
        return Err(CentralError::Conflict(format!(
            "{} already exists and is not empty; refusing to overwrite it",
            dir.display()
        )));
    }
    if opts.names.is_empty() {
        return Err(CentralError::Invalid(
            "at least one --name is needed for the server certificate".into(),
        ));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(CentralError::io(&parent))?;
    let staging = tempdir_in(&parent)?;
    let layout = Layout::new(&staging);
    populate(&layout, opts)?;
    if dir.exists() {
        // An empty directory: rename cannot replace it on every platform, so remove it first.
        fs::remove_dir(dir).map_err(CentralError::io(dir))?;
    }
    fs::rename(&staging, dir).map_err(CentralError::io(dir))?;
    fsync_dir(&parent)?;
    Ok(Layout::new(dir))
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, CentralError> {
    let path = parent.join(format!(".sitecast-init-{}", tokens::suffix()));
    fs::create_dir(&path).map_err(CentralError::io(&path))?;
    Ok(path)
}

fn populate(layout: &Layout, opts: &InitOptions) -> Result<(), CentralError> {
    for sub in ["keys", "tls"] {
        let p = layout.dir.join(sub);
        fs::create_dir(&p).map_err(CentralError::io(&p))?;
    }
    let signing_key = SigningKey::generate(&mut OsRng);
    write_file(
        &layout.signing_key(),
        signing::signing_key_to_pem(&signing_key)?.as_bytes(),
        0o600,
    )?;
    write_file(
        &layout.signing_pub(),
        signing::verifying_key_to_pem(&signing_key.verifying_key())?.as_bytes(),
        0o644,
    )?;
    crate::keys::create(layout, &signing_key, crate::clock::SystemClock.now())?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Sitecast central CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(opts.names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Sitecast central");
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let server_cert = params.signed_by(&server_key, &ca_cert, &ca_key)?;

    write_file(&layout.ca_cert(), ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&layout.ca_key(), ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&layout.server_cert(), server_cert.pem().as_bytes(), 0o644)?;
    write_file(
        &layout.server_key(),
        server_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(
        &layout.admin_token(),
        format!("{}\n", tokens::generate()).as_bytes(),
        0o600,
    )?;
    write_file(
        &layout.enroll_token(),
        format!("{}\n", tokens::generate()).as_bytes(),
        0o600,
    )?;

    let config = CentralConfig::new(opts.api_listen, opts.quic_listen, opts.names.clone());
    write_file(&layout.config(), config.to_toml()?.as_bytes(), 0o644)?;
    for sub in ["keys", "tls", "."] {
        fsync_dir(&layout.dir.join(sub))?;
    }
    Ok(())
}

/// Reads a token file (surrounding whitespace ignored).
pub fn read_token(path: &Path) -> Result<String, CentralError> {
    let text = fs::read_to_string(path).map_err(CentralError::io(path))?;
    match layout::token(&text) {
        Some(token) => Ok(token.to_owned()),
        None => Err(CentralError::Config {
            path: path.to_owned(),
            reason: "the token file is empty".into(),
        }),
    }
}

/// Everything `serve` loads from DIR.
pub struct Loaded {
    pub layout: Layout,
    pub config: CentralConfig,
    pub keys: KeyRing,
    pub admin_token: String,
    pub enroll_token: String,
}

impl Loaded {
    /// The key that signs infos now.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.keys.signing.verifying_key()
    }
}

/// Loads an initialised DIR.
pub fn load(dir: &Path) -> Result<Loaded, CentralError> {
    let layout = Layout::new(dir);
    let config = CentralConfig::load(&layout.config())?;
    let keys = crate::keys::load(&layout, crate::clock::SystemClock.now())?;
    Ok(Loaded {
        admin_token: read_token(&layout.admin_token())?,
        enroll_token: read_token(&layout.enroll_token())?,
        layout,
        config,
        keys,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_everything_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("central");
        let layout = init(&dir, &InitOptions::default()).unwrap();
        for p in [
            layout.config(),
            layout.signing_key(),
            layout.signing_pub(),
            layout.ca_cert(),
            layout.ca_key(),
            layout.server_cert(),
            layout.server_key(),
            layout.admin_token(),
            layout.enroll_token(),
        ] {
            assert!(p.is_file(), "{} missing", p.display());
        }
        let mode = fs::metadata(layout.signing_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load(&dir).unwrap();
        let pub_pem = fs::read_to_string(layout.signing_pub()).unwrap();
        assert_eq!(
            signing::verifying_key_from_pem(&pub_pem).unwrap(),
            loaded.verifying_key()
        );
        assert_ne!(loaded.admin_token, loaded.enroll_token);
        let err = init(&dir, &InitOptions::default()).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        // No staging directory is left behind.
        let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
