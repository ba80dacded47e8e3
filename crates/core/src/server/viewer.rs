//! The viewers' routes: the page, the latest frame in PNG or JPEG, and the share's status.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::error::ServerError;
use crate::encode::Format;
use crate::state::Phase;

/// The viewer page, embedded in the binary.
const VIEWER_PAGE: &str = include_str!("../../web/viewer.html");

/// Browsers and proxies must ask again every time (a frame is stale a moment later), but may
/// revalidate with the ETag to get a cheap 304.
const FRAME_CACHE_CONTROL: &str = "no-cache, private";

pub async fn page() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        VIEWER_PAGE,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self' blob:; connect-src 'self'; \
             style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `/s/<token>` without the slash: the page's relative URLs need it.
pub async fn add_slash(Path(token): Path<String>) -> Redirect {
    Redirect::permanent(&format!("{token}/"))
}

pub async fn png(
    State(state): State<AppState>,
    peer: PeerAddr,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    serve_frame(state, Format::Png, peer, &query, &headers).await
}

pub async fn jpeg(
    State(state): State<AppState>,
    peer: PeerAddr,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    serve_frame(state, Format::Jpeg, peer, &query, &headers).await
}

pub async fn status(State(state): State<AppState>) -> Response {
    let mut response = Json(state.share.status()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Hands out the latest frame. Query parameters other than these are ignored (`?random=` cache
/// busters): `after=N` waits for a frame other than number N (a long poll, answered 204 when
/// nothing changes); `v=ID` names the viewer so one tab counts once.
async fn serve_frame(
    state: AppState,
    format: Format,
    peer: PeerAddr,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ServerError> {
    let after = query
        .get("after")
        .map(|after| after.parse::<u64>())
        .transpose()
        .map_err(|_| ServerError::BadRequest("`after` must be a frame number".to_owned()))?;
    let visit = state
        .share
        .viewers
        .visit(viewer_key(query.get("v"), peer.0), peer.0);

    let Some(frame) = state.share.frame_for_viewer(after).await else {
        if after.is_some() {
            return Ok(no_new_frame());
        }
        let capture = state.share.capture.borrow().clone();
        return Err(match (capture.phase, capture.error) {
            (Phase::SourceLost, Some(error)) => ServerError::SourceLost(error),
            _ => ServerError::NoFrameYet,
        });
    };

    let etag = format!("\"{}-{}\"", state.epoch, frame.seq());
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = match frame.encoded_if_ready(format) {
            Some(ready) => ready,
            None => {
                let frame = frame.clone();
                tokio::task::spawn_blocking(move || frame.encoded(format))
                    .await
                    .map_err(|error| ServerError::Internal(error.to_string()))?
            }
        }
        .map_err(|error| ServerError::Internal(error.to_string()))?;
        visit.served(bytes.len());
        let mut response = Response::new(Body::from(bytes));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(FRAME_CACHE_CONTROL),
    );
    for (name, value) in [
        (header::ETAG, etag),
        (
            "x-frame-seq".parse().map_err(internal)?,
            frame.seq().to_string(),
        ),
        (
            "x-frame-width".parse().map_err(internal)?,
            frame.width().to_string(),
        ),
        (
            "x-frame-height".parse().map_err(internal)?,
            frame.height().to_string(),
        ),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).map_err(internal)?);
    }
    Ok(response)
}

fn internal(error: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(error.to_string())
}

fn no_new_frame() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether `If-None-Match` names `etag` (weak or strong, in a list, or `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// A viewer is its page's id when it sends one, else its address.
fn viewer_key(id: Option<&String>, address: Option<IpAddr>) -> String {
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            format!("id:{id}")
        }
        _ => address.map_or_else(|| "unknown".to_owned(), |ip| format!("ip:{ip}")),
    }
}

/// The client's address when the server knows it (not in `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_handles_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x-1\", W/\"ab-7\""),
        );
        assert!(if_none_match(&headers, "\"ab-7\""));
        assert!(!if_none_match(&headers, "\"ab-8\""));
        assert!(!if_none_match(&HeaderMap::new(), "\"ab-7\""));
    }

    #[test]
    fn viewer_key_prefers_a_sane_page_id() {
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        assert_eq!(viewer_key(Some(&"tab-42".to_owned()), ip), "id:tab-42");
        assert_eq!(viewer_key(Some(&"<script>".to_owned()), ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(None, ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(None, None), "unknown");
    }
}
