//! Request extractors: bearer-token roles, and JSON bodies and queries whose
//! errors are JSON that names the bad field.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sitecast_common::ids::ComputerId;

use super::error::ApiError;
use crate::state::Central;
use crate::store::TokenOwner;
use crate::tokens;

/// The caller presented the admin token.
pub struct Admin;

/// The caller is the agent of this computer.
pub struct Agent(pub ComputerId);

/// The address the connection came from, as the server saw it (`None` when the
/// router is called without a socket, as tests do). Never a header: a client
/// cannot choose it.
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        // The auth scheme is case-insensitive (RFC 9110 §11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not 'Bearer <token>'"))
}

/// Who holds this token, if anyone.
enum Role {
    Admin,
    Enroll,
    Owner(TokenOwner),
}

fn role(state: &Central, token: &str) -> Result<Option<Role>, ApiError> {
    let digest = tokens::digest(token);
    if digest == state.admin_token {
        return Ok(Some(Role::Admin));
    }
    if digest == state.enroll_token {
        return Ok(Some(Role::Enroll));
    }
    Ok(state.store.token_owner(digest)?.map(Role::Owner))
}

impl FromRequestParts<Arc<Central>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Central>) -> Result<Self, ApiError> {
        match role(state, bearer(parts)?)? {
            Some(Role::Admin) => Ok(Admin),
            Some(_) => Err(ApiError::forbidden("this route needs the admin token")),
            None => Err(ApiError::unauthorized("unknown token")),
        }
    }
}

impl FromRequestParts<Arc<Central>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Central>) -> Result<Self, ApiError> {
        match role(state, bearer(parts)?)? {
            Some(Role::Owner(TokenOwner::Agent(id))) => Ok(Agent(id)),
            Some(_) => Err(ApiError::forbidden("this route needs an agent token")),
            None => Err(ApiError::unauthorized("unknown token")),
        }
    }
}

/// A JSON body, limited to `max_json_body` bytes.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Central>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Central>) -> Result<Self, ApiError> {
        let limit = state.config.max_json_body.bytes();
        let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
        let bytes = axum::body::to_bytes(req.into_body(), limit_usize)
            .await
            .map_err(|e| {
                let inner = e.into_inner();
                if inner.is::<http_body_util::LengthLimitError>() {
                    ApiError::too_large(format!("the request body is larger than {limit} bytes"))
                } else {
                    ApiError::bad_request(format!("the request body could not be read: {inner}"))
                }
            })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                ApiError::bad_request(format!("bad request body: {}", e.inner()))
            } else {
                ApiError::bad_request(format!("bad {path}: {}", e.inner()))
            }
        })?;
        // One JSON value and nothing after it: trailing data is a malformed request.
        de.end()
            .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?;
        Ok(ApiJson(value))
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))
    }
}

/// Path parameters, whose rejections are JSON like every other error.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
    }
}
