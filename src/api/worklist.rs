//! The worklist and alert API: what nurses work from.
//!
//! - `GET /api/v1/worklist` — open alerts of the caller's teams, grouped per
//!   patient, most urgent first; filters `team`, `status`, `priority`,
//!   `patient`; paging `limit` (≤ 200) and `offset`; `lang=nl|en` for the
//!   reasons. Besides the alerts, unpaged: personal thresholds whose
//!   review-by date has been reached, and (for coordinators) threshold
//!   proposals awaiting a second coordinator. Every patient shown is audited.
//! - `GET /api/v1/worklist/stream` — server-sent events: `alert` with
//!   `{alert_id, patient_id, kind}` whenever an alert of the caller's teams
//!   changes (raised, updated, claimed, …), `resync` when changes may have
//!   been missed (reload), and a keep-alive comment every 15 s.
//! - `GET /api/v1/alerts/{id}` — one alert with its history.
//! - `POST /api/v1/alerts/{id}/claim|resolve|snooze|escalate|notes` — the
//!   actions. A change made meanwhile by someone else answers 409 with the
//!   alert as it now is (so the second nurse sees who has it).
//!
//! Scoping and audit go through [`crate::auth`]: an alert of a patient
//! outside the caller's teams answers 404 like one that does not exist.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiQuery};
use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, Unauthorized};
use super::{no_store, ApiError, AppState};
use crate::alert_book::{
    priority_from_code, Alert, AlertEvent, AlertStatus, EscalationTarget, Outcome,
};
use crate::auth::{audit_reads, patient_for, Caller, Purpose, TeamScope};
use crate::domain::Timestamp;
use crate::store::{AlertQuery, StoreError};
use crate::worklist::{self, Lang, PatientGroup};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_worklist))
        .routes(routes!(stream))
        .routes(routes!(get_alert))
        .routes(routes!(claim))
        .routes(routes!(resolve))
        .routes(routes!(snooze))
        .routes(routes!(escalate))
        .routes(routes!(note))
}

/// Query parameters of the worklist.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorklistParams {
    /// A team id; a team outside the caller's gives an empty list.
    pub team: Option<Uuid>,
    /// Comma-separated statuses (`open`, `claimed`, `snoozed`, `escalated`,
    /// `resolved`; default: every unresolved one).
    pub status: Option<String>,
    /// Comma-separated priorities (`high`, `medium`, `low`, `informational`).
    pub priority: Option<String>,
    /// One patient's alerts only.
    pub patient: Option<Uuid>,
    /// Alerts per page (1–200, default 100).
    pub limit: Option<i64>,
    /// Alerts to skip.
    pub offset: Option<i64>,
    /// `nl` (default) or `en`, for the reasons.
    pub lang: Option<String>,
}

/// A page of the worklist.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorklistPage {
    pub patients: Vec<PatientGroup>,
    /// Alerts in all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    /// Personal thresholds in force whose review-by date has been reached
    /// ("Drempel herbeoordelen"), earliest date first; not paged.
    pub threshold_reviews: Vec<crate::thresholds::ReviewReminder>,
    /// Threshold proposals awaiting a second coordinator, oldest first;
    /// for coordinators (empty for everyone else); not paged.
    pub threshold_proposals: Vec<crate::thresholds::ProposalReminder>,
}

/// Largest page.
const MAX_LIMIT: i64 = 200;

