//! The worklist page (`GET /`) and its rows (`GET /worklist/rows`), which
//! the page's script fetches again whenever the live stream says an alert
//! of the viewer's teams changed.
//!
//! Both read the same ranked, team-scoped list as `GET /api/v1/worklist`
//! and audit every patient shown. The page also lists personal thresholds
//! due for review and, for coordinators, threshold proposals awaiting a
//! second coordinator (they change with no alert, so the live update
//! leaves them be).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup, PreEscaped};

use super::explain::{alert_row, Clock};
use super::i18n::{self, fill, Texts};
use super::{layout, page_error, page_response, Viewer};
use crate::api::{ApiError, AppState};
use crate::auth::{audit_reads, Purpose};
use crate::domain::Timestamp;
use crate::store::{AlertPage, AlertQuery, Role};
use crate::thresholds::Reminders;
use crate::worklist::rendered::Form;
use crate::worklist::{self, Lang, PatientGroup};

/// Alerts on one page: far more than a team has open on a normal day.
const PAGE_ALERTS: i64 = 200;

/// Reads the viewer's worklist (with the threshold reminders when asked)
/// and audits the patients on it.
async fn read(
    state: &AppState,
    viewer: &Viewer,
    with_reminders: bool,
) -> Result<(Arc<AlertPage>, Reminders), ApiError> {
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
    let page = state.store.shared_alerts(&query).await?;
    let reminders = if with_reminders {
        crate::thresholds::reminders(
            state.store.as_ref(),
            &state.settings,
            query.teams.as_deref(),
            None,
            caller.role() == Some(Role::Coordinator),
            viewer.lang,
        )
        .await?
    } else {
        Reminders::default()
    };
    let mut shown: Vec<(uuid::Uuid, uuid::Uuid)> = page
        .items
        .iter()
        .map(|item| (item.alert.patient_id, item.team_id))
        .chain(reminders.patients())
        .collect();
    shown.sort_unstable();
    shown.dedup();
    audit_reads(state, &caller, Purpose::Worklist, &shown).await?;
    Ok((page, reminders))
}

/// The rows of `page` for the viewer: rendered once per page of alerts,
/// language and time zone while their minutes read the same (see
/// [`crate::worklist::rendered`]).
fn rendered_rows(viewer: &Viewer, page: &Arc<AlertPage>) -> Arc<str> {
    let clock = Clock {
        lang: viewer.lang,
        zone: viewer.zone,
    };
    worklist::rendered::rendered(
        page,
        Form::Rows(viewer.lang, viewer.zone),
        Timestamp::now(),
        |groups| Ok::<_, Infallible>(rows(viewer.texts(), clock, groups, page.total).into_string()),
    )
    .unwrap_or_else(|never| match never {})
}

/// Personal thresholds due for review, and proposals awaiting a second
/// coordinator; nothing when there are none.
fn reminders(texts: &Texts, lang: Lang, reminders: &Reminders) -> Markup {
    html! {
        @if !reminders.reviews.is_empty() {
            section class="reminders" aria-labelledby="threshold-reviews" {
                h2 id="threshold-reviews" { (texts.reviews_title) }
                ul class="threshold-reviews" {
                    @for review in &reminders.reviews {
                        li data-patient=(review.patient_id) data-rule=(review.rule_key) {
                            strong { (review.title) } ": "
                            a href=(format!("/patients/{}", review.patient_id)) { (review.patient_display_name) }
                            " " span class="team" { (review.team) }
                            " · " code { (review.rule_key) }
                            " · " (texts.review_by) " "
                            time datetime=(review.review_by.to_string()) { (i18n::date(lang, review.review_by)) }
                        }
                    }
                }
            }
        }
        @if !reminders.proposals.is_empty() {
            section class="reminders" aria-labelledby="threshold-proposals" {
                h2 id="threshold-proposals" { (texts.proposals_title) }
                ul class="threshold-proposals" {
                    @for proposal in &reminders.proposals {
                        li data-patient=(proposal.patient_id) data-proposal=(proposal.proposal_id) {
                            strong { (proposal.title) } ": "
                            a href=(format!("/patients/{}#threshold-proposals", proposal.patient_id)) { (proposal.patient_display_name) }
                            " " span class="team" { (proposal.team) }
                            " · " code { (proposal.rule_key) }
                            " · " (texts.proposed_by) " " (proposal.author)
                            " · " (proposal.reason)
                        }
                    }
                }
            }
        }
    }
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
    let (alerts, threshold_reminders) = match read(&state, &viewer, true).await {
        Ok(read) => read,
        Err(error) => return page_error(&viewer, error),
    };
    let texts = viewer.texts();
    let main = html! {
        h1 { (texts.worklist_title) }
        p id="live-status" class="live-status" data-on=(texts.live_on) data-lost=(texts.live_lost)
            data-updated=(texts.updated) {}
        div id="worklist" data-rows=(format!("/worklist/rows?lang={}", viewer.lang.code())) {
            (PreEscaped(&*rendered_rows(&viewer, &alerts)))
        }
        (reminders(texts, viewer.lang, &threshold_reminders))
    };
    page_response(
        &viewer,
        StatusCode::OK,
        layout(&viewer, texts.worklist_title, "/", main),
    )
}

/// `GET /worklist/rows`: the rows alone, for the live update.
pub async fn rows_fragment(State(state): State<AppState>, viewer: Viewer) -> Response {
    let (alerts, _) = match read(&state, &viewer, false).await {
        Ok(read) => read,
        Err(error) => return page_error(&viewer, error),
    };
    let rows = rendered_rows(&viewer, &alerts);
    page_response(&viewer, StatusCode::OK, PreEscaped(String::from(&*rows)))
}
