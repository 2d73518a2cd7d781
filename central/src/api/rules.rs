//! Handlers for deployment rules.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::wire::{Rule, RuleEvaluated, RuleRequest, RuleUpdate};

use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::Shared;
use crate::domain::rules;

pub async fn create(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<RuleRequest>,
) -> Result<(StatusCode, Json<Rule>), ApiError> {
    let rule = c.blocking(move |c| rules::create(c, req)).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

pub async fn list(_: Admin, State(c): Shared) -> Result<Json<Vec<Rule>>, ApiError> {
    Ok(Json(c.blocking(rules::list).await?))
}

pub async fn show(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rule>, ApiError> {
    Ok(Json(c.blocking(move |c| rules::show(c, &id)).await?))
}

pub async fn delete(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    c.blocking(move |c| rules::delete(c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /rules/{id}`: changes what is given and re-evaluates.
pub async fn update(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RuleUpdate>,
) -> Result<Json<Rule>, ApiError> {
    Ok(Json(c.blocking(move |c| rules::update(c, &id, req)).await?))
}

pub async fn enable(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rule>, ApiError> {
    Ok(Json(
        c.blocking(move |c| rules::set_enabled(c, &id, true))
            .await?,
    ))
}

pub async fn disable(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rule>, ApiError> {
    Ok(Json(
        c.blocking(move |c| rules::set_enabled(c, &id, false))
            .await?,
    ))
}

pub async fn reevaluate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RuleEvaluated>, ApiError> {
    Ok(Json(c.blocking(move |c| rules::reevaluate(c, &id)).await?))
}
