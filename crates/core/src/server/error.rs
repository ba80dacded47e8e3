//! One match from a failure to an HTTP status, with a JSON body that says what went wrong.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Error;
use crate::capture::CaptureError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("no frame yet: the screen is still being captured")]
    NoFrameYet,
    #[error("the screen cannot be captured: {0}")]
    SourceLost(String),
    #[error(transparent)]
    Engine(#[from] Error),
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    fn status(&self) -> StatusCode {
        match self {
            ServerError::NotFound => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::NoFrameYet | ServerError::SourceLost(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Engine(Error::Settings(_))
            | ServerError::Engine(Error::Capture(CaptureError::UnknownMonitor { .. })) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ServerError::Engine(_) | ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
