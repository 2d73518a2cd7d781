//! Handlers for computers (list, show, tags, approval, deletion, removing an
//! assignment) and the enroll tokens that let them in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::wire::{
    Computer, ComputerDetail, CreatedEnrollToken, EnrollToken, EnrollTokenRequest, TagsRequest,
};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::Shared;
use crate::domain::{computers, enroll_tokens};

pub async fn list(_: Admin, State(c): Shared) -> Result<Json<Vec<Computer>>, ApiError> {
    Ok(Json(c.blocking(computers::list).await?))
}

pub async fn show(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ComputerDetail>, ApiError> {
    Ok(Json(c.blocking(move |c| computers::show(c, &id)).await?))
}

pub async fn approve(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Computer>, ApiError> {
    Ok(Json(c.blocking(move |c| computers::approve(c, &id)).await?))
}

pub async fn set_tags(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TagsRequest>,
) -> Result<Json<Computer>, ApiError> {
    Ok(Json(
        c.blocking(move |c| computers::set_tags(c, &id, req))
            .await?,
    ))
}

pub async fn delete(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| computers::delete(c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_assignment(
    _: Admin,
    State(c): Shared,
    ApiPath((computer, package)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| computers::remove_assignment(c, &computer, &package))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_enroll_token(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<EnrollTokenRequest>,
) -> Result<(StatusCode, Json<CreatedEnrollToken>), ApiError> {
    let created = c.blocking(move |c| enroll_tokens::create(c, req)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_enroll_tokens(
    _: Admin,
    State(c): Shared,
) -> Result<Json<Vec<EnrollToken>>, ApiError> {
    Ok(Json(c.blocking(enroll_tokens::list).await?))
}

pub async fn delete_enroll_token(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| enroll_tokens::delete(c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
