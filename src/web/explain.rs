//! One alert as a row of the worklist or the patient page: priority (colour,
//! shape and word), the reason, the suggested NTS level, the time waited
//! against the response target, who has it, and an explanation card with
//! every factor behind it and the actions a nurse can take.
//!
//! In: a [`WorklistAlert`] (its stored explanation is the source of every
//! fact shown). Out: markup. Pure, apart from a memo of rendered cards
//! ([`card`]): a card is a pure function of the alert's evidence, status and
//! priority and of the language and time zone, so it is rendered once per
//! change and not again for every nurse's every reload.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use super::i18n::{self, fill, Texts};
use crate::alert_book::{
    max_snooze_minutes, nts_code, priority_code, AlertStatus, EscalationTarget, Outcome,
};
use crate::domain::{Metric, Timestamp};
use crate::protocols::Priority;
use crate::worklist::{capitalised, Lang, WorklistAlert};

/// How moments are shown on these pages.
#[derive(Clone, Copy)]
pub struct Clock {
    pub lang: Lang,
    pub zone: chrono_tz::Tz,
}

impl Clock {
    pub fn moment(self, at: Timestamp) -> String {
        i18n::moment(self.lang, self.zone, at)
    }
}

/// The priority as words and a shape, so it never rests on colour alone.
pub fn priority_badge(lang: Lang, priority: Priority) -> Markup {
    let code = priority_code(priority);
    let shape = match priority {
        Priority::High => "▲▲▲",
        Priority::Medium => "▲▲",
        Priority::Low => "▲",
        Priority::Informational => "●",
    };
    html! {
        span class=(format!("prio prio-{code}")) {
            span aria-hidden="true" class="prio-shape" { (shape) }
            " " (lang.text(&format!("priority_{code}")))
        }
    }
}

fn status_text(lang: Lang, status: AlertStatus) -> &'static str {
    lang.text(&format!("status_{}", status.code()))
}

pub fn outcome_text(texts: &Texts, outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::ContactedPatient => texts.outcome_contacted_patient,
        Outcome::HomeVisitPlanned => texts.outcome_home_visit_planned,
        Outcome::GpOrSpecialistInformed => texts.outcome_gp_or_specialist_informed,
        Outcome::MedicationChangedPerProtocol => texts.outcome_medication_changed_per_protocol,
        Outcome::NoActionNeeded => texts.outcome_no_action_needed,
        Outcome::MeasurementError => texts.outcome_measurement_error,
    }
}

const OUTCOMES: [Outcome; 6] = [
    Outcome::ContactedPatient,
    Outcome::HomeVisitPlanned,
    Outcome::GpOrSpecialistInformed,
    Outcome::MedicationChangedPerProtocol,
    Outcome::NoActionNeeded,
    Outcome::MeasurementError,
];

const TARGETS: [EscalationTarget; 4] = [
    EscalationTarget::ElderlyCarePhysician,
    EscalationTarget::GeneralPractitioner,
    EscalationTarget::OutOfHoursGp,
    EscalationTarget::MobileGeriatricTeam,
];

pub fn target_text(texts: &Texts, code: &str) -> String {
    match code {
        "elderly_care_physician" => texts.target_elderly_care_physician.to_owned(),
        "general_practitioner" => texts.target_general_practitioner.to_owned(),
        "out_of_hours_gp" => texts.target_out_of_hours_gp.to_owned(),
        "mobile_geriatric_team" => texts.target_mobile_geriatric_team.to_owned(),
        other => other.replace('_', " "),
    }
}

/// Snooze choices in minutes; those past the priority's cap are left out.
const SNOOZE_CHOICES: [i64; 6] = [15, 30, 60, 120, 240, 24 * 60];

