//! The admin CLI's HTTP client: TLS verified against central's CA, the admin
//! token as a bearer token, error bodies turned into errors that name the problem.

use std::path::Path;

use reqwest::{Body, Method, StatusCode};
use sitecast_common::wire::ErrorBody;

use crate::error::CliError;

/// Where central is and how to prove we are its admin.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A successful answer: its status and the exact body bytes.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CliError> {
        serde_json::from_slice(&self.body).map_err(|source| CliError::Unexpected { source })
    }
}

impl Client {
    pub fn new(url: &str, token: &str, ca: &Path) -> Result<Self, CliError> {
        let pem = std::fs::read(ca).map_err(CliError::io(ca))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|source| CliError::Ca {
            path: ca.to_owned(),
            source,
        })?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(CliError::Client)?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, CliError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| CliError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| CliError::Answer { source })?
            .to_vec();
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        Err(CliError::Api {
            status: status.as_u16(),
            message,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// A GET with query parameters, encoded by reqwest (`GET /coverage?…`).
    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, CliError> {
        self.send(self.http.get(self.url(path)).query(query)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, CliError> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// A DELETE with a JSON body (`DELETE /packages/{id}/activations`).
    pub async fn delete_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Answer, CliError> {
        self.send(self.http.request(Method::DELETE, self.url(path)).json(body))
            .await
    }

    pub async fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Answer, CliError> {
        self.send(self.http.request(Method::POST, self.url(path)).json(body))
            .await
    }

    pub async fn put_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Answer, CliError> {
        self.send(self.http.request(Method::PUT, self.url(path)).json(body))
            .await
    }

    pub async fn patch_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Answer, CliError> {
        self.send(self.http.request(Method::PATCH, self.url(path)).json(body))
            .await
    }

    /// A POST without a body, for routes that take none (`/containers/{id}/retry`).
    pub async fn post_empty(&self, path: &str) -> Result<Answer, CliError> {
        self.send(self.http.post(self.url(path))).await
    }

    pub async fn post_body(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Answer, CliError> {
        self.send(
            self.http
                .post(self.url(path))
                .query(query)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body),
        )
        .await
    }
}