impl WorklistParams {
    /// Returns the store query for `scope`, or why the parameters are wrong.
    ///
    /// # Errors
    /// An unknown status or priority.
    pub fn query(&self, scope: &TeamScope) -> Result<AlertQuery, ApiError> {
        let mut teams = match scope {
            TeamScope::All => None,
            TeamScope::Teams(teams) => Some(teams.clone()),
        };
        if let Some(team) = self.team {
            teams = Some(match teams {
                // A team outside the caller's gives an empty list, not an error.
                Some(own) => own.into_iter().filter(|id| *id == team).collect(),
                None => vec![team],
            });
        }
        let statuses = split(self.status.as_deref())
            .map(|code| {
                AlertStatus::from_code(code)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown status {code}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let priorities = split(self.priority.as_deref())
            .map(|code| {
                priority_from_code(code)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown priority {code}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertQuery {
            teams,
            patient_id: self.patient,
            statuses,
            priorities,
            limit: self.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
            offset: self.offset.unwrap_or(0).max(0),
            ..AlertQuery::default()
        })
    }

    fn lang(&self) -> Lang {
        self.lang
            .as_deref()
            .and_then(Lang::parse)
            .unwrap_or_default()
    }
}

fn split(list: Option<&str>) -> impl Iterator<Item = &str> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|code| !code.is_empty())
}

/// Open alerts of the caller's teams, grouped per patient, most urgent
/// first. Every patient shown is audited.
#[utoipa::path(
    get,
    path = "/api/v1/worklist",
    tag = "worklist",
    params(WorklistParams),
    responses(
        (status = 200, description = "A page of the worklist", body = WorklistPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden)
    ),
    security(("session_cookie" = []), ("bearer" = ["read"]))
)]
async fn get_worklist(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<WorklistParams>,
) -> Result<Response, ApiError> {
    let query = params.query(&caller.visible_teams())?;
    let page = state.store.shared_alerts(&query).await?;
    let reminders = crate::thresholds::reminders(
        state.store.as_ref(),
        &state.settings,
        query.teams.as_deref(),
        query.patient_id,
        caller.role() == Some(crate::store::Role::Coordinator),
        params.lang(),
    )
    .await?;
    let mut shown: Vec<(Uuid, Uuid)> = page
        .items
        .iter()
        .map(|item| (item.alert.patient_id, item.team_id))
        .chain(reminders.patients())
        .collect();
    shown.sort_unstable();
    shown.dedup();
    audit_reads(&state, &caller, Purpose::Worklist, &shown).await?;
    // Every nurse of a team reads the same groups: rendered once per page
    // of alerts and language while their minutes read the same.
    let body = worklist::rendered::rendered(
        &page,
        worklist::rendered::Form::Json(params.lang()),
        Timestamp::now(),
        serde_json::to_string,
    )
    .and_then(|patients| {
        worklist_body(&patients, page.total, query.limit, query.offset, &reminders)
    })
    .map_err(|error| ApiError::Internal(error.into()))?;
    Ok(no_store((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )))
}

/// Returns the JSON of a [`WorklistPage`] around `patients`, the JSON of
/// its groups as rendered.
fn worklist_body(
    patients: &str,
    total: i64,
    limit: i64,
    offset: i64,
    reminders: &crate::thresholds::Reminders,
) -> Result<String, serde_json::Error> {
    let reviews = serde_json::to_string(&reminders.reviews)?;
    let proposals = serde_json::to_string(&reminders.proposals)?;
    Ok(format!(
        "{{\"patients\":{patients},\"total\":{total},\"limit\":{limit},\"offset\":{offset},\
         \"threshold_reviews\":{reviews},\"threshold_proposals\":{proposals}}}"
    ))
}

