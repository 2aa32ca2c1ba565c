//! A patient's record for nurses: `GET /api/v1/patients/{id}` (the patient,
//! their protocols and devices, open and recent alerts) and
//! `GET /api/v1/patients/{id}/readings?metric=&from=&to=` (default: the last
//! 14 days of every metric). Scoped and audited through [`crate::auth`]: a
//! patient outside the caller's teams answers 404.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::ApiQuery;
use super::openapi::{BadRequest, Forbidden, NotFound, Unauthorized};
use super::{no_store, ApiError, AppState};
use crate::alert_book::AlertStatus;
use crate::auth::{patient_for, Caller, Purpose};
use crate::domain::{Metric, Timestamp};
use crate::store::{AlertOrder, AlertQuery, Patient, StoredReading};
use crate::worklist::{self, Lang, WorklistAlert};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_patient))
        .routes(routes!(get_readings))
}

/// Alerts shown with the patient: the open ones and the most recent others.
const RECENT_ALERTS: i64 = 50;

/// Days of readings returned without `from`.
const DEFAULT_DAYS: i64 = 14;

/// Most readings in one answer.
const MAX_READINGS: i64 = 20_000;

/// A patient with their open and recent alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PatientRecord {
    #[serde(flatten)]
    patient: Patient,
    alerts: Vec<WorklistAlert>,
}

/// The language of the alerts' reasons.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PatientParams {
    /// `nl` (default) or `en`.
    lang: Option<String>,
}

/// The patient, their protocols, and their open and recent alerts.
#[utoipa::path(
    get,
    path = "/api/v1/patients/{patient_id}",
    tag = "patients",
    params(("patient_id" = Uuid, Path, description = "The patient"), PatientParams),
    responses(
        (status = 200, description = "The patient's record", body = PatientRecord),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []), ("bearer" = ["read"]))
)]
async fn get_patient(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
    ApiQuery(params): ApiQuery<PatientParams>,
) -> Result<Response, ApiError> {
    let access = patient_for(&state, &caller, patient_id, Purpose::PatientPage).await?;
    let page = state
        .store
        .query_alerts(&AlertQuery {
            patient_id: Some(patient_id),
            statuses: vec![
                AlertStatus::Open,
                AlertStatus::Claimed,
                AlertStatus::Snoozed,
                AlertStatus::Escalated,
                AlertStatus::Resolved,
            ],
            order: AlertOrder::Newest,
            limit: RECENT_ALERTS,
            ..AlertQuery::default()
        })
        .await?;
    let lang = params
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or_default();
    let now = Timestamp::now();
    Ok(no_store(Json(PatientRecord {
        patient: access.patient,
        alerts: page
            .items
            .into_iter()
            .map(|item| worklist::worklist_alert(item, now, lang))
            .collect(),
    })))
}

/// Which readings.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReadingsParams {
    /// One metric (e.g. `bp_systolic`); default: every metric.
    metric: Option<String>,
    /// RFC 3339; default: 14 days before `to`.
    from: Option<String>,
    /// RFC 3339, exclusive; default: now.
    to: Option<String>,
}

/// A patient's readings in a time range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ReadingsPage {
    patient_id: Uuid,
    from: Timestamp,
    to: Timestamp,
    readings: Vec<StoredReading>,
    /// More readings exist in the range than were returned.
    truncated: bool,
}

/// The patient's readings, oldest first (at most 20,000).
#[utoipa::path(
    get,
    path = "/api/v1/patients/{patient_id}/readings",
    tag = "patients",
    params(("patient_id" = Uuid, Path, description = "The patient"), ReadingsParams),
    responses(
        (status = 200, description = "The readings", body = ReadingsPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []), ("bearer" = ["read"]))
)]
async fn get_readings(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<Uuid>,
    ApiQuery(params): ApiQuery<ReadingsParams>,
) -> Result<Response, ApiError> {
    let metric = params
        .metric
        .as_deref()
        .map(|code| {
            Metric::from_code(code)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown metric {code}")))
        })
        .transpose()?;
    let time = |text: &Option<String>, what: &str| -> Result<Option<Timestamp>, ApiError> {
        text.as_deref()
            .map(|text| {
                Timestamp::parse_rfc3339(text).ok_or_else(|| {
                    ApiError::BadRequest(format!("{what} {text:?} is not an RFC 3339 time"))
                })
            })
            .transpose()
    };
    let to = time(&params.to, "to")?.unwrap_or_else(Timestamp::now);
    let from = time(&params.from, "from")?
        .unwrap_or_else(|| to.plus_micros(-DEFAULT_DAYS * 86_400_000_000));
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".to_owned()));
    }
    let access = patient_for(&state, &caller, patient_id, Purpose::Readings).await?;
    let mut readings = state
        .store
        .patient_readings(access.patient.id, metric, from, to, MAX_READINGS + 1)
        .await?;
    let truncated = readings.len() as i64 > MAX_READINGS;
    readings.truncate(MAX_READINGS as usize);
    Ok(no_store(Json(ReadingsPage {
        patient_id,
        from,
        to,
        readings,
        truncated,
    })))
}