/// The time waited against the response target, as words; the script
/// keeps it counting from the `data-` times.
fn waiting(texts: &Texts, lang: Lang, alert: &WorklistAlert) -> Markup {
    let waited = fill(texts.waited, &[&i18n::duration(lang, alert.waited_minutes)]);
    let target = if alert.overdue {
        fill(
            texts.over,
            &[&i18n::duration(lang, alert.remaining_minutes)],
        )
    } else {
        fill(
            texts.left,
            &[&i18n::duration(lang, alert.remaining_minutes.max(0))],
        )
    };
    let waiting_for_someone = matches!(
        alert.item.alert.status,
        AlertStatus::Open | AlertStatus::Escalated | AlertStatus::Snoozed
    );
    html! {
        span class={ "wait" @if alert.overdue { " overdue" } }
            data-opened=(alert.item.alert.opened_at.to_datetime().to_rfc3339())
            data-respond-by=(alert.item.alert.respond_by.to_datetime().to_rfc3339())
            data-waiting=(waiting_for_someone) {
            span class="waited" { (waited) }
            @if waiting_for_someone {
                " · "
                span class="target" {
                    @if alert.overdue { span aria-hidden="true" { "⚠ " } }
                    (target)
                }
            }
        }
    }
}

/// Who has the alert and where it stands.
fn holder(texts: &Texts, clock: Clock, alert: &WorklistAlert) -> Markup {
    let alert = &alert.item.alert;
    html! {
        span class="holder" {
            @match alert.status {
                AlertStatus::Claimed => {
                    (fill(texts.claimed_by, &[alert.claimed_by.as_deref().unwrap_or("?")]))
                }
                AlertStatus::Snoozed => {
                    (fill(texts.snoozed_until, &[&alert.snoozed_until.map(|until| clock.moment(until)).unwrap_or_default()]))
                }
                AlertStatus::Escalated => {
                    (fill(texts.escalated_to, &[&target_text(texts, alert.escalated_to.as_deref().unwrap_or("?"))]))
                    @if let Some(by) = &alert.claimed_by { " · " (fill(texts.claimed_by, &[by])) }
                }
                AlertStatus::Resolved => {
                    (status_text(clock.lang, alert.status))
                    @if let Some(outcome) = alert.outcome { ": " (outcome_text(texts, outcome)) }
                }
                AlertStatus::Open => { (texts.not_claimed) }
            }
        }
    }
}

/// One alert; `actions` adds the action forms (not for resolved alerts).
pub fn alert_row(texts: &Texts, clock: Clock, alert: &WorklistAlert) -> Markup {
    let lang = clock.lang;
    let item = &alert.item.alert;
    let id = item.id;
    let code = priority_code(item.priority);
    html! {
        li class=(format!("alert prio-{code} status-{}", item.status.code())) id=(format!("alert-{id}"))
            data-alert=(id) data-rule=(item.rule_key) data-status=(item.status.code()) {
            div class="alert-line" {
                (priority_badge(lang, item.priority))
                span class="reason" { (alert.reason) }
                span class="nts" title=(texts.nts_title) {
                    span class="sr-only" { (texts.nts_title) " " }
                    (nts_code(item.nts))
                }
                (waiting(texts, lang, alert))
                (holder(texts, clock, alert))
            }
            details class="card" data-alert=(id) {
                (card(texts, clock, item))
            }
        }
    }
}

/// What an explanation card shows depends on; see [`card`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CardKey {
    alert: uuid::Uuid,
    /// The evidence: its event time and score change with every write of
    /// the explanation.
    updated_at: i64,
    score: u64,
    status: AlertStatus,
    priority: Priority,
    lang: Lang,
    zone: chrono_tz::Tz,
}

/// Rendered cards, shared by every app in the process (a card is the same
/// wherever its key is). Emptied when it holds [`MAX_CARDS`].
static CARDS: LazyLock<Mutex<HashMap<CardKey, Arc<str>>>> = LazyLock::new(Mutex::default);

/// Cards kept; a worklist page shows up to 200 alerts per language.
const MAX_CARDS: usize = 8_192;

