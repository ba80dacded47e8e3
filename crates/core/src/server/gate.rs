//! The viewers' side of admission: asking to join (with the PIN), asking where one stands, and
//! the gate in front of everything that shows the screen.

use std::net::IpAddr;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ServerError;
use super::until_removed::UntilRemoved;
use super::viewer::PeerAddr;
use crate::admission::{Access, Gate, PASS_COOKIE, pass_from_cookies};

/// What a page sends to join: the PIN when the share has one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    pin: Option<String>,
}

fn pass_of(headers: &HeaderMap) -> Option<&str> {
    pass_from_cookies(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    )
}

/// Route layer for whatever shows the screen: only admitted browsers pass, and a request in
/// flight (a long poll, or a frame still being sent) ends at once when its viewer is removed.
pub async fn require_admission(
    State(state): State<AppState>,
    peer: PeerAddr,
    mut request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    let rules = state.share.rules();
    let pass = pass_of(request.headers()).map(str::to_owned);
    let gate = state.share.admission.check(pass.as_deref(), peer.0, &rules);
    if gate.access != Access::Admitted {
        return Err(ServerError::NotAdmitted(gate.access));
    }
    request.extensions_mut().insert(gate);
    let admission = state.share.admission.clone();
    let response = tokio::select! {
        response = next.run(request) => response,
        () = admission.shut_out(pass.clone(), peer.0, rules.clone()) => {
            return Err(ServerError::NotAdmitted(Access::Removed));
        }
    };
    // An answer already under way (a frame of megabytes to a slow viewer) stops too.
    let (parts, body) = response.into_parts();
    let removed = async move { admission.shut_out(pass, peer.0, rules).await };
    Ok(Response::from_parts(
        parts,
        Body::new(UntilRemoved::new(body, removed)),
    ))
}

/// `GET access`: where this browser stands (admitted, needs the PIN, waiting, removed).
pub async fn access(State(state): State<AppState>, peer: PeerAddr, headers: HeaderMap) -> Response {
    let gate = state
        .share
        .admission
        .check(pass_of(&headers), peer.0, &state.share.rules());
    no_store(Json(json!({ "access": gate.access })).into_response())
}

/// `POST join` (`{"pin": "…"}` when the share has one): gives the browser its pass.
pub async fn join(
    State(state): State<AppState>,
    peer: PeerAddr,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ServerError> {
    let request: JoinRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JoinRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ServerError::BadRequest(format!("not a join request: {error}")))?
    };
    let browser = headers
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .unwrap_or("");
    let joined = state.share.admission.join(
        pass_of(&headers),
        peer.0,
        browser,
        request.pin.as_deref(),
        &state.share.rules(),
    )?;
    if joined.access == Access::Waiting && joined.new_pass.is_some() {
        tracing::info!(address = %display_address(peer.0), "a viewer asks to be let in");
    }
    let mut response = no_store(Json(json!({ "access": joined.access })).into_response());
    if let Some(pass) = joined.new_pass {
        // Scoped to this share's path: another share (another token) never sees it. (The
        // original URI: inside the nested routes the plain one has lost the `/s/<token>`.)
        let path = uri.path().strip_suffix("join").unwrap_or("/");
        let cookie = format!("{PASS_COOKIE}={pass}; Path={path}; HttpOnly; SameSite=Strict");
        let cookie = HeaderValue::from_str(&cookie)
            .map_err(|error| ServerError::Internal(error.to_string()))?;
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The admitted request's pass handle, for counting it as one viewer.
pub fn handle_of(request_gate: Option<&Gate>) -> Option<&str> {
    request_gate.and_then(|gate| gate.handle.as_deref())
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn display_address(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}
