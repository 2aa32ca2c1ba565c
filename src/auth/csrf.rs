//! CSRF protection, as one middleware over the whole router so that no
//! handler can forget it.
//!
//! Every state-changing request (any method but GET, HEAD, OPTIONS, TRACE):
//! - sent by a browser from another site (`Sec-Fetch-Site: cross-site` or
//!   `same-site`) is refused, signed in or not — this also stops login CSRF,
//!   where no session exists yet;
//! - carrying a valid session cookie and no bearer token must carry the
//!   session's CSRF token, in the `X-CSRF-Token` header or, for
//!   `application/x-www-form-urlencoded` forms, the `csrf_token` field.
//!   Otherwise: 403 `urn:thuiswacht:problem:csrf`.
//!
//! Signing in (`POST /login`, `POST /api/v1/session`) needs no token: there
//! is no session yet, and a stale cookie must not block a new sign-in.
//! Bearer-token requests need none either: a browser never adds an
//! `Authorization` header to a cross-site request by itself.
//!
//! The session found here is handed to the [`super::Caller`] extractor in
//! the request's extensions, so it is looked up once. SameSite=Strict on
//! the cookie already keeps other sites from sending it; the token is the
//! second, independent line.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::caller::SessionLookup;
use super::request::{bearer_secret, session_secret};
use crate::api::{ApiError, AppState};

/// The header scripts send the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field forms send the token in.
pub const CSRF_FORM_FIELD: &str = "csrf_token";
/// Largest form body read to find the token.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Paths whose POST signs in: no session and so no token yet.
const SIGN_IN_PATHS: &[&str] = &["/login", "/api/v1/session"];

/// Returns whether `given` equals `expected`, in time that does not depend
/// on where they first differ.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The middleware; see the module docs.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_state_changing(request.method()) {
        return next.run(request).await;
    }
    let from_other_site = request
        .headers()
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|site| matches!(site, "cross-site" | "same-site"));
    if from_other_site {
        state.metrics.security_event("csrf_refused");
        return ApiError::Csrf.into_response();
    }
    let signing_in =
        request.method() == Method::POST && SIGN_IN_PATHS.contains(&request.uri().path());
    if signing_in || bearer_secret(request.headers()).is_some() {
        return next.run(request).await;
    }
    let Some(secret) = session_secret(request.headers()) else {
        return next.run(request).await;
    };
    let session = match super::session::active_session(&state, &secret).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            let mut request = request;
            request.extensions_mut().insert(SessionLookup::Ended);
            return next.run(request).await;
        }
        Err(error) => return error.into_response(),
    };
    let (request, given) = match csrf_token_of(request).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    if !given.is_some_and(|given| tokens_match(&session.csrf_token, &given)) {
        state.metrics.security_event("csrf_refused");
        return ApiError::Csrf.into_response();
    }
    let mut request = request;
    request
        .extensions_mut()
        .insert(SessionLookup::Active(Box::new(session)));
    next.run(request).await
}

/// Returns the request (rebuilt when its body was read) and the token it
/// carries in the header or, for urlencoded forms, the form field.
async fn csrf_token_of(request: Request) -> Result<(Request, Option<String>), ApiError> {
    if let Some(token) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        let token = token.to_owned();
        return Ok((request, Some(token)));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest(format!("form larger than {MAX_FORM_BYTES} bytes")))?;
    let token = form_field(&bytes, CSRF_FORM_FIELD);
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// Returns the first value of `name` in an urlencoded form.
fn form_field(form: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(form)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal_and_present() {
        assert!(tokens_match("abc123", "abc123"));
        assert!(!tokens_match("abc123", "abc124"));
        assert!(!tokens_match("abc123", "abc12"));
        assert!(!tokens_match("abc123", ""));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn only_safe_methods_skip_the_check() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_state_changing(&method));
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_state_changing(&method));
        }
    }

    #[test]
    fn the_form_field_is_found_and_decoded() {
        let form = b"note=a%26b&csrf_token=t%2Bk&csrf_token=second";
        assert_eq!(form_field(form, "csrf_token").as_deref(), Some("t+k"));
        assert_eq!(form_field(b"note=x", "csrf_token"), None);
    }
}
