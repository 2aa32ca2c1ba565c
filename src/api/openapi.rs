//! The OpenAPI 3.1 document of the JSON API, `GET /api/v1/openapi.json`.
//!
//! It is generated from the code: each handler carries a
//! `#[utoipa::path]` attribute, and its module's router is an
//! [`OpenApiRouter`] built with `routes!`, so the route that is served and
//! the operation that is documented come from the same attribute. Request
//! and response bodies are the handlers' own types (`ToSchema`), query
//! parameters their query structs (`IntoParams`). Errors are RFC 9457
//! problem details (`application/problem+json`) with the stable `type`s of
//! [`ApiError`](super::ApiError), described once here as reusable
//! responses. The document is public: it holds no patient data.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::PROBLEM_TYPES;
use super::AppState;
use crate::auth::request::SESSION_COOKIE;
use crate::settings::Settings;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Name of the session cookie's security scheme.
pub const SESSION_SCHEME: &str = "session_cookie";
/// Name of the CSRF header's security scheme (with the cookie, for changes).
pub const CSRF_SCHEME: &str = "csrf_token";
/// Name of the bearer token's security scheme; its "scopes" are the token
/// scopes (`ingest`, `read`, `observe`).
pub const BEARER_SCHEME: &str = "bearer";

/// The document's fixed parts; the operations come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Thuiswacht API",
        description = "Telemonitoring ingestion and triage: readings in, the nurses' worklist out. \
Sign in with `POST /api/v1/session` (a session cookie; state-changing calls also send the \
session's CSRF token in `X-CSRF-Token`) or send a bearer token made with \
`thuiswacht admin token add` (scopes `ingest`, `read`, `observe`). A patient outside the \
caller's teams answers 404 like one that does not exist. Errors are RFC 9457 problem details."
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(Problem),
        responses(
            BadRequest,
            Unauthorized,
            SignInFailed,
            Forbidden,
            NotFound,
            Conflict,
            FourEyesForbidden,
            InvalidValues,
            ProposalConflict,
            PayloadTooLarge,
            PayloadRejected,
            Unprocessable,
            TooManyRequests,
            Unavailable
        )
    ),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "ingest", description = "Readings and device statuses from gateways"),
        (name = "session", description = "Signing in and out"),
        (name = "worklist", description = "The worklist and alert actions"),
        (name = "thresholds", description = "Personal thresholds: review-by dates, and four-eyes approval of looser ones"),
        (name = "patients", description = "A patient's record, readings, observations and access"),
        (name = "tuning", description = "Protocols, their versions and backtests, and alarm-burden figures, for coordinators"),
        (name = "meta", description = "This document")
    )
)]
pub struct ApiDoc;

/// Adds the security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The session cookie set by `POST /api/v1/session` (HttpOnly, SameSite=Strict).",
            ))),
        );
        components.add_security_scheme(
            CSRF_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token (`csrf_token` of the session answer), required with \
                 the cookie on every state-changing call.",
            ))),
        );
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token made with `thuiswacht admin token add`; the requirement's \
                         list names the token scope the operation needs.",
                    ))
                    .build(),
            ),
        );
    }
}

/// An RFC 9457 problem detail. Some problems add members: `retry_after_s`
/// (429), the commit report's `stored`, `duplicates` and `rejected` (413,
/// 422 `payload-rejected`), `problems` (422 `unprocessable`, 400 of a
/// personal threshold), `alert`, the alert as it now is (409), and
/// `proposal`, the threshold proposal as it now is (409).
#[derive(serde::Serialize, ToSchema)]
pub struct Problem {
    /// A stable URN per kind of problem.
    #[serde(rename = "type")]
    #[schema(schema_with = problem_type)]
    pub kind: String,
    /// The HTTP status text.
    pub title: String,
    pub status: u16,
    /// What went wrong, in English; absent for internal errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The schema of a problem's `type`: one of [`PROBLEM_TYPES`].
fn problem_type() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("A stable URN per kind of problem."))
        .enum_values(Some(PROBLEM_TYPES.iter().copied()))
        .build()
}

/// Builds a problem response with an example per problem type.
fn problem_response(description: &str, status: u16, kinds: &[&str]) -> RefOr<Response> {
    debug_assert!(kinds.iter().all(|kind| PROBLEM_TYPES.contains(kind)));
    let title = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Error");
    let examples = kinds.iter().map(|kind| {
        let name = kind.rsplit(':').next().unwrap_or(kind);
        let example = ExampleBuilder::new()
            .value(Some(
                serde_json::json!({"type": kind, "title": title, "status": status}),
            ))
            .build();
        (name, example)
    });
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .examples_from_iter(examples)
        .build();
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content)
        .build()
        .into()
}

