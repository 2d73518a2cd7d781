//! Handlers of the agent protocol: enrollment, polling, central as the source
//! of last resort (infos and fragments), status reports and relay problems.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sitecast_common::wire::{
    ComputerStat, EnrollRequest, EnrollResponse, PollRequest, PollResponse, ProblemReport,
    StatusReport,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::error::ApiError;
use super::extract::{Agent, ApiJson, ApiPath, Peer};
use super::{envelope_response, Shared};
use crate::domain::{packages, polling, relays};
use crate::error::CentralError;

pub async fn enroll(
    State(c): Shared,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let enrolled = c.blocking(move |c| polling::enroll(c, req)).await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

pub async fn poll(
    Agent(me): Agent,
    State(c): Shared,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<PollRequest>,
) -> Result<Json<PollResponse>, ApiError> {
    Ok(Json(
        c.blocking(move |c| polling::poll(c, &me, peer, req))
            .await?,
    ))
}

pub async fn info(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let package = c
        .blocking(move |c| polling::assigned_package(c, &me, &id))
        .await?;
    Ok(envelope_response(
        packages::envelope(&c, &package.id).await?,
    ))
}

pub async fn fragment(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath((id, n)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (path, offset, len) = c
        .blocking(move |c| polling::fragment(c, &me, &id, &n))
        .await?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(CentralError::io(&path))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(CentralError::io(&path))?;
    c.fragment_bytes_to_agents
        .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), 64 << 10));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

pub async fn status(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(report): ApiJson<StatusReport>,
) -> Result<Json<ComputerStat>, ApiError> {
    Ok(Json(
        c.blocking(move |c| polling::report(c, &me, &id, report))
            .await?,
    ))
}

/// An agent gave up on a relay: central counts it on the relay's record.
pub async fn relay_problem(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(report): ApiJson<ProblemReport>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| relays::report_problem(c, &me, &id, report))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
