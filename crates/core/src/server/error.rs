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
    /// An extractor's refusal, with the status it chose.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("no frame yet: the screen is still being captured")]
    NoFrameYet,
    #[error("the screen cannot be captured: {0}")]
    SourceLost(String),
    #[error(transparent)]
    Engine(#[from] Error),
    #[error("{0}")]
    Internal(String),
    #[error("the request's address is too long")]
    UriTooLong,
    #[error("the request must name this server in a valid Host header")]
    BadHost,
    #[error("this server does not answer to that host name")]
    MisdirectedRequest,
    #[error("control is only served to this machine")]
    ControlFromElsewhere,
    #[error("a page of another site may not change this share")]
    CrossSite,
    #[error("the server is busy; try again in a moment")]
    Overloaded,
    #[error("this share has as many viewers as it admits")]
    ShareFull,
    #[error("the request took too long")]
    Timeout,
}

impl ServerError {
    fn status(&self) -> StatusCode {
        match self {
            ServerError::NotFound => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::Rejected { status, .. } => *status,
            ServerError::NoFrameYet | ServerError::SourceLost(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Engine(Error::Settings(_))
            | ServerError::Engine(Error::Capture(CaptureError::UnknownMonitor { .. })) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ServerError::Engine(_) | ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServerError::UriTooLong => StatusCode::URI_TOO_LONG,
            ServerError::BadHost => StatusCode::BAD_REQUEST,
            ServerError::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            ServerError::ControlFromElsewhere | ServerError::CrossSite => StatusCode::FORBIDDEN,
            ServerError::Overloaded | ServerError::ShareFull => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Refusals a flood can cause (busy, full) are counted, not logged one by one.
        if status.is_server_error()
            && !matches!(
                self,
                ServerError::Overloaded
                    | ServerError::ShareFull
                    | ServerError::NoFrameYet
                    | ServerError::SourceLost(_)
            )
        {
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