/// The inside of an alert's explanation card: the summary line, every
/// factor, and the actions while it is unresolved. Rendered once per key.
fn card(texts: &Texts, clock: Clock, item: &crate::alert_book::Alert) -> PreEscaped<Arc<str>> {
    let key = CardKey {
        alert: item.id,
        updated_at: item.updated_at.micros(),
        score: item.score.to_bits(),
        status: item.status,
        priority: item.priority,
        lang: clock.lang,
        zone: clock.zone,
    };
    let cards = || {
        CARDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(card) = cards().get(&key) {
        return PreEscaped(card.clone());
    }
    let rendered: Arc<str> = html! {
        summary { (texts.explain_and_act) }
        div class="card-body" {
            (explanation(texts, clock, item.id, &item.explanation))
            @if item.status != AlertStatus::Resolved {
                (actions(texts, item.id, item.priority))
            }
        }
    }
    .into_string()
    .into();
    let mut cards = cards();
    if cards.len() >= MAX_CARDS {
        cards.clear();
    }
    cards.insert(key, rendered.clone());
    PreEscaped(rendered)
}

fn metric_of(factor: &Value) -> Option<Metric> {
    factor
        .get("metric")
        .and_then(Value::as_str)
        .and_then(Metric::from_code)
}

fn number(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

/// Renders a value of a metric with its unit (the worklist's own words).
pub fn value_with_unit(lang: Lang, metric: Metric, value: f64) -> String {
    crate::worklist::value_text(metric, value, lang)
}

fn news2_parameter_name(lang: Lang, code: &str) -> &'static str {
    match (lang, code) {
        (Lang::Nl, "respiration_rate") => "Ademhalingsfrequentie",
        (Lang::Nl, "spo2") => "Zuurstofsaturatie",
        (Lang::Nl, "air_or_oxygen") => "Lucht of extra zuurstof",
        (Lang::Nl, "systolic_bp") => "Bovendruk",
        (Lang::Nl, "pulse") => "Hartslag",
        (Lang::Nl, "consciousness") => "Bewustzijn (ACVPU)",
        (Lang::Nl, "temperature") => "Temperatuur",
        (Lang::En, "respiration_rate") => "Respiration rate",
        (Lang::En, "spo2") => "Oxygen saturation",
        (Lang::En, "air_or_oxygen") => "Air or oxygen",
        (Lang::En, "systolic_bp") => "Systolic pressure",
        (Lang::En, "pulse") => "Pulse",
        (Lang::En, "consciousness") => "Consciousness (ACVPU)",
        (Lang::En, "temperature") => "Temperature",
        _ => "?",
    }
}

const NEWS2_PARAMETERS: [&str; 7] = [
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
];

fn band_text(texts: &Texts, band: &str) -> &'static str {
    match band {
        "low-medium" => texts.band_low_medium,
        "medium" => texts.band_medium,
        "high" => texts.band_high,
        _ => texts.band_low,
    }
}

/// The metric a trend chart of this alert should show: the first factor
/// naming one, or for NEWS2 the parameter that scores highest.
pub fn chart_metric(explanation: &Value) -> Option<Metric> {
    let factors = explanation.get("factors")?.as_array()?;
    if let Some(metric) = factors.iter().find_map(metric_of) {
        return Some(metric);
    }
    let news2 = factors
        .iter()
        .find(|factor| factor.get("factor").and_then(Value::as_str) == Some("news2"))?;
    let subscores = news2.get("score")?.get("subscores")?.as_object()?;
    let (code, _) = subscores
        .iter()
        .filter_map(|(code, score)| Some((code.as_str(), score.as_u64()?)))
        .max_by_key(|(_, score)| *score)?;
    match code {
        "respiration_rate" => Some(Metric::RespiratoryRate),
        "spo2" => Some(Metric::Spo2),
        "systolic_bp" => Some(Metric::BpSystolic),
        "pulse" => Some(Metric::HeartRate),
        "temperature" => Some(Metric::BodyTemperature),
        _ => None,
    }
}