/// Declares a reusable problem response: its component name, description,
/// status and the problem types it can carry.
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident = ($status:literal, $description:literal, [$($kind:literal),+ $(,)?]);)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (
                        stringify!($name),
                        problem_response($description, $status, &[$($kind),+]),
                    )
                }
            }
        )+
    };
}

problem_responses! {
    /// 400.
    BadRequest = (400, "The request is malformed: a body, parameter or value that cannot be read.",
        ["urn:thuiswacht:problem:bad-request"]);
    /// 401 for the API.
    Unauthorized = (401, "No valid session cookie or bearer token; `session-expired` when the session has ended (sign in again).",
        ["urn:thuiswacht:problem:unauthorized", "urn:thuiswacht:problem:session-expired"]);
    /// 401 of a sign-in.
    SignInFailed = (401, "Unknown username, wrong password or a disabled account (one answer for all three).",
        ["urn:thuiswacht:problem:sign-in-failed"]);
    /// 403.
    Forbidden = (403, "Not allowed for this caller (role or token scope), or a state-changing call by cookie without the session's CSRF token (`csrf`).",
        ["urn:thuiswacht:problem:forbidden", "urn:thuiswacht:problem:csrf"]);
    /// 404.
    NotFound = (404, "No such resource, or one outside the caller's teams (answered alike, so that its existence does not leak).",
        ["urn:thuiswacht:problem:not-found"]);
    /// 403 of an approval.
    FourEyesForbidden = (403, "Not allowed for this caller (role or token scope; `csrf` without the session's CSRF token), or the proposer approving their own proposal (`four-eyes`: a second coordinator must).",
        ["urn:thuiswacht:problem:forbidden", "urn:thuiswacht:problem:csrf", "urn:thuiswacht:problem:four-eyes"]);
    /// 400 listing problems.
    InvalidValues = (400, "The request is malformed, or its values cannot be accepted; `problems` then lists each one, and nothing is stored.",
        ["urn:thuiswacht:problem:bad-request"]);
    /// 409 of a threshold proposal.
    ProposalConflict = (409, "The proposal was decided already (or meanwhile), or cannot be applied any more; `proposal` is the proposal as it now is.",
        ["urn:thuiswacht:problem:conflict"]);
    /// 409.
    Conflict = (409, "The transition is not allowed now, or someone changed the alert meanwhile; `alert` is the alert as it now is (who claimed it).",
        ["urn:thuiswacht:problem:conflict"]);
    /// 413.
    PayloadTooLarge = (413, "The payload is larger than `max_payload_bytes`; it is quarantined.",
        ["urn:thuiswacht:problem:payload-too-large"]);
    /// 422 of ingestion.
    PayloadRejected = (422, "Nothing in the payload could be stored; `rejected` says why (each is quarantined).",
        ["urn:thuiswacht:problem:payload-rejected"]);
    /// 422 of an entry.
    Unprocessable = (422, "The values cannot be accepted; `problems` lists each one, and nothing is stored.",
        ["urn:thuiswacht:problem:payload-rejected"]);
    /// 429.
    TooManyRequests = (429, "Too many sign-in attempts; retry after `Retry-After` seconds.",
        ["urn:thuiswacht:problem:too-many-requests"]);
    /// 503.
    Unavailable = (503, "The database or the broker is unreachable, or the service is shutting down; retry.",
        ["urn:thuiswacht:problem:unavailable"]);
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi_document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object))
)]
async fn document() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&openapi()).expect("the document serializes: it is plain JSON")
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

/// The route of the document itself.
fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(document))
}

/// Returns every route of the JSON API with its operation in the document
/// (the document's fixed parts included). [`super::app`] serves its router
/// part; nothing under `/api/v1` is served otherwise.
pub fn api_router(settings: &Settings) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(super::health::router())
        .merge(super::readings::router(settings))
        .merge(super::devices::router())
        .merge(super::observations::router())
        .merge(super::session::router())
        .merge(super::access::router())
        .merge(super::worklist::router())
        .merge(super::thresholds::router())
        .merge(super::patients::router())
        .merge(super::burden::router())
        .merge(super::protocols::router())
        .merge(super::backtest::router())
        .merge(router())
}

/// Returns the whole document. It does not depend on the settings.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router(&Settings::defaults()).into_openapi()
}
