//! One match from a failure to an HTTP status, with a JSON body that says what went wrong.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Error;
use crate::admission::{Access, JoinRefusal};
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
    #[error("too many frame requests at once from this viewer or address; try again in a moment")]
    TooManyInFlight,
    #[error("this share has as many viewers as it admits")]
    ShareFull,
    #[error("the request took too long")]
    Timeout,
    /// This browser may not watch (yet): the page says why and what to do.
    #[error("{}", not_admitted_text(*.0))]
    NotAdmitted(Access),
    #[error(transparent)]
    Join(#[from] JoinRefusal),
}

fn not_admitted_text(access: Access) -> &'static str {
    match access {
        Access::NeedPin => "this share needs its PIN",
        Access::NeedJoin => "ask to join first",
        Access::Waiting => "waiting for the presenter to let you in",
        Access::Removed => "the presenter removed this viewer",
        Access::Admitted => "admitted",
    }
}

impl ServerError {
    fn status(&self) -> StatusCode {
        match self {
            ServerError::NotFound => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::Rejected { status, .. } => *status,
            ServerError::NoFrameYet | ServerError::SourceLost(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Engine(Error::Settings(_))
            | ServerError::Engine(Error::Capture(
                CaptureError::UnknownMonitor { .. } | CaptureError::UnknownWindow { .. },
            )) => StatusCode::UNPROCESSABLE_ENTITY,
            ServerError::Engine(Error::DisplayNotAnswering) => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Engine(_) | ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServerError::UriTooLong => StatusCode::URI_TOO_LONG,
            ServerError::BadHost => StatusCode::BAD_REQUEST,
            ServerError::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            ServerError::ControlFromElsewhere | ServerError::CrossSite => StatusCode::FORBIDDEN,
            ServerError::Overloaded | ServerError::ShareFull => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ServerError::TooManyInFlight => StatusCode::TOO_MANY_REQUESTS,
            ServerError::NotAdmitted(Access::NeedPin) => StatusCode::UNAUTHORIZED,
            ServerError::NotAdmitted(_) => StatusCode::FORBIDDEN,
            ServerError::Join(JoinRefusal::PinNeeded) => StatusCode::UNAUTHORIZED,
            ServerError::Join(JoinRefusal::WrongPin | JoinRefusal::Removed) => {
                StatusCode::FORBIDDEN
            }
            ServerError::Join(
                JoinRefusal::TooManyTries { .. }
                | JoinRefusal::ShareUnderAttack { .. }
                | JoinRefusal::TooManyJoins { .. },
            ) => StatusCode::TOO_MANY_REQUESTS,
            ServerError::Join(JoinRefusal::Full) => StatusCode::SERVICE_UNAVAILABLE,
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
                    | ServerError::Join(JoinRefusal::Full)
                    | ServerError::NoFrameYet
                    | ServerError::SourceLost(_)
            )
        {
            tracing::warn!(error = %self, "request failed");
        }
        // Refusals of a viewer also say where it stands, for the page to act on.
        let access = match &self {
            ServerError::NotAdmitted(access) => Some(*access),
            ServerError::Join(
                JoinRefusal::PinNeeded
                | JoinRefusal::WrongPin
                | JoinRefusal::TooManyTries { .. }
                | JoinRefusal::ShareUnderAttack { .. },
            ) => Some(Access::NeedPin),
            ServerError::Join(JoinRefusal::Removed) => Some(Access::Removed),
            _ => None,
        };
        let full = matches!(
            self,
            ServerError::ShareFull | ServerError::Join(JoinRefusal::Full)
        );
        let body = match access {
            Some(access) => json!({ "error": self.to_string(), "access": access }),
            // The page tells "the share is full" from "the server is busy".
            None if full => json!({ "error": self.to_string(), "full": true }),
            None => json!({ "error": self.to_string() }),
        };
        let retry_after = match &self {
            ServerError::Join(
                JoinRefusal::TooManyTries { retry_after }
                | JoinRefusal::ShareUnderAttack { retry_after }
                | JoinRefusal::TooManyJoins { retry_after },
            ) => Some(retry_after.as_secs().max(1)),
            ServerError::TooManyInFlight => Some(1),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
