//! `GET /api/v1/alarm-burden?days=30&team=`: the alarm-burden figures of
//! [`crate::tuning::burden`] for a coordinator's teams (or one of them),
//! over the last `days` (1–365, default 30).
//!
//! For coordinators only: nurses work the list, coordinators tune it, and
//! admins see no patient data. The per-patient rows name patients, so each
//! one shown is audited like a list read.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::ApiQuery;
use super::openapi::{BadRequest, Forbidden, Unauthorized};
use super::{ApiError, AppState};
use crate::auth::{audit_reads, Caller, Purpose};
use crate::domain::Timestamp;
use crate::store::{Role, TeamScope};
use crate::tuning::burden::{self, AlarmBurden};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_burden))
}

/// Days looked back without `days`.
pub const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 365;
const DAY: i64 = 86_400_000_000;

/// Query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BurdenParams {
    /// Days back from now, 1–365.
    pub days: Option<i64>,
    /// One of the caller's teams.
    pub team: Option<Uuid>,
    pub lang: Option<String>,
}

/// Reads and computes the figures for `caller`; shared with the page.
///
/// # Errors
/// 403 for anyone but a coordinator, 400 for a period out of range.
pub async fn load(
    state: &AppState,
    caller: &Caller,
    params: &BurdenParams,
) -> Result<AlarmBurden, ApiError> {
    if caller.role() != Some(Role::Coordinator) {
        return Err(ApiError::Forbidden);
    }
    let days = params.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::BadRequest(format!(
            "days must lie between 1 and {MAX_DAYS}"
        )));
    }
    let mut teams = match caller.visible_teams() {
        TeamScope::Teams(teams) => teams,
        // A coordinator always has a team list; an unlimited scope is for
        // organisation-wide tokens, which never get here.
        TeamScope::All => return Err(ApiError::Forbidden),
    };
    if let Some(team) = params.team {
        // Another team's figures are as absent as its patients.
        teams.retain(|id| *id == team);
    }
    let to = Timestamp::now();
    let from = to.plus_micros(-days * DAY);
    let alerts = state
        .store
        .alerts_opened_between(from, to, Some(&teams))
        .await?;
    let patients: Vec<_> = state
        .store
        .list_patients()
        .await?
        .into_iter()
        .filter(|patient| teams.contains(&patient.team_id))
        .collect();
    let figures = burden::compute(&alerts, &patients, from, to);
    let shown: Vec<(Uuid, Uuid)> = figures
        .by_patient
        .iter()
        .filter_map(|row| {
            let id = row.patient_id?;
            let team = patients.iter().find(|patient| patient.id == id)?.team_id;
            Some((id, team))
        })
        .collect();
    audit_reads(state, caller, Purpose::Worklist, &shown).await?;
    Ok(figures)
}

#[utoipa::path(
    get,
    path = "/api/v1/alarm-burden",
    tag = "tuning",
    params(BurdenParams),
    responses(
        (status = 200, description = "The alarm-burden figures of the period", body = AlarmBurden),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden)
    ),
    security(("session_cookie" = []))
)]
async fn get_burden(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<BurdenParams>,
) -> Result<Response, ApiError> {
    let figures = load(&state, &caller, &params).await?;
    let mut response = Json(figures).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
