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
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Forbidden, SignInFailed, TooManyRequests, Unauthorized};
use super::{ApiError, AppState};
use crate::auth::request::{removal_cookie, session_cookie, session_secret};
use crate::auth::{RequestOrigin, SignedIn};
use crate::domain::Timestamp;
use crate::store::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_in, current, sign_out))
}

/// A username and password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// The answer about a session.
#[derive(Serialize, utoipa::ToSchema)]
struct SessionInfo {
    user: User,
    /// Send it as `X-CSRF-Token` with every state-changing call by cookie.
    csrf_token: String,
    expires_at: Timestamp,
}

/// Signs in: sets the session cookie and answers the user and the CSRF
/// token. Attempts are rate-limited.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    request_body(content = Credentials, example = json!({"username": "anouk", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session", body = SessionInfo),
        (status = 400, response = BadRequest),
        (status = 401, response = SignInFailed),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests)
    )
)]
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

/// The current session (to recover the CSRF token after a page load).
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden)
    ),
    security(("session_cookie" = []))
)]
async fn current(signed_in: SignedIn) -> Json<SessionInfo> {
    Json(SessionInfo {
        user: signed_in.session.user,
        csrf_token: signed_in.session.csrf_token,
        expires_at: signed_in.session.expires_at,
    })
}

/// Signs out: ends the session and removes the cookie (204 also without a
/// session).
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    responses(
        (status = 204, description = "Signed out"),
        (status = 403, response = Forbidden)
    ),
    security(("session_cookie" = [], "csrf_token" = []), ())
)]
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
