//! Break-glass and the access overview of a patient.
//!
//! - `POST /api/v1/patients/{id}/break-glass` with `{"reason": "…"}`: an
//!   admin opens one patient's data for `break_glass_minutes`, for reading
//!   only. Admins only (403 for everyone else); 404 for an unknown patient;
//!   the grant and its audit row, with the reason, are stored together.
//! - `GET /api/v1/patients/{id}/access?before=&limit=`: who reached this
//!   patient's data, when, from where and what they did, newest first, from
//!   the audit trail. For coordinators of the patient's team (404 outside
//!   it, 403 for a nurse within it); the look itself is audited. Page on by
//!   passing the answer's `next_before` as `before`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::ApiQuery;
use super::openapi::{BadRequest, Forbidden, NotFound, Unauthorized};
use super::{ApiError, AppState};
use crate::auth::{patient_for, Caller, Purpose};
use crate::domain::Timestamp;
use crate::store::{AuditAction, AuditRecord, NewBreakGlass, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(break_glass))
        .routes(routes!(access_overview))
}

/// Longest reason kept.
const MAX_REASON_CHARS: usize = 1000;
/// Rows per page of the access overview, by default and at most.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

/// Why an admin needs to read this patient's data.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    /// At most 1000 characters.
    reason: String,
}

/// A break-glass grant.
#[derive(Serialize, utoipa::ToSchema)]
struct BreakGlassGranted {
    id: Uuid,
    patient_id: Uuid,
    reason: String,
    at: Timestamp,
    expires_at: Timestamp,
}

/// Opens one patient's data to an admin, for reading only, for
/// `break_glass_minutes`; audited with the reason.
#[utoipa::path(
    post,
    path = "/api/v1/patients/{patient_id}/break-glass",
    tag = "patients",
    params(("patient_id" = Uuid, Path, description = "The patient")),
    request_body(content = BreakGlassBody, example = json!({"reason": "huisartsenpost vraagt om de metingen van vannacht"})),
    responses(
        (status = 201, description = "Granted", body = BreakGlassGranted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn break_glass(
    State(state): State<AppState>,
    Path(patient_id): Path<Uuid>,
    caller: Caller,
    body: Result<Json<BreakGlassBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<BreakGlassGranted>), ApiError> {
    let Some(admin) = caller.user().filter(|user| user.role == Role::Admin) else {
        return Err(ApiError::Forbidden);
    };
    let Json(body) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::BadRequest("give the reason".to_owned()));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::BadRequest(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    let patient = state
        .store
        .patient(patient_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let at = Timestamp::now();
    let duration = state.settings.break_glass_duration();
    let grant = NewBreakGlass {
        id: Uuid::new_v4(),
        user_id: admin.id,
        patient_id,
        reason: reason.clone(),
        at,
        expires_at: at.plus_micros(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)),
    };
    let mut record = caller.audit_record(AuditAction::BreakGlass);
    record.at = at;
    record.patient_id = Some(patient_id);
    record.team_id = Some(patient.team_id);
    record.detail = serde_json::json!({
        "break_glass": grant.id,
        "reason": reason,
        "expires_at": grant.expires_at,
    });
    state.store.add_break_glass(&grant, &record).await?;
    state.metrics.security_event("break_glass");
    Ok((
        StatusCode::CREATED,
        Json(BreakGlassGranted {
            id: grant.id,
            patient_id,
            reason,
            at,
            expires_at: grant.expires_at,
        }),
    ))
}

/// A page of the access overview.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next_before` of the previous page.
    before: Option<i64>,
    /// Rows per page (1–500, default 100).
    limit: Option<i64>,
}

/// Who reached a patient's data, newest first.
#[derive(Serialize, utoipa::ToSchema)]
struct AccessOverview {
    patient_id: Uuid,
    entries: Vec<AuditRecord>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// Who reached this patient's data, when, from where and what they did
/// (coordinators of the patient's team; the look is audited too).
#[utoipa::path(
    get,
    path = "/api/v1/patients/{patient_id}/access",
    tag = "patients",
    params(("patient_id" = Uuid, Path, description = "The patient"), PageQuery),
    responses(
        (status = 200, description = "The overview", body = AccessOverview),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []))
)]
async fn access_overview(
    State(state): State<AppState>,
    Path(patient_id): Path<Uuid>,
    ApiQuery(page): ApiQuery<PageQuery>,
    caller: Caller,
) -> Result<Json<AccessOverview>, ApiError> {
    let access = patient_for(&state, &caller, patient_id, Purpose::AccessOverview).await?;
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let entries = state
        .store
        .patient_audit(access.patient.id, page.before, limit)
        .await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|entry| entry.id))
        .flatten();
    Ok(Json(AccessOverview {
        patient_id,
        entries,
        next_before,
    }))
}