/// Every factor of the stored explanation, in words.
fn explanation(texts: &Texts, clock: Clock, alert_id: uuid::Uuid, explanation: &Value) -> Markup {
    let lang = clock.lang;
    let factors = explanation
        .get("factors")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let chart = chart_metric(explanation);
    html! {
        h3 class="card-title" { (texts.why_here) }
        ul class="factors" {
            @for factor in factors {
                @if let Some(markup) = factor_markup(texts, clock, factor) {
                    li { (markup) }
                }
            }
        }
        @if let Some(metric) = chart {
            figure class="trend" {
                img src=(format!("/alerts/{alert_id}/trend.svg?lang={}", lang.code()))
                    alt=(format!("{}: {}", texts.chart_caption, lang.metric(metric)))
                    width="480" height="160" loading="lazy";
                figcaption { (texts.chart_caption) ", " (lang.metric(metric)) }
            }
        }
    }
}

fn factor_markup(texts: &Texts, clock: Clock, factor: &Value) -> Option<Markup> {
    let lang = clock.lang;
    let kind = factor.get("factor").and_then(Value::as_str)?;
    let markup = match kind {
        "threshold" => {
            let metric = metric_of(factor)?;
            let value = number(factor, "value")?;
            let threshold = number(factor, "threshold")?;
            let direction = factor.get("direction").and_then(Value::as_str)?;
            let repeat = factor
                .get("repeat")
                .and_then(Value::as_array)
                .and_then(|pair| Some((pair.first()?.as_u64()?, pair.get(1)?.as_u64()?)));
            html! {
                strong { (capitalised(lang.metric(metric))) }
                ": " (value_with_unit(lang, metric, value))
                " (" (lang.text("limit")) ": " (lang.text(direction)) " " (value_with_unit(lang, metric, threshold))
                @if let Some(recover) = number(factor, "recover_at") {
                    "; " (fill(texts.recovers_at, &[&value_with_unit(lang, metric, recover)]))
                }
                ")"
                @if let Some((met, of)) = repeat {
                    @if of > 1 { "; " (fill(texts.repeat, &[&met.to_string(), &of.to_string()])) }
                }
                @if let Some(held) = number(factor, "held_minutes") {
                    @if held >= 1.0 { "; " (fill(texts.held, &[&i18n::duration(lang, held as i64)])) }
                }
            }
        }
        "baseline" => {
            let metric = metric_of(factor)?;
            let baseline = factor.get("baseline")?;
            let median = number(baseline, "median")?;
            let mad = number(baseline, "mad").unwrap_or(0.0);
            let count = baseline.get("count").and_then(Value::as_u64).unwrap_or(0);
            html! {
                @if count == 0 {
                    strong { (texts.population_prior) }
                } @else {
                    strong { (texts.own_baseline) }
                }
                ": " (value_with_unit(lang, metric, median)) " ± " (lang.number(mad, crate::worklist::display_decimals(metric) + 1))
                @if count > 0 { " (" (fill(texts.from_readings, &[&count.to_string()])) ")" }
            }
        }
        "news2" => news2_markup(texts, lang, factor)?,
        "trend" => {
            let metric = metric_of(factor)?;
            let from = number(factor, "from_value")?;
            let to = number(factor, "to_value")?;
            let change = number(factor, "change")?;
            let delta = number(factor, "delta").unwrap_or(0.0);
            let from_ts = factor
                .get("from_ts")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339)
                .map(|at| clock.moment(at))
                .unwrap_or_default();
            let signed = |value: f64| {
                let text = value_with_unit(lang, metric, value.abs());
                if value < 0.0 {
                    format!("−{text}")
                } else {
                    format!("+{text}")
                }
            };
            html! {
                strong { (texts.trend_title) " " (lang.metric(metric)) }
                ": " (fill(texts.trend_text, &[
                    &value_with_unit(lang, metric, from), &from_ts,
                    &value_with_unit(lang, metric, to), &signed(change), &signed(delta),
                ]))
            }
        }
        "deviation" => {
            let metric = metric_of(factor)?;
            let value = number(factor, "value")?;
            let deviation = number(factor, "deviation")?;
            html! {
                strong { (texts.deviation_title) }
                ": " (capitalised(lang.metric(metric))) " " (value_with_unit(lang, metric, value))
                " (" (if deviation < 0.0 { "−" } else { "+" }) (value_with_unit(lang, metric, deviation.abs())) ")"
            }
        }
        "anomaly" => {
            let distance = number(factor, "distance")?;
            let threshold = number(factor, "threshold").unwrap_or(0.0);
            let contributions = factor
                .get("contributions")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let since = factor
                .get("since")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339);
            html! {
                strong { (texts.anomaly_title) }
                ": " (fill(texts.anomaly_distance, &[&lang.number(distance, 1), &lang.number(threshold, 1)]))
                @if let Some(since) = since { ", " (lang.text("since")) " " (clock.moment(since)) }
                ul {
                    @for contribution in contributions.iter().take(3) {
                        @if let (Some(metric), Some(value), Some(expected)) = (metric_of(contribution), number(contribution, "value"), number(contribution, "expected")) {
                            li {
                                (capitalised(lang.metric(metric))) " " (value_with_unit(lang, metric, value))
                                " (" (texts.expected) " " (value_with_unit(lang, metric, expected)) ")"
                            }
                        }
                    }
                }
            }
        }
        "missed_measurement" => {
            let metric = metric_of(factor)?;
            let due_by = factor.get("due_by").and_then(Value::as_str).unwrap_or("?");
            let cause = factor
                .get("cause")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let day = factor
                .get("day")
                .and_then(Value::as_str)
                .unwrap_or_default();
            html! {
                strong { (texts.missed_title) }
                ": " (capitalised(lang.metric(metric))) " " (lang.text("not_measured_by")) " " (due_by)
                @if !day.is_empty() { " (" (day) ")" }
                @if !cause.is_empty() { "; " (lang.text(&format!("cause_{cause}"))) }
            }
        }
        "device" => {
            let flag = factor
                .get("flag")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let device = factor
                .get("device_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            html! {
                strong { (texts.device_signal) }
                ": " (lang.text(flag))
                @if !device.is_empty() { " (" (device) ")" }
                @if let Some(battery) = number(factor, "battery_pct") { ", " (lang.number(battery, 0)) " %" }
            }
        }
        "data_quality" => {
            let flag = factor
                .get("flag")
                .and_then(Value::as_str)
                .unwrap_or_default();
            html! { strong { (texts.data_quality) } ": " (lang.text(flag)) }
        }
        "alarm_signal" => {
            let signal = factor
                .get("signal")
                .and_then(Value::as_str)
                .unwrap_or_default();
            html! { strong { (texts.alarm_signal) } ": " (lang.text(signal)) }
        }
        "also_found" => {
            let nested = factor
                .get("factors")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let priority = factor
                .get("priority")
                .and_then(Value::as_str)
                .unwrap_or_default();
            html! {
                strong { (texts.also_found) }
                @if !priority.is_empty() { " (" (lang.text(&format!("priority_{priority}"))) ")" }
                ul {
                    @for nested in nested {
                        // One level deep: a covered finding names no others.
                        @if nested.get("factor").and_then(Value::as_str) != Some("also_found") {
                            @if let Some(markup) = factor_markup(texts, clock, nested) {
                                li { (markup) }
                            }
                        }
                    }
                }
            }
        }
        _ => return None,
    };
    Some(markup)
}

