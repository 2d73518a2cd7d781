//! Central's admin API as the suite uses it: one try per call, and an error that
//! tells "central did not answer" (it may be down; what it did is unknown) from
//! "central answered no" (a refusal, which the suite never expects).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

/// How a call failed.
#[derive(Debug)]
pub enum Failure {
    /// No answer: central is down or went down during the call.
    NoAnswer(String),
    /// An answer that is not a success.
    Refused(u16, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoAnswer(e) => write!(f, "no answer: {e}"),
            Failure::Refused(status, body) => write!(f, "{status}: {body}"),
        }
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(url: &str, ca: &Path, token: &str) -> anyhow::Result<Api> {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            // A killed central resets its connections; this only bounds a hang.
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Api {
            http,
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            token: token.trim().to_owned(),
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Failure::NoAnswer(e.to_string()))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::NoAnswer(e.to_string()))?;
        if !status.is_success() {
            return Err(Failure::Refused(status.as_u16(), text));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| Failure::Refused(status.as_u16(), e.to_string()))
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn upload(&self, query: &str, body: Vec<u8>) -> Result<Value, Failure> {
        self.send(
            self.http
                .post(format!("{}/packages?{query}", self.base))
                .body(body),
        )
        .await
    }

    /// Calls `f` until central answers (it may be restarting), at most until
    /// `deadline`; a refusal is an error at once. Only for calls that may be
    /// repeated: reads, and writes that change nothing the second time.
    pub async fn answered<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        mut f: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut(Api) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        loop {
            match f(self.clone()).await {
                Ok(v) => return Ok(v),
                Err(Failure::Refused(status, body)) => {
                    bail!("{what}: central refused: {status}: {body}")
                }
                Err(Failure::NoAnswer(e)) => {
                    if Instant::now() > deadline {
                        bail!("{what}: central did not answer before the deadline: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// `s` for a URL's query.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
