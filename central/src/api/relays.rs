//! Handlers for sites, relays and central's status.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::wire::{CentralStatus, Relay, RelayCreated, RelayRequest, Site, SiteRequest};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::Shared;
use crate::domain::relays;

pub async fn add_site(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<(StatusCode, Json<Site>), ApiError> {
    let site = c.blocking(move |c| relays::add_site(c, req)).await?;
    Ok((StatusCode::CREATED, Json(site)))
}

pub async fn list_sites(_: Admin, State(c): Shared) -> Result<Json<Vec<Site>>, ApiError> {
    Ok(Json(c.blocking(relays::list_sites).await?))
}

pub async fn add_relay(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<RelayRequest>,
) -> Result<(StatusCode, Json<RelayCreated>), ApiError> {
    let created = c.blocking(move |c| relays::add_relay(c, req)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_relays(_: Admin, State(c): Shared) -> Result<Json<Vec<Relay>>, ApiError> {
    Ok(Json(c.blocking(relays::list).await?))
}

pub async fn delete_relay(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| relays::delete(c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn status(_: Admin, State(c): Shared) -> Json<CentralStatus> {
    Json(relays::status(&c))
}
