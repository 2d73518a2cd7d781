//! Handlers for packages: upload, list, show, the signed info, delete,
//! activation, assignment, statistics and validation.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use sitecast_common::wire::{
    ActivationRequest, Assigned, AssignmentRequest, Deactivated, Package, Stats, UploadParams,
    ValidateRequest, Validated,
};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use super::{envelope_response, Shared};
use crate::domain::{activation, containers, packages, records, stats};

pub async fn create(
    _: Admin,
    State(c): Shared,
    ApiQuery(params): ApiQuery<UploadParams>,
    body: Body,
) -> Result<(StatusCode, Json<Package>), ApiError> {
    let package = packages::create(&c, params, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(package)))
}

pub async fn list(_: Admin, State(c): Shared) -> Result<Json<Vec<Package>>, ApiError> {
    Ok(Json(c.blocking(packages::list).await?))
}

pub async fn show(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Package>, ApiError> {
    Ok(Json(c.blocking(move |c| packages::show(c, &id)).await?))
}

pub async fn delete(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| packages::delete(c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn info(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let package = c.blocking(move |c| records::package(c, &id)).await?;
    Ok(envelope_response(
        packages::envelope(&c, &package.id).await?,
    ))
}

pub async fn activate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ActivationRequest>,
) -> Result<Json<Package>, ApiError> {
    Ok(Json(
        c.blocking(move |c| activation::activate(c, &id, req))
            .await?,
    ))
}

pub async fn deactivate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ActivationRequest>,
) -> Result<Json<Deactivated>, ApiError> {
    Ok(Json(
        c.blocking(move |c| activation::deactivate(c, &id, req))
            .await?,
    ))
}

/// `package assign`: shorthand for a job container with defaults.
pub async fn assign(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AssignmentRequest>,
) -> Result<Json<Assigned>, ApiError> {
    Ok(Json(
        c.blocking(move |c| containers::assign(c, &id, req)).await?,
    ))
}

pub async fn stats(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Stats>, ApiError> {
    Ok(Json(c.blocking(move |c| stats::of_package(c, &id)).await?))
}

pub async fn validate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Json<Validated>, ApiError> {
    Ok(Json(
        c.blocking(move |c| stats::validate(c, &id, req)).await?,
    ))
}
