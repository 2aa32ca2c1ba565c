//! API errors as RFC 9457 problem details, each with a stable `type`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Every way an API request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthorized,
    /// A session cookie was sent but its session has ended (expired,
    /// idle too long, signed out or revoked).
    #[error("the session has ended; sign in again")]
    SessionExpired,
    /// Unknown username, wrong password or a disabled account: one answer
    /// for all three, so that usernames cannot be probed.
    #[error("unknown username or wrong password")]
    SignInFailed,
    /// Too many sign-in attempts; retry after this many seconds.
    #[error("too many sign-in attempts; try again later")]
    TooManyRequests(u64),
    #[error("not allowed for this caller")]
    Forbidden,
    /// The proposer of a personal threshold tried to approve it: a second
    /// coordinator must.
    #[error("a second coordinator must approve this; nobody approves their own proposal")]
    FourEyes,
    /// A state-changing request by cookie without the session's CSRF token,
    /// or sent from another site.
    #[error("missing or wrong CSRF token")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// No route serves the path (the router's fallback), told apart from a
    /// resource that does not exist.
    #[error("no such route")]
    NoSuchRoute,
    #[error("{0}")]
    BadRequest(String),
    /// Values that cannot be accepted, each problem listed (`problems`).
    #[error("the values cannot be accepted")]
    Invalid(Vec<String>),
    #[error("payload too large")]
    PayloadTooLarge(serde_json::Value),
    #[error("nothing in the payload could be stored")]
    Unprocessable(serde_json::Value),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Every problem `type` the API answers with: the variants' and the
/// alert actions' 409 `conflict`. The OpenAPI document lists them.
pub const PROBLEM_TYPES: [&str; 15] = [
    "urn:thuiswacht:problem:unauthorized",
    "urn:thuiswacht:problem:session-expired",
    "urn:thuiswacht:problem:sign-in-failed",
    "urn:thuiswacht:problem:too-many-requests",
    "urn:thuiswacht:problem:forbidden",
    "urn:thuiswacht:problem:csrf",
    "urn:thuiswacht:problem:not-found",
    "urn:thuiswacht:problem:no-such-route",
    "urn:thuiswacht:problem:bad-request",
    "urn:thuiswacht:problem:payload-too-large",
    "urn:thuiswacht:problem:payload-rejected",
    "urn:thuiswacht:problem:unavailable",
    "urn:thuiswacht:problem:internal",
    "urn:thuiswacht:problem:conflict",
    "urn:thuiswacht:problem:four-eyes",
];

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<serde_json::Value>,
}

impl ApiError {
    /// Returns the HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::SessionExpired | ApiError::SignInFailed => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden | ApiError::Csrf | ApiError::FourEyes => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoSuchRoute => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Returns the stable problem type URI.
    pub fn problem_type(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "urn:thuiswacht:problem:unauthorized",
            ApiError::SessionExpired => "urn:thuiswacht:problem:session-expired",
            ApiError::SignInFailed => "urn:thuiswacht:problem:sign-in-failed",
            ApiError::TooManyRequests(_) => "urn:thuiswacht:problem:too-many-requests",
            ApiError::Forbidden => "urn:thuiswacht:problem:forbidden",
            ApiError::Csrf => "urn:thuiswacht:problem:csrf",
            ApiError::FourEyes => "urn:thuiswacht:problem:four-eyes",
            ApiError::NotFound => "urn:thuiswacht:problem:not-found",
            ApiError::NoSuchRoute => "urn:thuiswacht:problem:no-such-route",
            ApiError::BadRequest(_) | ApiError::Invalid(_) => "urn:thuiswacht:problem:bad-request",
            ApiError::PayloadTooLarge(_) => "urn:thuiswacht:problem:payload-too-large",
            ApiError::Unprocessable(_) => "urn:thuiswacht:problem:payload-rejected",
            ApiError::Unavailable(_) => "urn:thuiswacht:problem:unavailable",
            ApiError::Internal(_) => "urn:thuiswacht:problem:internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(_) => ApiError::NotFound,
            StoreError::Conflict(what) => ApiError::BadRequest(format!("{what} already exists")),
            StoreError::Unavailable(_) => ApiError::Unavailable("database unavailable".to_owned()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(error) = &self {
            // Logged once here; the body never carries internal text.
            tracing::error!(error = %error, "internal error");
        }
        let title = status.canonical_reason().unwrap_or("error");
        let (detail, extra) = match &self {
            ApiError::Internal(_) => (None, None),
            ApiError::PayloadTooLarge(extra) | ApiError::Unprocessable(extra) => {
                (Some(self.to_string()), Some(extra.clone()))
            }
            ApiError::Invalid(problems) => (
                Some(self.to_string()),
                Some(serde_json::json!({"problems": problems})),
            ),
            ApiError::TooManyRequests(seconds) => (
                Some(self.to_string()),
                Some(serde_json::json!({"retry_after_s": seconds})),
            ),
            other => (Some(other.to_string()), None),
        };
        let body = Problem {
            kind: self.problem_type(),
            title,
            status: status.as_u16(),
            detail,
            extra,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let ApiError::TooManyRequests(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// 409 `conflict` (a problem detail) with the resource as it now is under
/// `member` (`alert`, `proposal`, `protocol`), so the caller sees what
/// changed meanwhile.
pub(crate) fn conflict(detail: &str, member: &str, current: impl serde::Serialize) -> Response {
    let mut body = serde_json::json!({
        "type": "urn:thuiswacht:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": detail,
    });
    body[member] = serde_json::to_value(current).unwrap_or(serde_json::Value::Null);
    let mut response = (StatusCode::CONFLICT, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_is_listed_for_the_document() {
        let every = [
            ApiError::Unauthorized,
            ApiError::SessionExpired,
            ApiError::SignInFailed,
            ApiError::TooManyRequests(1),
            ApiError::Forbidden,
            ApiError::Csrf,
            ApiError::FourEyes,
            ApiError::NotFound,
            ApiError::NoSuchRoute,
            ApiError::BadRequest(String::new()),
            ApiError::Invalid(Vec::new()),
            ApiError::PayloadTooLarge(serde_json::Value::Null),
            ApiError::Unprocessable(serde_json::Value::Null),
            ApiError::Unavailable(String::new()),
            ApiError::Internal(anyhow::anyhow!("x")),
        ];
        for error in &every {
            assert!(
                PROBLEM_TYPES.contains(&error.problem_type()),
                "{} is missing",
                error.problem_type()
            );
        }
        // Each listed type but the alert actions' conflict is a variant's
        // (two variants answer bad-request).
        assert_eq!(PROBLEM_TYPES.len(), every.len());
    }
}
