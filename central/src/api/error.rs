//! `ApiError`: every failure of the HTTP API as a status code and a JSON body
//! `{"error": "..."}` that names the bad field or token. Internal causes are
//! logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sitecast_common::wire::ErrorBody;

use crate::error::CentralError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(what: &str, name: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} '{name}' not found"))
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see central's log)",
        )
    }
}

impl From<CentralError> for ApiError {
    fn from(e: CentralError) -> Self {
        match e {
            CentralError::NotFound { .. } | CentralError::NotFoundIn { .. } => {
                Self::new(StatusCode::NOT_FOUND, e.to_string())
            }
            CentralError::BadEnrollToken | CentralError::SpentEnrollToken(_) => {
                Self::unauthorized(e.to_string())
            }
            CentralError::TooLarge { .. } => Self::too_large(e.to_string()),
            CentralError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            CentralError::IdTaken { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            CentralError::Invalid(m) => Self::bad_request(m),
            other => {
                tracing::error!(error = %other, "request failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
