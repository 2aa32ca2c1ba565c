//! The alarm-burden page (`GET /alarm-burden?days=30`) for coordinators:
//! the noisiest rules of the week as a bar chart, then the figures per
//! protocol, rule, team and patient as tables. The same figures as
//! `GET /api/v1/alarm-burden`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::i18n::{fill, Texts};
use super::{layout, page_error, page_response, Viewer};
use crate::api::burden::{load, BurdenParams, DEFAULT_DAYS};
use crate::api::AppState;
use crate::tuning::burden::{AlarmBurden, BurdenRow};
use crate::worklist::Lang;

const PERIODS: [i64; 4] = [7, 30, 90, 365];

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<BurdenParams>,
) -> Response {
    let figures = match load(&state, &viewer.caller(), &params).await {
        Ok(figures) => figures,
        Err(error) => return page_error(&viewer, error),
    };
    let texts = viewer.texts();
    let days = params.days.unwrap_or(DEFAULT_DAYS);
    let main = render(texts, viewer.lang, days, &figures);
    page_response(
        &viewer,
        StatusCode::OK,
        layout(&viewer, texts.burden_title, "/alarm-burden", main),
    )
}

fn share(lang: Lang, value: Option<f64>) -> String {
    value.map_or_else(
        || "—".to_owned(),
        |share| format!("{} %", lang.number(share * 100.0, 0)),
    )
}

fn table(
    texts: &Texts,
    lang: Lang,
    caption: &str,
    id: &str,
    rows: &[BurdenRow],
    link: bool,
) -> Markup {
    html! {
        section aria-labelledby=(id) {
            h2 id=(id) { (caption) }
            @if rows.is_empty() {
                p { "—" }
            } @else {
                table class="burden" {
                    thead { tr {
                        th scope="col" { (texts.burden_key) }
                        th scope="col" class="number" { (texts.burden_alerts) }
                        th scope="col" class="number" { (texts.burden_per_patient_day) }
                        th scope="col" class="number" { (texts.burden_false_share) }
                        th scope="col" class="number" { (texts.burden_claim_minutes) }
                        th scope="col" class="number" { (texts.burden_in_time) }
                        th scope="col" class="number" { (texts.burden_escalations) }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                th scope="row" {
                                    @match (link, row.patient_id) {
                                        (true, Some(id)) => a href=(format!("/patients/{id}")) { (row.key) },
                                        _ => (row.key),
                                    }
                                }
                                td class="number" { (row.alerts) }
                                td class="number" { (lang.number(row.alerts_per_patient_day, 3)) }
                                td class="number" { (share(lang, row.false_alarm_share)) " (" (row.false_alarms) "/" (row.judged) ")" }
                                td class="number" { @match row.median_minutes_to_claim { Some(minutes) => (lang.number(minutes, 0)), None => "—" } }
                                td class="number" { (share(lang, row.claimed_within_target_share)) }
                                td class="number" { (row.escalations) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Horizontal bars of the week's noisiest rules, with the numbers written
/// beside them (the table below has them too).
fn bars(texts: &Texts, rows: &[BurdenRow]) -> Markup {
    let most = rows.iter().map(|row| row.alerts).max().unwrap_or(0).max(1) as f64;
    let height = 24 * rows.len().max(1) + 8;
    let description: Vec<String> = rows
        .iter()
        .map(|row| format!("{}: {}", row.key, row.alerts))
        .collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="bars" role="img" viewBox=(format!("0 0 640 {height}"))
            width="640" height=(height) aria-labelledby="bars-title" font-family="system-ui, sans-serif" font-size="12" {
            title id="bars-title" { (texts.burden_noisiest) }
            desc { (description.join("; ")) }
            @for (index, row) in rows.iter().enumerate() {
                @let y = 4 + index * 24;
                @let width = (row.alerts as f64 / most * 300.0).max(2.0);
                text x="4" y=(y + 15) fill="#1a1a1a" { (row.key) }
                rect x="300" y=(y + 3) width=(format!("{width:.1}")) height="16" fill="#1d4f91" {}
                text x=(format!("{:.1}", 306.0 + width)) y=(y + 15) fill="#1a1a1a" { (row.alerts) }
            }
        }
    }
}

fn render(texts: &Texts, lang: Lang, days: i64, figures: &AlarmBurden) -> Markup {
    html! {
        h1 { (texts.burden_title) }
        nav class="periods" aria-label=(texts.period) {
            (texts.period) ": "
            @for period in PERIODS {
                a href=(format!("?days={period}")) aria-current=[(period == days).then_some("true")] {
                    (fill(texts.days, &[&period.to_string()]))
                }
                " "
            }
        }
        p class="summary" {
            (fill(texts.burden_summary, &[
                &figures.total.alerts.to_string(),
                &figures.patients.to_string(),
                &lang.number(figures.days, 0),
                &lang.number(figures.total.alerts_per_patient_day, 3),
                &share(lang, figures.total.false_alarm_share),
            ]))
        }
        p class="hint" { (texts.burden_definitions) }
        section aria-labelledby="noisiest" {
            h2 id="noisiest" { (texts.burden_noisiest) }
            @if figures.noisiest_rules_this_week.is_empty() {
                p { "—" }
            } @else {
                figure class="metric-chart" { (bars(texts, &figures.noisiest_rules_this_week)) }
            }
        }
        (table(texts, lang, texts.burden_by_protocol, "by-protocol", &figures.by_protocol, false))
        (table(texts, lang, texts.burden_by_rule, "by-rule", &figures.by_rule, false))
        (table(texts, lang, texts.burden_by_team, "by-team", &figures.by_team, false))
        (table(texts, lang, texts.burden_by_patient, "by-patient", &figures.by_patient, true))
    }
}
