//! Who may see what: the viewers' token and the presenter's control secret are capabilities
//! carried in the URL. A wrong one gets the same 404 as a path that does not exist.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ServerError;

/// The secrets of one share.
#[derive(Clone)]
pub struct Access {
    viewer_token: String,
    control_secret: String,
    /// Also serve viewers without the token, at the root.
    pub open: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log the secrets themselves.
        f.debug_struct("Access")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Fresh random secrets (128 bits each).
    pub fn generate(open: bool) -> Result<Self, getrandom::Error> {
        Ok(Self {
            viewer_token: random_token()?,
            control_secret: random_token()?,
            open,
        })
    }

    /// The viewers' page, relative to the server root, with a trailing slash so that the
    /// page's relative URLs carry the token.
    pub fn viewer_path(&self) -> String {
        format!("/s/{}/", self.viewer_token)
    }

    /// The presenter's control root.
    pub fn control_path(&self) -> String {
        format!("/control/{}/", self.control_secret)
    }

    fn is_viewer_token(&self, candidate: &str) -> bool {
        constant_time_eq(candidate, &self.viewer_token)
    }

    fn is_control_secret(&self, candidate: &str) -> bool {
        constant_time_eq(candidate, &self.control_secret)
    }
}

/// 128 random bits as 32 lowercase hex digits: safe in any URL and easy to read aloud.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Compares without an early exit, so response time does not reveal how much of a guess was right.
fn constant_time_eq(candidate: &str, secret: &str) -> bool {
    // Lengths are public (every token has the same one); contents are compared in constant time.
    candidate.len() == secret.len() && bool::from(candidate.as_bytes().ct_eq(secret.as_bytes()))
}

/// One path parameter, when the path decoded at all.
fn param(
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    name: &str,
) -> Option<String> {
    params.ok().and_then(|Path(mut params)| params.remove(name))
}

/// Route layer for `/s/{token}/…`.
pub async fn require_viewer_token(
    State(state): State<AppState>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    // A token that does not even decode is as wrong as any other.
    if param(params, "token").is_some_and(|token| state.access.is_viewer_token(&token)) {
        Ok(next.run(request).await)
    } else {
        Err(ServerError::NotFound)
    }
}

/// Route layer for `/control/{secret}/…`.
pub async fn require_control_secret(
    State(state): State<AppState>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    if param(params, "secret").is_some_and(|secret| state.access.is_control_secret(&secret)) {
        Ok(next.run(request).await)
    } else {
        Err(ServerError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_differ() {
        let a = random_token().expect("randomness");
        let b = random_token().expect("randomness");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn viewer_and_control_secrets_are_distinct() {
        let access = Access::generate(false).expect("randomness");
        assert_ne!(access.viewer_path(), access.control_path());
        let token = access
            .viewer_path()
            .trim_matches('/')
            .trim_start_matches("s/")
            .to_owned();
        assert!(access.is_viewer_token(&token));
        assert!(!access.is_control_secret(&token));
    }

    #[test]
    fn comparison_rejects_prefixes_and_near_misses() {
        assert!(constant_time_eq("abcd", "abcd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("abce", "abcd"));
        assert!(!constant_time_eq("", "abcd"));
    }
}
