//! TLS material as central and relays load it: PEM certificates and keys read
//! from files, the one crypto provider (ring), and a typed error naming the
//! file at fault. One copy, so central's HTTPS and QUIC endpoints and a relay's
//! link read PEM the same way.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be loaded or a TLS configuration built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no private key")]
    NoKey { path: PathBuf },
    #[error("{path}: {source}")]
    Rejected {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
    #[cfg(feature = "quic")]
    #[error("TLS for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The crypto provider of every TLS configuration Sitecast builds (ring, the
/// one crypto stack).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of the PEM file at `path`, in order; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut BufReader::new(&pem[..]))
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

/// The roots a client trusts: the certificates of the CA file at `path` only
/// (central's own CA; never the system's).
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|source| TlsError::Rejected {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = certificates(&missing).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots(&empty).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = private_key(&empty).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{}: no private key", empty.display())
        );
    }
}
