//! HTTP to central (HTTPS, verified against central's CA, bearer token) and to
//! relays (plain HTTP on the LAN: everything fetched is verified anyway), always
//! from the agent's bind address when it has one.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sitecast_common::ids::{PackageId, RelayId};
use sitecast_common::wire::{
    EnrollRequest, EnrollResponse, ErrorBody, PollRequest, PollResponse, StatusReport,
};
use tokio::io::AsyncWriteExt;

use crate::error::AgentError;

/// Largest signed info accepted from any source.
const MAX_INFO: usize = 4 << 20;

/// Where a package's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Relay { id: RelayId, url: String },
    Central,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Relay { id, .. } => write!(f, "relay {id}"),
            Source::Central => f.write_str("central"),
        }
    }
}

/// Talks to central and relays.
pub struct Client {
    http: reqwest::Client,
    central: String,
    token: String,
}

fn http_client(ca: &Path, bind: Option<IpAddr>) -> Result<reqwest::Client, AgentError> {
    let pem = std::fs::read(ca).map_err(AgentError::io(ca))?;
    let cert = reqwest::Certificate::from_pem(&pem)
        .map_err(|e| AgentError::Tls(format!("{}: {e}", ca.display())))?;
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .local_address(bind)
        .connect_timeout(Duration::from_secs(10))
        // A source that stops sending is abandoned; the next one is tried.
        .read_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| AgentError::Http(e.to_string()))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, AgentError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Err(AgentError::Api {
        status: status.as_u16(),
        message,
    })
}

/// Enrolls with central using the enroll token.
pub async fn enroll(
    central: &str,
    ca: &Path,
    bind: Option<IpAddr>,
    request: &EnrollRequest,
) -> Result<EnrollResponse, AgentError> {
    let http = http_client(ca, bind)?;
    let url = format!("{}/api/v1/agent/enroll", central.trim_end_matches('/'));
    let resp = http.post(&url).json(request).send().await.map_err(|e| {
        AgentError::Http(format!("cannot reach central at {central}: {}", chain(&e)))
    })?;
    check(resp)
        .await?
        .json()
        .await
        .map_err(|e| AgentError::Http(format!("unexpected answer from central: {e}")))
}

impl Client {
    pub fn new(
        central: &str,
        token: &str,
        ca: &Path,
        bind: Option<IpAddr>,
    ) -> Result<Self, AgentError> {
        Ok(Self {
            http: http_client(ca, bind)?,
            central: central.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/agent{path}", self.central)
    }

    pub async fn poll(&self, addresses: &[IpAddr]) -> Result<PollResponse, AgentError> {
        let body = PollRequest {
            addresses: addresses.iter().map(ToString::to_string).collect(),
        };
        let resp = self
            .http
            .post(self.api("/poll"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                AgentError::Http(format!(
                    "cannot reach central at {}: {}",
                    self.central,
                    chain(&e)
                ))
            })?;
        check(resp)
            .await?
            .json()
            .await
            .map_err(|e| AgentError::Http(format!("unexpected poll answer: {e}")))
    }

    pub async fn report(
        &self,
        package: &PackageId,
        report: &StatusReport,
    ) -> Result<(), AgentError> {
        let resp = self
            .http
            .post(self.api(&format!("/packages/{package}/status")))
            .bearer_auth(&self.token)
            .json(report)
            .send()
            .await
            .map_err(|e| AgentError::Http(format!("cannot report to central: {}", chain(&e))))?;
        check(resp).await.map(|_| ())
    }

    fn request(&self, source: &Source, path: &str) -> reqwest::RequestBuilder {
        match source {
            Source::Relay { url, .. } => self
                .http
                .get(format!("{}/v1{path}", url.trim_end_matches('/'))),
            Source::Central => self.http.get(self.api(path)).bearer_auth(&self.token),
        }
    }

    /// The signed info's bytes from a source (not yet verified).
    pub async fn info(&self, source: &Source, package: &PackageId) -> Result<Vec<u8>, AgentError> {
        let resp = self
            .request(source, &format!("/packages/{package}/info"))
            .send()
            .await
            .map_err(|e| AgentError::Http(format!("{source}: {}", chain(&e))))?;
        let mut stream = check(resp).await?.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| AgentError::Http(format!("{source}: {}", chain(&e))))?;
            if bytes.len() + chunk.len() > MAX_INFO {
                return Err(AgentError::Http(format!(
                    "{source}: the info is larger than {MAX_INFO} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Streams one fragment into `file`, never more than `expected_len` bytes, and
    /// returns its SHA-256 for the caller to check.
    pub async fn fragment(
        &self,
        source: &Source,
        package: &PackageId,
        index: u32,
        expected_len: u64,
        file: &mut tokio::fs::File,
        path: &Path,
    ) -> Result<[u8; 32], AgentError> {
        let resp = self
            .request(source, &format!("/packages/{package}/fragments/{index}"))
            .send()
            .await
            .map_err(|e| AgentError::Http(format!("{source}: {}", chain(&e))))?;
        let mut stream = check(resp).await?.bytes_stream();
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| AgentError::Http(format!("{source}: {}", chain(&e))))?;
            got += chunk.len() as u64;
            if got > expected_len {
                return Err(AgentError::Http(format!(
                    "{source}: fragment {index} is longer than the {expected_len} bytes the signed info says"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(AgentError::io(path))?;
        }
        Ok(hasher.finalize().into())
    }
}