/// The live worklist: server-sent events `hello` (at the start), `alert`
/// with `{alert_id, patient_id, kind}` whenever an alert of the caller's
/// teams changes, and `resync` when changes may have been missed (reload);
/// a keep-alive comment every 15 s.
#[utoipa::path(
    get,
    path = "/api/v1/worklist/stream",
    tag = "worklist",
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden)
    ),
    security(("session_cookie" = []), ("bearer" = ["read"]))
)]
async fn stream(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let scope = caller.visible_teams();
    let feed = Feed {
        changes: state.store.alert_changes(),
        store: state.store.clone(),
        scope,
        team_of: std::collections::HashMap::new(),
        greeted: false,
        shutdown: state.shutdown.clone(),
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What one SSE connection follows.
struct Feed {
    changes: tokio::sync::broadcast::Receiver<crate::store::AlertChange>,
    store: std::sync::Arc<dyn crate::store::Store>,
    scope: TeamScope,
    /// Patient → team, looked up once per patient per connection.
    team_of: std::collections::HashMap<Uuid, Option<Uuid>>,
    greeted: bool,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Feed {
    /// Returns the next event for this caller; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        if !self.greeted {
            self.greeted = true;
            return Some(Event::default().event("hello").data("{}"));
        }
        loop {
            let received = tokio::select! {
                received = self.changes.recv() => received,
                () = self.shutdown.cancelled() => return None,
            };
            match received {
                Ok(change) if change.kind == "resync" => {
                    return Some(Event::default().event("resync").data("{}"));
                }
                Ok(change) => {
                    let team = match self.team_of.get(&change.patient_id) {
                        Some(team) => *team,
                        None => {
                            let team = self
                                .store
                                .patient(change.patient_id)
                                .await
                                .ok()
                                .flatten()
                                .map(|patient| patient.team_id);
                            self.team_of.insert(change.patient_id, team);
                            team
                        }
                    };
                    if team.is_some_and(|team| self.scope.contains(team)) {
                        let data = serde_json::to_string(&change).unwrap_or_default();
                        return Some(Event::default().event("alert").data(data));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return Some(Event::default().event("resync").data("{}"));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// An alert with its history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AlertDetail {
    #[serde(flatten)]
    alert: Alert,
    patient_display_name: String,
    reason: String,
    events: Vec<AlertEvent>,
}

/// The language of the reason.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LangParam {
    /// `nl` (default) or `en`.
    lang: Option<String>,
}

/// Loads an alert the caller may reach for `purpose` (404 otherwise).
async fn scoped_alert(
    state: &AppState,
    caller: &Caller,
    alert_id: Uuid,
    purpose: Purpose,
) -> Result<(Alert, crate::auth::PatientAccess), ApiError> {
    let alert = state
        .store
        .alert(alert_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = patient_for(state, caller, alert.patient_id, purpose).await?;
    Ok((alert, access))
}

/// One alert with its history.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{alert_id}",
    tag = "worklist",
    params(("alert_id" = Uuid, Path, description = "The alert"), LangParam),
    responses(
        (status = 200, description = "The alert", body = AlertDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound)
    ),
    security(("session_cookie" = []), ("bearer" = ["read"]))
)]
async fn get_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert_id): Path<Uuid>,
    ApiQuery(params): ApiQuery<LangParam>,
) -> Result<Response, ApiError> {
    let (alert, access) = scoped_alert(&state, &caller, alert_id, Purpose::PatientPage).await?;
    let events = state.store.alert_events(alert.id).await?;
    let lang = params
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or_default();
    Ok(no_store(Json(AlertDetail {
        reason: worklist::reason(&alert.rule_key, &alert.explanation, lang),
        patient_display_name: access.patient.display_name.clone(),
        alert,
        events,
    })))
}

/// Applies a lifecycle method and saves it; see the module docs.
async fn act(
    state: &AppState,
    caller: &Caller,
    alert_id: Uuid,
    action: impl FnOnce(
        &mut Alert,
        &str,
        Timestamp,
    ) -> Result<AlertEvent, crate::alert_book::TransitionError>,
) -> Result<Response, ApiError> {
    let (mut alert, access) = scoped_alert(state, caller, alert_id, Purpose::AlertChange).await?;
    let from = alert.status;
    let event = match action(&mut alert, caller.author(), Timestamp::now()) {
        Ok(event) => event,
        Err(error) => return Ok(conflict(state, alert_id, &error.to_string()).await),
    };
    match state.store.save_transition(&alert, from, &event).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Ok(conflict(state, alert_id, "the alert was changed meanwhile").await)
        }
        Err(error) => return Err(error.into()),
    }
    access
        .record_change(
            state,
            caller,
            serde_json::json!({"alert_id": alert.id, "action": event.kind}),
        )
        .await?;
    Ok(no_store(Json(alert)))
}

/// 409 with the alert as it now is.
async fn conflict(state: &AppState, alert_id: Uuid, detail: &str) -> Response {
    let current = state.store.alert(alert_id).await.ok().flatten();
    super::error::conflict(detail, "alert", current)
}

/// Takes the alert; a second nurse is answered 409 with who has it.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/claim",
    tag = "worklist",
    params(("alert_id" = Uuid, Path, description = "The alert")),
    responses(
        (status = 200, description = "Claimed", body = Alert),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    act(&state, &caller, alert_id, |alert, by, now| {
        alert.claim(by, now)
    })
    .await
}

/// How the alert was handled.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    outcome: Outcome,
}

/// Closes the alert with an outcome.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/resolve",
    tag = "worklist",
    params(("alert_id" = Uuid, Path, description = "The alert")),
    request_body(content = ResolveBody, example = json!({"outcome": "contacted_patient"})),
    responses(
        (status = 200, description = "Resolved", body = Alert),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert_id): Path<Uuid>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Response, ApiError> {
    act(&state, &caller, alert_id, |alert, by, now| {
        alert.resolve(by, body.outcome, now)
    })
    .await
}

/// Until when to snooze.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SnoozeBody {
    /// RFC 3339; in the future, and at most 60 (high), 240 (medium), 1440
    /// (low) or 4320 (informational) minutes from now.
    until: String,
}

