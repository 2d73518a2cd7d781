//! Handlers for job containers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::wire::{Container, ContainerChanged, ContainerRequest};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::Shared;
use crate::domain::containers;

pub async fn create(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<ContainerRequest>,
) -> Result<(StatusCode, Json<Container>), ApiError> {
    let container = c.blocking(move |c| containers::create(c, req)).await?;
    Ok((StatusCode::CREATED, Json(container)))
}

pub async fn list(_: Admin, State(c): Shared) -> Result<Json<Vec<Container>>, ApiError> {
    Ok(Json(c.blocking(containers::list).await?))
}

pub async fn show(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Container>, ApiError> {
    Ok(Json(c.blocking(move |c| containers::show(c, &id)).await?))
}

pub async fn delete(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| containers::delete(c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn retry(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ContainerChanged>, ApiError> {
    Ok(Json(c.blocking(move |c| containers::retry(c, &id)).await?))
}

pub async fn cancel(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ContainerChanged>, ApiError> {
    Ok(Json(c.blocking(move |c| containers::cancel(c, &id)).await?))
}
