//! `/api/v1/session`: signing in and out for scripts and pages.
//!
//! - `POST` with `{"username", "password"}` sets the session cookie and
//!   answers the user and the CSRF token (401 `sign-in-failed`, 429
//!   `too-many-requests` with `Retry-After`).
//! - `GET` answers the same for the current session (to recover the CSRF
//!   token after a page load).
//! - `DELETE` ends the session (it needs the CSRF token like any change)
//!   and removes the cookie; 204 also when there was no session.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::auth::request::{removal_cookie, session_cookie, session_secret};
use crate::auth::{RequestOrigin, SignedIn};
use crate::domain::Timestamp;
use crate::store::User;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/session",
        post(sign_in).get(current).delete(sign_out),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// The answer about a session.
#[derive(Serialize)]
struct SessionInfo {
    user: User,
    csrf_token: String,
    expires_at: Timestamp,
}

async fn sign_in(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
    body: Result<Json<Credentials>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(credentials) =
        body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let signed_in = crate::auth::session::sign_in(
        &state,
        &credentials.username,
        &credentials.password,
        &origin,
    )
    .await?;
    if let Some(previous) = session_secret(&headers) {
        crate::auth::session::sign_out(&state, &previous, &origin).await?;
    }
    let mut response = Json(SessionInfo {
        user: signed_in.user,
        csrf_token: signed_in.csrf_token,
        expires_at: signed_in.expires_at,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&signed_in.secret, origin.secure_cookies(&state.settings)),
    );
    Ok(response)
}

async fn current(signed_in: SignedIn) -> Json<SessionInfo> {
    Json(SessionInfo {
        user: signed_in.session.user,
        csrf_token: signed_in.session.csrf_token,
        expires_at: signed_in.session.expires_at,
    })
}

async fn sign_out(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_secret(&headers) {
        crate::auth::session::sign_out(&state, &secret, &origin).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        removal_cookie(origin.secure_cookies(&state.settings)),
    );
    Ok(response)
}
