//! Signed info documents: DSSE envelopes with Ed25519 signatures.
//!
//! The envelope is the in-toto/sigstore "Dead Simple Signing Envelope". A verifier
//! checks a signature over the exact payload bytes (through DSSE's pre-authentication
//! encoding, which binds the payload type) before it parses anything, and uses
//! `verify_strict` so malleable signatures and weak keys are refused. Only central
//! holds a signing key; relays and agents only verify.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::info::{Info, InfoError};

/// The DSSE payload type of an info document.
pub const INFO_PAYLOAD_TYPE: &str = "application/vnd.sitecast.info.v1+json";

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("payload type '{found}' is not {INFO_PAYLOAD_TYPE}")]
    WrongPayloadType { found: String },
    #[error("the envelope carries no signature")]
    NoSignature,
    #[error("no trusted key for key id(s) {}", keyids.join(", "))]
    UnknownKey { keyids: Vec<String> },
    #[error("bad signature by key {keyid}")]
    BadSignature { keyid: String },
    #[error("signed payload is not a valid info document: {0}")]
    BadInfo(#[from] InfoError),
}

/// A PEM key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {what} key: {reason}")]
pub struct KeyError {
    pub what: &'static str,
    pub reason: String,
}

/// The envelope as it is written in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// DSSE's pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// First 16 hex characters of the SHA-256 of the raw 32-byte public key.
pub fn key_id(key: &VerifyingKey) -> String {
    let mut id = hex::encode(Sha256::digest(key.as_bytes()));
    id.truncate(16);
    id
}

/// Signs `payload` into the JSON bytes of an envelope.
pub fn sign(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let sig = key.sign(&pae(payload_type, payload));
    let envelope = Envelope {
        payload_type: payload_type.to_owned(),
        payload: BASE64.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: key_id(&key.verifying_key()),
            sig: BASE64.encode(sig.to_bytes()),
        }],
    };
    // Serialising a struct of strings into memory cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Signs an info document.
pub fn sign_info(key: &SigningKey, info: &Info) -> Vec<u8> {
    sign(key, INFO_PAYLOAD_TYPE, &info.to_json())
}

/// Checks an envelope against the trusted keys and returns the exact payload bytes
/// that were signed. Succeeds if any signature by a trusted key is valid.
pub fn verify(
    envelope: &[u8],
    payload_type: &str,
    trusted: &[VerifyingKey],
) -> Result<Vec<u8>, VerifyError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if env.payload_type != payload_type {
        return Err(VerifyError::WrongPayloadType {
            found: env.payload_type,
        });
    }
    let payload = BASE64
        .decode(env.payload.as_bytes())
        .map_err(|e| VerifyError::Malformed(format!("payload is not base64: {e}")))?;
    if env.signatures.is_empty() {
        return Err(VerifyError::NoSignature);
    }
    let message = pae(payload_type, &payload);
    let mut bad = None;
    for s in &env.signatures {
        let Some(key) = trusted.iter().find(|k| key_id(k) == s.keyid) else {
            continue;
        };
        let ok = BASE64
            .decode(s.sig.as_bytes())
            .ok()
            .and_then(|raw| Signature::from_slice(&raw).ok())
            .is_some_and(|sig| key.verify_strict(&message, &sig).is_ok());
        if ok {
            return Ok(payload);
        }
        bad.get_or_insert_with(|| s.keyid.clone());
    }
    Err(match bad {
        Some(keyid) => VerifyError::BadSignature { keyid },
        None => VerifyError::UnknownKey {
            keyids: env.signatures.into_iter().map(|s| s.keyid).collect(),
        },
    })
}

/// The key ids an envelope claims to be signed by (nothing is verified).
pub fn signers(envelope: &[u8]) -> Result<Vec<String>, VerifyError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    Ok(env.signatures.into_iter().map(|s| s.keyid).collect())
}

/// The same payload signed again by `key`, in place of the envelope's signatures.
/// For the signer only, about an envelope whose integrity it checked another
/// way (central: the digest it recorded when it signed it first).
pub fn resign(key: &SigningKey, envelope: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let payload = BASE64
        .decode(env.payload.as_bytes())
        .map_err(|e| VerifyError::Malformed(format!("payload is not base64: {e}")))?;
    Ok(sign(key, &env.payload_type, &payload))
}

/// Verifies a signed info document, then parses and validates its payload.
pub fn verify_info(envelope: &[u8], trusted: &[VerifyingKey]) -> Result<Info, VerifyError> {
    let payload = verify(envelope, INFO_PAYLOAD_TYPE, trusted)?;
    Ok(Info::from_json(&payload)?)
}

/// Reads an Ed25519 signing key from PKCS#8 PEM.
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError {
        what: "signing",
        reason: e.to_string(),
    })
}

/// Reads an Ed25519 public key from SubjectPublicKeyInfo PEM.
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError {
        what: "public",
        reason: e.to_string(),
    })
}

/// Writes a signing key as PKCS#8 PEM.
pub fn signing_key_to_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(Default::default())
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError {
            what: "signing",
            reason: e.to_string(),
        })
}

