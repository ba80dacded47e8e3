//! Checks every request passes before any route sees it: a URI of sane length, a `Host` that
//! names this server, and control only from this machine.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ServerError;
use super::host::HostRefusal;

pub async fn check_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |path| path.as_str().len());
    if uri_bytes > state.limits.max_uri_bytes {
        return Err(ServerError::UriTooLong);
    }
    // An absolute-form request line (`GET http://host/ HTTP/1.1`) names the host itself.
    let host = match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request
            .headers()
            .get(header::HOST)
            .map(|host| host.to_str().map_err(|_| ServerError::BadHost))
            .transpose()?,
    };
    let host = host.ok_or(ServerError::BadHost)?;
    state.hosts.check(host).map_err(|refusal| match refusal {
        HostRefusal::Malformed => ServerError::BadHost,
        HostRefusal::NotThisServer => ServerError::MisdirectedRequest,
    })?;
    let changes_something = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes_something && !same_origin(request.headers().get(header::ORIGIN), host) {
        return Err(ServerError::CrossSite);
    }
    if request.uri().path().starts_with("/control/") {
        // The control URL is printed in a terminal that is often on the shared screen itself:
        // anyone who reads it must still be at this machine to use it.
        let from_this_machine = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback())
            && !relayed(request.headers());
        if !from_this_machine {
            return Err(ServerError::ControlFromElsewhere);
        }
    }
    Ok(next.run(request).await)
}

/// Whether a proxy says it passed the request on for someone else: a reverse proxy on this
/// machine connects from loopback, but the client it speaks for may be anywhere.
fn relayed(headers: &axum::http::HeaderMap) -> bool {
    ["forwarded", "x-forwarded-for", "x-real-ip"]
        .into_iter()
        .any(|name| headers.contains_key(name))
}

/// Whether a request that changes something came from a page of this server (or from no page at
/// all: curl and other tools send no `Origin`).
fn same_origin(origin: Option<&HeaderValue>, host: &str) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    origin
        .to_str()
        .ok()
        .and_then(|origin| origin.strip_prefix("http://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_a_proxy_passed_on_is_relayed() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(!relayed(&headers));
        headers.insert("x-forwarded-for", HeaderValue::from_static("192.168.1.20"));
        assert!(relayed(&headers));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("forwarded", HeaderValue::from_static("for=192.168.1.20"));
        assert!(relayed(&headers));
    }

    #[test]
    fn only_pages_of_this_server_may_change_things() {
        let host = "127.0.0.1:5000";
        assert!(same_origin(None, host));
        let origin = |value| HeaderValue::from_static(value);
        assert!(same_origin(Some(&origin("http://127.0.0.1:5000")), host));
        assert!(!same_origin(Some(&origin("http://attacker.example")), host));
        assert!(!same_origin(Some(&origin("http://127.0.0.1:5001")), host));
        assert!(!same_origin(Some(&origin("null")), host));
    }
}