/// The NEWS2 sub-scores as a table, with missing and stale parameters named.
fn news2_markup(texts: &Texts, lang: Lang, factor: &Value) -> Option<Markup> {
    let score = factor.get("score")?;
    let total = score.get("total").and_then(Value::as_u64)?;
    let band = score.get("band").and_then(Value::as_str).unwrap_or("low");
    let complete = score
        .get("complete")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let subscores = score.get("subscores").and_then(Value::as_object);
    let listed = |key: &str| -> Vec<&str> {
        factor
            .get(key)
            .or_else(|| score.get(key))
            .and_then(Value::as_array)
            .map(|codes| codes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let stale = listed("stale");
    let freshness = factor
        .get("freshness_hours")
        .and_then(Value::as_u64)
        .unwrap_or(12);
    Some(html! {
        strong { (texts.news2_title) " " (total) }
        " (" (band_text(texts, band)) "). "
        @if complete { (texts.news2_complete) } @else { em { (texts.news2_partial) } }
        table class="news2" {
            caption class="sr-only" { (texts.news2_title) }
            thead { tr { th scope="col" { (texts.parameter) } th scope="col" { (texts.subscore) } } }
            tbody {
                @for code in NEWS2_PARAMETERS {
                    @let subscore = subscores.and_then(|map| map.get(code)).and_then(Value::as_u64);
                    tr class=[subscore.is_none().then_some("missing")] {
                        th scope="row" { (news2_parameter_name(lang, code)) }
                        td {
                            @match subscore {
                                Some(points) => (points),
                                None => {
                                    @if stale.contains(&code) {
                                        (fill(texts.stale, &[&freshness.to_string()]))
                                    } @else {
                                        (texts.not_measured)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The action forms of an unresolved alert. The script sends them to the
/// JSON API with the CSRF header and shows the answer in the status line.
fn actions(texts: &Texts, id: uuid::Uuid, priority: Priority) -> Markup {
    let cap = max_snooze_minutes(priority);
    let base = format!("/api/v1/alerts/{id}");
    html! {
        div class="actions" role="group" aria-label=(texts.actions) {
            form class="action" method="post" action=(format!("{base}/claim")) data-action="claim" {
                button type="submit" { (texts.claim) }
            }
            form class="action" method="post" action=(format!("{base}/resolve")) data-action="resolve" {
                label { (texts.outcome) " "
                    select name="outcome" required {
                        @for outcome in OUTCOMES {
                            option value=(outcome.code()) { (outcome_text(texts, outcome)) }
                        }
                    }
                }
                button type="submit" { (texts.resolve) }
            }
            form class="action" method="post" action=(format!("{base}/snooze")) data-action="snooze" {
                label { (texts.snooze_for) " "
                    select name="minutes" {
                        @for minutes in SNOOZE_CHOICES.iter().filter(|minutes| **minutes <= cap) {
                            option value=(minutes) {
                                @if *minutes < 60 { (minutes) " " (texts.minutes) }
                                @else { (minutes / 60) " " (texts.hours) }
                            }
                        }
                    }
                }
                button type="submit" { (texts.snooze) }
                small class="hint" { (texts.snooze_hint) }
            }
            form class="action" method="post" action=(format!("{base}/escalate")) data-action="escalate" {
                label { (texts.escalate_to) " "
                    select name="to" {
                        @for target in TARGETS {
                            option value=(target.code()) { (target_text(texts, target.code())) }
                        }
                    }
                }
                button type="submit" { (texts.escalate) }
            }
            form class="action note" method="post" action=(format!("{base}/notes")) data-action="notes" {
                label { (texts.note)
                    textarea name="text" rows="2" maxlength="4000" required {}
                }
                button type="submit" { (texts.add_note) }
            }
            p class="action-result" role="status" aria-live="polite" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clock(lang: Lang) -> Clock {
        Clock {
            lang,
            zone: chrono_tz::Europe::Amsterdam,
        }
    }

    fn markup(lang: Lang, factor: &Value) -> String {
        factor_markup(super::super::i18n::texts(lang), clock(lang), factor)
            .unwrap()
            .into_string()
    }

    #[test]
    fn a_threshold_factor_names_value_limit_and_recovery() {
        let factor = json!({"factor": "threshold", "metric": "body_temperature", "value": 38.9,
            "threshold": 38.0, "direction": "above", "recover_at": 37.8, "repeat": [2, 3], "held_minutes": 45.0});
        let html = markup(Lang::Nl, &factor);
        assert!(html.contains("38,9 °C"), "{html}");
        assert!(html.contains("boven 38 °C"), "{html}");
        assert!(html.contains("herstelt bij 37,8 °C"), "{html}");
        assert!(html.contains("2 van de laatste 3 metingen"), "{html}");
        assert!(html.contains("houdt 45 min aan"), "{html}");
    }

    #[test]
    fn a_partial_news2_names_every_missing_and_stale_parameter() {
        let factor = json!({"factor": "news2", "threshold": 5.0, "freshness_hours": 12,
            "stale": ["respiration_rate"],
            "score": {"total": 6, "band": "medium", "complete": false,
                "subscores": {"spo2": 2, "systolic_bp": 1, "pulse": 2, "temperature": 1},
                "missing": ["respiration_rate", "air_or_oxygen", "consciousness"]}});
        let html = markup(Lang::En, &factor);
        assert!(html.contains("NEWS2 6"), "{html}");
        assert!(html.contains("Partial score"), "{html}");
        assert_eq!(html.matches("class=\"missing\"").count(), 3, "{html}");
        assert!(html.contains("older than 12 hours"), "{html}");
        assert_eq!(html.matches("not measured").count(), 2, "{html}");
        // SpO2 and pulse both score 2: the chart shows one of them.
        let metric = chart_metric(&json!({"factors": [factor]}));
        assert!(
            matches!(metric, Some(Metric::Spo2 | Metric::HeartRate)),
            "{metric:?}"
        );
    }

    #[test]
    fn the_chart_follows_the_first_metric_of_the_explanation() {
        let explanation = json!({"factors": [
            {"factor": "alarm_signal", "signal": "second_contact"},
            {"factor": "trend", "metric": "body_weight", "from_value": 80.0, "to_value": 82.4,
             "change": 2.4, "delta": 2.0, "window_hours": 72, "from_ts": "2026-12-04T07:00:00Z"}]});
        assert_eq!(chart_metric(&explanation), Some(Metric::BodyWeight));
        let html = markup(Lang::Nl, &explanation["factors"][1]);
        assert!(
            html.contains("van 80 kg (4 dec 08:00) naar 82,4 kg"),
            "{html}"
        );
        assert!(html.contains("+2,4 kg"), "{html}");
    }

    #[test]
    fn a_covered_finding_is_listed_with_its_own_evidence() {
        let factor = json!({"factor": "also_found", "rule_id": "default/spo2_low", "priority": "high",
            "factors": [{"factor": "threshold", "metric": "spo2", "value": 89.0, "threshold": 92.0,
                "direction": "below", "recover_at": 94.0, "repeat": [2, 3], "held_minutes": null}]});
        let html = markup(Lang::Nl, &factor);
        assert!(html.contains("Ook gevonden"), "{html}");
        assert!(html.contains("(hoog)"), "{html}");
        assert!(html.contains("89 %"), "{html}");
        assert!(html.contains("onder 92 %"), "{html}");
        let html = markup(Lang::En, &factor);
        assert!(html.contains("Also found"), "{html}");
        assert!(html.contains("below 92 %"), "{html}");
    }

    #[test]
    fn snooze_choices_respect_the_priority_cap() {
        let html = actions(
            super::super::i18n::texts(Lang::Nl),
            uuid::Uuid::nil(),
            Priority::High,
        )
        .into_string();
        assert!(html.contains("value=\"60\""));
        assert!(!html.contains("value=\"120\""), "{html}");
        let low = actions(
            super::super::i18n::texts(Lang::Nl),
            uuid::Uuid::nil(),
            Priority::Low,
        )
        .into_string();
        assert!(low.contains("value=\"1440\""));
    }

    #[test]
    fn priority_is_told_by_word_and_shape_not_colour_alone() {
        let html = priority_badge(Lang::Nl, Priority::High).into_string();
        assert!(html.contains("hoog"));
        assert!(html.contains("▲▲▲"));
        assert!(html.contains("aria-hidden=\"true\""));
    }
}