/// Writes a public key as SubjectPublicKeyInfo PEM (what `openssl pkey -pubin` reads).
pub fn verifying_key_to_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(Default::default())
        .map_err(|e| KeyError {
            what: "public",
            reason: e.to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn tamper(envelope: &[u8], f: impl FnOnce(&mut Envelope)) -> Vec<u8> {
        let mut env: Envelope = serde_json::from_slice(envelope).unwrap();
        f(&mut env);
        serde_json::to_vec(&env).unwrap()
    }

    #[test]
    fn pae_matches_the_dsse_spec() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn round_trip() {
        let k = key(1);
        let env = sign(&k, INFO_PAYLOAD_TYPE, b"{\"x\":1}");
        assert_eq!(
            verify(
                &env,
                INFO_PAYLOAD_TYPE,
                &[key(2).verifying_key(), k.verifying_key()]
            )
            .unwrap(),
            b"{\"x\":1}"
        );
    }

    #[test]
    fn flipped_payload_byte() {
        let k = key(1);
        let env = sign(&k, INFO_PAYLOAD_TYPE, b"{\"command\":\"echo hi\"}");
        let forged = tamper(&env, |e| {
            let mut p = BASE64.decode(&e.payload).unwrap();
            p[5] ^= 0x01;
            e.payload = BASE64.encode(p);
        });
        assert_eq!(
            verify(&forged, INFO_PAYLOAD_TYPE, &[k.verifying_key()]),
            Err(VerifyError::BadSignature {
                keyid: key_id(&k.verifying_key())
            })
        );
    }

    #[test]
    fn flipped_signature_byte() {
        let k = key(1);
        let env = sign(&k, INFO_PAYLOAD_TYPE, b"payload");
        let forged = tamper(&env, |e| {
            let mut s = BASE64.decode(&e.signatures[0].sig).unwrap();
            s[10] ^= 0x80;
            e.signatures[0].sig = BASE64.encode(s);
        });
        assert_eq!(
            verify(&forged, INFO_PAYLOAD_TYPE, &[k.verifying_key()]),
            Err(VerifyError::BadSignature {
                keyid: key_id(&k.verifying_key())
            })
        );
    }

    #[test]
    fn unknown_key() {
        let env = sign(&key(1), INFO_PAYLOAD_TYPE, b"payload");
        assert_eq!(
            verify(&env, INFO_PAYLOAD_TYPE, &[key(2).verifying_key()]),
            Err(VerifyError::UnknownKey {
                keyids: vec![key_id(&key(1).verifying_key())]
            })
        );
    }

    #[test]
    fn payload_type_is_bound() {
        let k = key(1);
        let env = sign(&k, "text/plain", b"payload");
        assert_eq!(
            verify(&env, INFO_PAYLOAD_TYPE, &[k.verifying_key()]),
            Err(VerifyError::WrongPayloadType {
                found: "text/plain".into()
            })
        );
        // Relabelling the type without re-signing breaks the signature.
        let relabelled = tamper(&env, |e| e.payload_type = INFO_PAYLOAD_TYPE.into());
        assert!(matches!(
            verify(&relabelled, INFO_PAYLOAD_TYPE, &[k.verifying_key()]),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = key(1).verifying_key();
        assert!(matches!(
            verify(b"", INFO_PAYLOAD_TYPE, &[k]),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            verify(b"{}", INFO_PAYLOAD_TYPE, &[k]),
            Err(VerifyError::Malformed(_))
        ));
        let env = br#"{"payloadType":"application/vnd.sitecast.info.v1+json","payload":"!!","signatures":[]}"#;
        assert!(matches!(
            verify(env, INFO_PAYLOAD_TYPE, &[k]),
            Err(VerifyError::Malformed(_))
        ));
        let env = br#"{"payloadType":"application/vnd.sitecast.info.v1+json","payload":"","signatures":[]}"#;
        assert_eq!(
            verify(env, INFO_PAYLOAD_TYPE, &[k]),
            Err(VerifyError::NoSignature)
        );
    }

    #[test]
    fn resigning_keeps_the_payload_and_changes_the_signer() {
        let env = sign(&key(1), INFO_PAYLOAD_TYPE, b"payload");
        assert_eq!(
            signers(&env).unwrap(),
            vec![key_id(&key(1).verifying_key())]
        );
        let again = resign(&key(2), &env).unwrap();
        assert_eq!(
            signers(&again).unwrap(),
            vec![key_id(&key(2).verifying_key())]
        );
        assert_eq!(
            verify(&again, INFO_PAYLOAD_TYPE, &[key(2).verifying_key()]).unwrap(),
            b"payload"
        );
        assert!(resign(&key(2), b"nope").is_err());
    }

    #[test]
    fn pem_round_trip() {
        let k = key(9);
        let pem = signing_key_to_pem(&k).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(signing_key_from_pem(&pem).unwrap().to_bytes(), k.to_bytes());
        let pub_pem = verifying_key_to_pem(&k.verifying_key()).unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(verifying_key_from_pem(&pub_pem).unwrap(), k.verifying_key());
        assert!(verifying_key_from_pem("nope").is_err());
    }
}
