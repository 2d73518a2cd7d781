//! Handler of `GET /coverage`.

use axum::extract::State;
use axum::Json;
use sitecast_common::wire::{Coverage, CoverageParams};

use super::error::ApiError;
use super::extract::{Admin, ApiQuery};
use super::Shared;
use crate::domain::coverage;

pub async fn coverage(
    _: Admin,
    State(c): Shared,
    ApiQuery(params): ApiQuery<CoverageParams>,
) -> Result<Json<Coverage>, ApiError> {
    Ok(Json(
        c.blocking(move |c| coverage::report_now(c, params)).await?,
    ))
}
