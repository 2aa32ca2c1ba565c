//! The worklist page (`GET /`) and its rows (`GET /worklist/rows`), which
//! the page's script fetches again whenever the live stream says an alert
//! of the viewer's teams changed.
//!
//! Both read the same ranked, team-scoped list as `GET /api/v1/worklist`
//! and audit every patient shown.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::explain::{alert_row, Clock};
use super::i18n::{fill, Texts};
use super::{layout, page_error, page_response, Viewer};
use crate::api::{ApiError, AppState};
use crate::auth::{audit_reads, Purpose};
use crate::domain::Timestamp;
use crate::store::AlertQuery;
use crate::worklist::{self, PatientGroup};

/// Alerts on one page: far more than a team has open on a normal day.
const PAGE_ALERTS: i64 = 200;

/// Reads the viewer's worklist and audits the patients on it.
async fn read(state: &AppState, viewer: &Viewer) -> Result<(Vec<PatientGroup>, i64), ApiError> {
    let caller = viewer.caller();
    let teams = match caller.visible_teams() {
        crate::store::TeamScope::All => None,
        crate::store::TeamScope::Teams(teams) => Some(teams),
    };
    let query = AlertQuery {
        teams,
        limit: PAGE_ALERTS,
        ..AlertQuery::default()
    };
    let page = state.store.query_alerts(&query).await?;
    let mut shown: Vec<(uuid::Uuid, uuid::Uuid)> = page
        .items
        .iter()
        .map(|item| (item.alert.patient_id, item.team_id))
        .collect();
    shown.sort_unstable();
    shown.dedup();
    audit_reads(state, &caller, Purpose::Worklist, &shown).await?;
    Ok((
        worklist::group(page.items, Timestamp::now(), viewer.lang),
        page.total,
    ))
}

/// The ranked patient groups; also the body of `/worklist/rows`.
fn rows(texts: &Texts, clock: Clock, groups: &[PatientGroup], total: i64) -> Markup {
    let shown: usize = groups.iter().map(|group| group.alerts.len()).sum();
    html! {
        p class="summary" id="summary" data-count=(shown) {
            (fill(texts.summary, &[&total.to_string(), &groups.len().to_string()]))
            @if (shown as i64) < total {
                " (" (fill(texts.shown_of, &[&shown.to_string(), &total.to_string()])) ")"
            }
        }
        @if groups.is_empty() {
            p class="empty" { (texts.empty) }
        } @else {
            ol class="patients" {
                @for group in groups {
                    li class="patient" data-patient=(group.patient_id) {
                        section aria-labelledby=(format!("patient-{}", group.patient_id)) {
                            h2 id=(format!("patient-{}", group.patient_id)) {
                                a href=(format!("/patients/{}", group.patient_id)) { (group.patient_display_name) }
                                " "
                                span class="team" { (group.team) }
                            }
                            ul class="alerts" {
                                @for alert in &group.alerts {
                                    (alert_row(texts, clock, alert))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /`: the worklist.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let (groups, total) = match read(&state, &viewer).await {
        Ok(read) => read,
        Err(error) => return page_error(&viewer, error),
    };
    let texts = viewer.texts();
    let clock = Clock {
        lang: viewer.lang,
        zone: viewer.zone,
    };
    let main = html! {
        h1 { (texts.worklist_title) }
        p id="live-status" class="live-status" data-on=(texts.live_on) data-lost=(texts.live_lost)
            data-updated=(texts.updated) {}
        div id="worklist" data-rows=(format!("/worklist/rows?lang={}", viewer.lang.code())) {
            (rows(texts, clock, &groups, total))
        }
    };
    page_response(
        &viewer,
        StatusCode::OK,
        layout(&viewer, texts.worklist_title, "/", main),
    )
}

/// `GET /worklist/rows`: the rows alone, for the live update.
pub async fn rows_fragment(State(state): State<AppState>, viewer: Viewer) -> Response {
    let (groups, total) = match read(&state, &viewer).await {
        Ok(read) => read,
        Err(error) => return page_error(&viewer, error),
    };
    let clock = Clock {
        lang: viewer.lang,
        zone: viewer.zone,
    };
    page_response(
        &viewer,
        StatusCode::OK,
        rows(viewer.texts(), clock, &groups, total),
    )
}