/// Hides the alert until a time, or until its values recover (the system
/// then resolves it) or new evidence makes it more urgent (it returns at
/// once), whichever comes first.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/snooze",
    tag = "worklist",
    params(("alert_id" = Uuid, Path, description = "The alert")),
    request_body(content = SnoozeBody, example = json!({"until": "2026-11-23T09:30:00Z"})),
    responses(
        (status = 200, description = "Snoozed", body = Alert),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn snooze(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert_id): Path<Uuid>,
    ApiJson(body): ApiJson<SnoozeBody>,
) -> Result<Response, ApiError> {
    let until = Timestamp::parse_rfc3339(&body.until).ok_or_else(|| {
        ApiError::BadRequest(format!("until {:?} is not an RFC 3339 time", body.until))
    })?;
    act(&state, &caller, alert_id, |alert, by, now| {
        alert.snooze(by, until, now)
    })
    .await
}

/// Who to hand the alert to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    to: EscalationTarget,
}

/// Hands the alert to another level of care.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/escalate",
    tag = "worklist",
    params(("alert_id" = Uuid, Path, description = "The alert")),
    request_body(content = EscalateBody, example = json!({"to": "general_practitioner"})),
    responses(
        (status = 200, description = "Escalated", body = Alert),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn escalate(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert_id): Path<Uuid>,
    ApiJson(body): ApiJson<EscalateBody>,
) -> Result<Response, ApiError> {
    act(&state, &caller, alert_id, |alert, by, now| {
        alert.escalate(by, body.to, now)
    })
    .await
}

/// A note on an alert.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    /// At most 4000 characters.
    text: String,
}

/// Longest note kept.
const MAX_NOTE_CHARS: usize = 4000;

/// Adds a note to the alert's history.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{alert_id}/notes",
    tag = "worklist",
    params(("alert_id" = Uuid, Path, description = "The alert")),
    request_body(content = NoteBody, example = json!({"text": "Mevrouw gebeld, voelt zich beter; morgen opnieuw meten."})),
    responses(
        (status = 200, description = "Noted", body = Alert),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)
    ),
    security(("session_cookie" = [], "csrf_token" = []))
)]
async fn note(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert_id): Path<Uuid>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<Response, ApiError> {
    if body.text.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "a note is at most {MAX_NOTE_CHARS} characters"
        )));
    }
    act(&state, &caller, alert_id, |alert, by, now| {
        alert.note(by, &body.text, now)
    })
    .await
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::thresholds::{ProposalReminder, Reminders, ReviewReminder};

    #[test]
    fn the_assembled_body_is_the_documented_page() {
        // Arrange: groups of two alerts as the worklist renders them, and
        // one reminder of each kind.
        let item = |n: u128| {
            let factors = serde_json::json!({"factors": [{"kind": "threshold"}]});
            let mut item = crate::worklist::tests::item(1, "default/spo2_low", factors, 0, 60);
            item.alert.id = Uuid::from_u128(n);
            item.patient_display_name = "Mevrouw \"A\" <Bakker>".to_owned();
            item
        };
        let groups = worklist::group(vec![item(5), item(6)], Timestamp(60_000_000), Lang::Nl);
        let reminders = Reminders {
            reviews: vec![ReviewReminder {
                title: "Drempel herbeoordelen".to_owned(),
                patient_id: Uuid::from_u128(1),
                patient_display_name: "A".to_owned(),
                team_id: Uuid::from_u128(9),
                team: "Assen".to_owned(),
                rule_key: "default/spo2_low".to_owned(),
                version: 2,
                override_id: 7,
                review_by: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                author: "coord".to_owned(),
            }],
            proposals: vec![ProposalReminder {
                title: "Voorstel".to_owned(),
                proposal_id: 3,
                patient_id: Uuid::from_u128(1),
                patient_display_name: "A".to_owned(),
                team_id: Uuid::from_u128(9),
                team: "Assen".to_owned(),
                rule_key: "default/spo2_low".to_owned(),
                author: "coord".to_owned(),
                reason: "lager".to_owned(),
                created_at: Timestamp(5),
            }],
        };

        // Act
        let assembled = worklist_body(
            &serde_json::to_string(&groups).unwrap(),
            12,
            50,
            0,
            &reminders,
        )
        .unwrap();

        // Assert
        let documented = serde_json::to_value(WorklistPage {
            patients: groups,
            total: 12,
            limit: 50,
            offset: 0,
            threshold_reviews: reminders.reviews,
            threshold_proposals: reminders.proposals,
        })
        .unwrap();
        let assembled: serde_json::Value = serde_json::from_str(&assembled).unwrap();
        assert_eq!(assembled, documented);
    }
}
