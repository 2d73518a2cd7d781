//! Handlers for computer groups and package groups.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::wire::{
    Group, GroupRequest, MembersRequest, PackageGroup, PackageGroupRequest, PackageMembersRequest,
};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::Shared;
use crate::domain::groups;

pub async fn create_group(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<GroupRequest>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let group = c.blocking(move |c| groups::create_group(c, req)).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

pub async fn list_groups(_: Admin, State(c): Shared) -> Result<Json<Vec<Group>>, ApiError> {
    Ok(Json(c.blocking(groups::list_groups).await?))
}

pub async fn show_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Group>, ApiError> {
    Ok(Json(
        c.blocking(move |c| groups::show_group(c, &name)).await?,
    ))
}

pub async fn delete_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| groups::delete_group(c, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_members(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<MembersRequest>,
) -> Result<Json<Group>, ApiError> {
    Ok(Json(
        c.blocking(move |c| groups::add_members(c, &name, req))
            .await?,
    ))
}

pub async fn remove_member(
    _: Admin,
    State(c): Shared,
    ApiPath((name, computer)): ApiPath<(String, String)>,
) -> Result<Json<Group>, ApiError> {
    Ok(Json(
        c.blocking(move |c| groups::remove_member(c, &name, &computer))
            .await?,
    ))
}

pub async fn create_package_group(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<PackageGroupRequest>,
) -> Result<(StatusCode, Json<PackageGroup>), ApiError> {
    let group = c
        .blocking(move |c| groups::create_package_group(c, req))
        .await?;
    Ok((StatusCode::CREATED, Json(group)))
}

pub async fn list_package_groups(
    _: Admin,
    State(c): Shared,
) -> Result<Json<Vec<PackageGroup>>, ApiError> {
    Ok(Json(c.blocking(groups::list_package_groups).await?))
}

pub async fn show_package_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PackageGroup>, ApiError> {
    Ok(Json(
        c.blocking(move |c| groups::show_package_group(c, &name))
            .await?,
    ))
}

pub async fn delete_package_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| groups::delete_package_group(c, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_packages(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PackageMembersRequest>,
) -> Result<Json<PackageGroup>, ApiError> {
    Ok(Json(
        c.blocking(move |c| groups::add_packages(c, &name, req))
            .await?,
    ))
}

pub async fn remove_package(
    _: Admin,
    State(c): Shared,
    ApiPath((name, package)): ApiPath<(String, String)>,
) -> Result<Json<PackageGroup>, ApiError> {
    Ok(Json(
        c.blocking(move |c| groups::remove_package(c, &name, &package))
            .await?,
    ))
}
