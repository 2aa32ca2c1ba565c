//! The patient page (`GET /patients/{id}?days=14`): everything a nurse needs
//! before calling one person.
//!
//! - charts of each measured metric over the chosen period (default 14
//!   days), with the limits of the patient's threshold rules (personal
//!   thresholds applied) and the patient's own baseline band, each with a
//!   table of its readings for screen readers and exact values;
//! - open alerts (with their actions) and earlier ones with their history;
//! - the notes written on those alerts;
//! - devices with their last contact, battery and fault;
//! - protocols and personal thresholds (every version, the one in force
//!   marked, with its review-by date), the proposals awaiting a second
//!   coordinator and, for coordinators, a form per rule to set one
//!   (`super::threshold_forms`).
//!
//! Scoped and audited through [`crate::auth::patient_for`]: a patient
//! outside the viewer's teams answers 404.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::chart::{self, ChartSpec};
use super::explain::{alert_row, outcome_text, priority_badge, value_with_unit, Clock};
use super::i18n::{fill, Texts};
use super::{layout, page_error, page_response, Viewer};
use crate::alert_book::{AlertEvent, AlertStatus};
use crate::api::{ApiError, AppState};
use crate::auth::{patient_for, Purpose};
use crate::domain::{DeviceStatus, Metric, Timestamp};
use crate::protocols::{Protocol, Rule, RuleKind};
use crate::store::{
    AlertOrder, AlertQuery, Patient, Role, RuleOverride, StoredReading, ThresholdProposal,
};
use crate::validate::DeviceRecord;
use crate::worklist::{self, capitalised, Lang, WorklistAlert};

const DAY: i64 = 86_400_000_000;
/// The periods offered, in days.
const PERIODS: [i64; 5] = [3, 7, 14, 30, 90];
const DEFAULT_DAYS: i64 = 14;
const MAX_DAYS: i64 = 365;
/// Alerts shown: the open ones and the most recent others.
const RECENT_ALERTS: i64 = 50;
/// Readings read for the charts at most.
const MAX_READINGS: i64 = 50_000;
/// Points drawn per chart at most (longer series are averaged per slice).
const MAX_CHART_POINTS: usize = 600;
/// Readings listed in each chart's table.
const TABLE_ROWS: usize = 30;
/// The baseline band: readings of the last 14 days, median ± 2 MAD, from
/// at least 5 readings (the engine's own minimum).
const BASELINE_DAYS: i64 = 14;
const BASELINE_MIN_COUNT: usize = 5;

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    days: Option<i64>,
}

/// What the page shows, read before rendering.
struct PatientView {
    patient: Patient,
    alerts: Vec<(WorklistAlert, Vec<AlertEvent>)>,
    readings: Vec<StoredReading>,
    truncated: bool,
    devices: Vec<(DeviceRecord, Option<DeviceStatus>)>,
    overrides: Vec<RuleOverride>,
    proposals: Vec<ThresholdProposal>,
    protocols: BTreeMap<String, Protocol>,
    from: Timestamp,
    to: Timestamp,
    days: i64,
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(patient_id): Path<Uuid>,
    Query(params): Query<PageParams>,
) -> Response {
    let days = params.days.unwrap_or(DEFAULT_DAYS).clamp(1, MAX_DAYS);
    let view = match read(&state, &viewer, patient_id, days).await {
        Ok(view) => view,
        Err(error) => return page_error(&viewer, error),
    };
    let texts = viewer.texts();
    let main = render(texts, &viewer, &view);
    page_response(
        &viewer,
        StatusCode::OK,
        layout(&viewer, &view.patient.display_name, "", main),
    )
}

async fn read(
    state: &AppState,
    viewer: &Viewer,
    patient_id: Uuid,
    days: i64,
) -> Result<PatientView, ApiError> {
    let caller = viewer.caller();
    // Authorises (404 out of scope) and writes the audit row first.
    let access = patient_for(state, &caller, patient_id, Purpose::PatientPage).await?;
    let patient = access.patient;
    let to = Timestamp::now();
    let from = to.plus_micros(-days * DAY);
    let reading_from = from.min(to.plus_micros(-BASELINE_DAYS * DAY));
    let page = state
        .store
        .query_alerts(&AlertQuery {
            patient_id: Some(patient.id),
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
    let mut alerts = Vec::with_capacity(page.items.len());
    for item in page.items {
        let events = state.store.alert_events(item.alert.id).await?;
        alerts.push((worklist::worklist_alert(item, to, viewer.lang), events));
    }
    let mut readings = state
        .store
        .patient_readings(patient.id, None, reading_from, to, MAX_READINGS + 1)
        .await?;
    let truncated = readings.len() as i64 > MAX_READINGS;
    readings.truncate(MAX_READINGS as usize);
    let mut devices = Vec::new();
    for device in state.store.patient_devices(patient.id).await? {
        let status = state.store.device_status(&device.device_id).await?;
        devices.push((device, status));
    }
    let overrides = state.store.patient_rule_overrides(patient.id).await?;
    let proposals = state.store.patient_threshold_proposals(patient.id).await?;
    let protocols = (*state.protocols.current()).clone();
    Ok(PatientView {
        patient,
        alerts,
        readings,
        truncated,
        devices,
        overrides,
        proposals,
        protocols,
        from,
        to,
        days,
    })
}

/// Returns the override of each rule in force at `now`: the newest version
/// whose validity covers it.
fn overrides_in_force(overrides: &[RuleOverride], now: Timestamp) -> BTreeMap<&str, &RuleOverride> {
    let mut in_force: BTreeMap<&str, &RuleOverride> = BTreeMap::new();
    for candidate in overrides {
        let valid =
            candidate.valid_from <= now && candidate.valid_until.is_none_or(|until| until > now);
        if !valid {
            continue;
        }
        match in_force.get(candidate.rule_key.as_str()) {
            Some(current) if current.id > candidate.id => {}
            _ => {
                in_force.insert(candidate.rule_key.as_str(), candidate);
            }
        }
    }
    in_force
}

/// The patient's rules with personal settings in force applied, keyed
/// `protocol/rule`.
fn effective_rules(view: &PatientView) -> Vec<(String, Rule, bool)> {
    let in_force = overrides_in_force(&view.overrides, view.to);
    let mut rules = Vec::new();
    for protocol_id in &view.patient.protocols {
        let Some(protocol) = view.protocols.get(protocol_id) else {
            continue;
        };
        for rule in &protocol.rules {
            let key = format!("{protocol_id}/{}", rule.id);
            match in_force.get(key.as_str()) {
                Some(personal) => rules.push((key, rule.with_settings(&personal.settings), true)),
                None => rules.push((key, rule.clone(), false)),
            }
        }
    }
    rules
}

/// The limits drawn on a metric's chart: every threshold rule on it.
fn limits_for(rules: &[(String, Rule, bool)], metric: Metric, lang: Lang) -> Vec<(f64, String)> {
    let mut limits = Vec::new();
    for (_, rule, personal) in rules {
        if rule.kind != RuleKind::Threshold || rule.metric != Some(metric) {
            continue;
        }
        let mark = if *personal { " *" } else { "" };
        if let Some(above) = rule.above {
            limits.push((
                above,
                format!(
                    "{} {}{mark}",
                    lang.text("above"),
                    value_with_unit(lang, metric, above)
                ),
            ));
        }
        if let Some(below) = rule.below {
            limits.push((
                below,
                format!(
                    "{} {}{mark}",
                    lang.text("below"),
                    value_with_unit(lang, metric, below)
                ),
            ));
        }
    }
    limits.sort_by(|a, b| a.0.total_cmp(&b.0));
    limits.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-9);
    limits
}

/// The patient's own band: median ± 2 MAD of the last 14 days' readings.
fn baseline_band(values: &[f64], metric: Metric) -> Option<(f64, f64)> {
    if values.len() < BASELINE_MIN_COUNT {
        return None;
    }
    let mut values = values.to_vec();
    let (median, mad) = crate::triage::baseline::median_and_mad(&mut values);
    let mad = mad.max(crate::triage::baseline::min_spread(metric));
    Some((
        median - super::trend::BAND_MADS * mad,
        median + super::trend::BAND_MADS * mad,
    ))
}

fn render(texts: &Texts, viewer: &Viewer, view: &PatientView) -> Markup {
    let clock = Clock {
        lang: viewer.lang,
        zone: viewer.zone,
    };
    let patient = &view.patient;
    let (mut open, past): (Vec<_>, Vec<_>) = view
        .alerts
        .iter()
        .partition(|(alert, _)| alert.item.alert.status != AlertStatus::Resolved);
    // Open alerts in worklist order: most urgent first.
    open.sort_by(|(a, _), (b, _)| {
        let (a, b) = (&a.item.alert, &b.item.alert);
        b.priority
            .cmp(&a.priority)
            .then(b.score.total_cmp(&a.score))
            .then(a.respond_by.cmp(&b.respond_by))
    });
    html! {
        nav aria-label="breadcrumb" class="breadcrumb" {
            a href="/" { (texts.nav_worklist) } " › " span aria-current="page" { (patient.display_name) }
        }
        h1 { (patient.display_name) }
        dl class="facts" {
            dt { (texts.team) } dd { (patient.team) }
            @if let Some(year) = patient.birth_year { dt { (texts.birth_year) } dd { (year) } }
            dt { (texts.protocols) } dd { (protocol_names(view)) }
        }
        section aria-labelledby="open-alerts" {
            h2 id="open-alerts" { (texts.alerts_open) }
            @if open.is_empty() {
                p { (texts.no_open_alerts) }
            } @else {
                ul class="alerts" {
                    @for (alert, _) in &open { (alert_row(texts, clock, alert)) }
                }
            }
        }
        (measurements(texts, clock, view))
        (past_alerts(texts, clock, &view.alerts, &past))
        (notes(texts, clock, &view.alerts))
        (devices(texts, clock, view))
        (protocols(texts, clock, view))
        (super::threshold_forms::render(texts, clock, &threshold_part(viewer, view)))
    }
}

/// The personal-threshold part's data: every rule of the patient's
/// protocols with the rule in force.
fn threshold_part<'a>(
    viewer: &'a Viewer,
    view: &'a PatientView,
) -> super::threshold_forms::ThresholdPart<'a> {
    let in_force = crate::thresholds::versions_in_force(&view.overrides, view.to);
    let mut rules = Vec::new();
    for protocol_id in &view.patient.protocols {
        let Some(protocol) = view.protocols.get(protocol_id) else {
            continue;
        };
        for rule in &protocol.rules {
            let key = format!("{protocol_id}/{}", rule.id);
            let current = crate::thresholds::rule_with(rule, in_force.get(key.as_str()).copied());
            rules.push((key, rule, current));
        }
    }
    let user = &viewer.signed_in.session.user;
    let today = crate::triage::schedule::local_date(view.to, viewer.zone);
    super::threshold_forms::ThresholdPart {
        patient_id: view.patient.id,
        rules,
        proposals: &view.proposals,
        viewer: &user.username,
        coordinator: user.role == Role::Coordinator,
        earliest_review: today.succ_opt().unwrap_or(today),
    }
}

fn protocol_names(view: &PatientView) -> String {
    view.patient
        .protocols
        .iter()
        .map(|id| {
            view.protocols
                .get(id)
                .map_or_else(|| id.clone(), |protocol| protocol.name.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn measurements(texts: &Texts, clock: Clock, view: &PatientView) -> Markup {
    let lang = clock.lang;
    let rules = effective_rules(view);
    let mut by_metric: BTreeMap<&str, (Metric, Vec<&StoredReading>)> = BTreeMap::new();
    for reading in &view.readings {
        by_metric
            .entry(reading.metric.code())
            .or_insert_with(|| (reading.metric, Vec::new()))
            .1
            .push(reading);
    }
    let baseline_from = view.to.plus_micros(-BASELINE_DAYS * DAY);
    let from_label = clock.moment(view.from);
    let to_label = clock.moment(view.to);
    html! {
        section aria-labelledby="measurements" {
            h2 id="measurements" { (texts.measurements) }
            nav class="periods" aria-label=(texts.period) {
                (texts.period) ": "
                @for days in PERIODS {
                    a href=(format!("?days={days}")) aria-current=[(days == view.days).then_some("true")] {
                        (fill(texts.days, &[&days.to_string()]))
                    }
                    " "
                }
            }
            @if view.truncated { p class="note" { (fill(texts.shown_of, &[&MAX_READINGS.to_string(), "…"])) } }
            @let shown: Vec<_> = by_metric.values().filter(|(_, readings)| readings.iter().any(|r| r.ts >= view.from)).collect();
            @if shown.is_empty() { p { (texts.no_readings) } }
            div class="charts" {
                @for (metric, readings) in shown {
                    @let metric = *metric;
                    @let in_period: Vec<&StoredReading> = readings.iter().copied().filter(|r| r.ts >= view.from).collect();
                    @let points: Vec<(i64, f64)> = in_period.iter().map(|r| (r.ts.micros(), r.value)).collect();
                    @let baseline_values: Vec<f64> = readings.iter().filter(|r| r.ts >= baseline_from).map(|r| r.value).collect();
                    @let limits = limits_for(&rules, metric, lang);
                    @let band = baseline_band(&baseline_values, metric);
                    @let last = in_period.last();
                    @let description = last.map(|last| fill(texts.chart_summary, &[
                        &in_period.len().to_string(),
                        &value_with_unit(lang, metric, last.value),
                        &clock.moment(last.ts),
                    ])).unwrap_or_default();
                    @let title = format!("{} ({})", capitalised(lang.metric(metric)), fill(texts.days, &[&view.days.to_string()]));
                    figure class="metric-chart" data-metric=(metric.code()) {
                        figcaption {
                            strong { (capitalised(lang.metric(metric))) }
                            " · " (description)
                            @if band.is_some() { " · " span class="legend-band" { (texts.legend_baseline) } }
                            @if !limits.is_empty() { " · " span class="legend-limit" { (texts.legend_threshold) } }
                        }
                        (chart::render(&ChartSpec {
                            title: &title,
                            description: &description,
                            points: &chart::thin(&points, MAX_CHART_POINTS),
                            from_micros: view.from.micros(),
                            to_micros: view.to.micros(),
                            limits: &limits,
                            band,
                            from_label: &from_label,
                            to_label: &to_label,
                            decimals: 1,
                            width: 640,
                            height: 180,
                        }))
                        details class="readings-table" {
                            summary { (texts.as_table) }
                            table {
                                caption class="sr-only" { (title) }
                                thead { tr { th scope="col" { (texts.time) } th scope="col" { (texts.value) } th scope="col" { (texts.device) } } }
                                tbody {
                                    @for reading in in_period.iter().rev().take(TABLE_ROWS) {
                                        tr {
                                            td { (clock.moment(reading.ts)) }
                                            td { (value_with_unit(lang, metric, reading.value)) }
                                            td { (reading.device_id) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn event_text(texts: &Texts, lang: Lang, event: &AlertEvent) -> String {
    let detail = |key: &str| {
        event
            .detail
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let kind = match (lang, event.kind.as_str()) {
        (Lang::Nl, "raised") => "gemeld",
        (Lang::Nl, "updated") => "bijgewerkt",
        (Lang::Nl, "claimed") => "opgepakt",
        (Lang::Nl, "snoozed") => "uitgesteld",
        (Lang::Nl, "escalated") => "opgeschaald",
        (Lang::Nl, "auto_escalated") => "automatisch opgeschaald",
        (Lang::Nl, "resolved") => "afgerond",
        (Lang::Nl, "auto_resolved") => "door het systeem afgerond",
        (Lang::Nl, "note") => "notitie",
        (_, other) => other,
    };
    let mut text = kind.replace('_', " ");
    if let Some(outcome) =
        detail("outcome").and_then(|code| crate::alert_book::Outcome::from_code(&code))
    {
        text.push_str(": ");
        text.push_str(outcome_text(texts, outcome));
    } else if let Some(to) = detail("to") {
        text.push_str(": ");
        text.push_str(&super::explain::target_text(texts, &to));
    } else if let Some(reason) = detail("reason") {
        text.push_str(": ");
        text.push_str(&reason.replace('_', " "));
    }
    text
}

fn past_alerts(
    texts: &Texts,
    clock: Clock,
    all: &[(WorklistAlert, Vec<AlertEvent>)],
    past: &[&(WorklistAlert, Vec<AlertEvent>)],
) -> Markup {
    let lang = clock.lang;
    html! {
        section aria-labelledby="past-alerts" {
            h2 id="past-alerts" { (texts.alerts_past) }
            @if past.is_empty() {
                p { "—" }
            } @else {
                table class="past" {
                    thead { tr {
                        th scope="col" { (texts.time) } th scope="col" { (texts.priority) }
                        th scope="col" { (texts.reason) } th scope="col" { (texts.outcome) }
                        th scope="col" { (texts.history) }
                    } }
                    tbody {
                        @for (alert, events) in past {
                            tr {
                                td { (clock.moment(alert.item.alert.opened_at)) }
                                td { (priority_badge(lang, alert.item.alert.priority)) }
                                td { (alert.reason) }
                                td { @match alert.item.alert.outcome { Some(outcome) => (outcome_text(texts, outcome)), None => (texts.outcome_none) } }
                                td { (history(texts, clock, events)) }
                            }
                        }
                    }
                }
            }
            // The history of open alerts, too.
            @for (alert, events) in all.iter().filter(|(alert, _)| alert.item.alert.status != AlertStatus::Resolved) {
                details class="open-history" {
                    summary { (texts.history) ": " (alert.reason) }
                    (history(texts, clock, events))
                }
            }
        }
    }
}

fn history(texts: &Texts, clock: Clock, events: &[AlertEvent]) -> Markup {
    html! {
        ol class="history" {
            @for event in events {
                li { time datetime=(event.at.to_datetime().to_rfc3339()) { (clock.moment(event.at)) } " · " (event.actor) " · " (event_text(texts, clock.lang, event)) }
            }
        }
    }
}

fn notes(texts: &Texts, clock: Clock, alerts: &[(WorklistAlert, Vec<AlertEvent>)]) -> Markup {
    let mut notes: Vec<(&AlertEvent, &WorklistAlert)> = alerts
        .iter()
        .flat_map(|(alert, events)| {
            events
                .iter()
                .filter(|event| event.kind == "note")
                .map(move |event| (event, alert))
        })
        .collect();
    notes.sort_by_key(|(event, _)| std::cmp::Reverse(event.at));
    html! {
        section aria-labelledby="notes" {
            h2 id="notes" { (texts.notes) }
            @if notes.is_empty() {
                p { (texts.no_notes) }
            } @else {
                ul class="notes" {
                    @for (event, alert) in notes {
                        li {
                            p class="note-meta" { (clock.moment(event.at)) " · " (event.actor) " · " (alert.reason) }
                            p class="note-text" { (event.detail.get("text").and_then(serde_json::Value::as_str).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn devices(texts: &Texts, clock: Clock, view: &PatientView) -> Markup {
    let lang = clock.lang;
    let mut last_reading: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for reading in &view.readings {
        let entry = last_reading
            .entry(reading.device_id.as_str())
            .or_insert(reading.ts);
        if reading.ts > *entry {
            *entry = reading.ts;
        }
    }
    html! {
        section aria-labelledby="devices" {
            h2 id="devices" { (texts.devices) }
            table class="devices" {
                thead { tr {
                    th scope="col" { (texts.device) } th scope="col" { (texts.device_type) }
                    th scope="col" { (texts.last_contact) } th scope="col" { (texts.last_reading) }
                    th scope="col" { (texts.battery) } th scope="col" { (texts.fault) }
                } }
                tbody {
                    @for (device, status) in &view.devices {
                        tr {
                            td { (device.device_id.as_str()) }
                            td { (device.profile_id) }
                            @let heard = status.as_ref().and_then(|status| status.last_seen_at);
                            @let measured = last_reading.get(device.device_id.as_str()).copied();
                            td { @match heard.max(measured) { Some(at) => (clock.moment(at)), None => (texts.never) } }
                            td { @match last_reading.get(device.device_id.as_str()) { Some(at) => (clock.moment(*at)), None => "—" } }
                            td { @match status.as_ref().and_then(|status| status.battery_pct) { Some(pct) => { (lang.number(pct, 0)) " %" }, None => "—" } }
                            td { @match status.as_ref().and_then(|status| status.fault.as_deref()) { Some(fault) => (fault), None => "—" } }
                        }
                    }
                }
            }
        }
    }
}

fn rule_condition(lang: Lang, rule: &Rule) -> String {
    let mut parts = Vec::new();
    let metric = rule.metric;
    let value = |value: f64| match metric {
        Some(metric) => value_with_unit(lang, metric, value),
        None => lang.number(value, 1),
    };
    if let Some(metric) = metric {
        parts.push(lang.metric(metric).to_owned());
    } else {
        parts.push(format!("{:?}", rule.kind).to_lowercase());
    }
    if let Some(above) = rule.above {
        parts.push(format!("{} {}", lang.text("above"), value(above)));
    }
    if let Some(below) = rule.below {
        parts.push(format!("{} {}", lang.text("below"), value(below)));
    }
    if let (Some(delta), Some(hours)) = (rule.delta, rule.window_hours) {
        parts.push(format!(
            "Δ {} / {hours} {}",
            value(delta),
            lang.text("hours")
        ));
    }
    if let Some(due_by) = &rule.due_by {
        parts.push(format!("{} {due_by}", lang.text("not_measured_by")));
    }
    if rule.repeat_of > 1 {
        parts.push(format!("{}/{}", rule.repeat_count, rule.repeat_of));
    }
    if rule.for_minutes > 0 {
        parts.push(format!("≥ {} min", rule.for_minutes));
    }
    parts.join(", ")
}

fn protocols(texts: &Texts, clock: Clock, view: &PatientView) -> Markup {
    let lang = clock.lang;
    let rules = effective_rules(view);
    let in_force = overrides_in_force(&view.overrides, view.to);
    let mut versions: Vec<&RuleOverride> = view.overrides.iter().collect();
    versions.sort_by_key(|version| std::cmp::Reverse(version.id));
    let today = crate::triage::schedule::local_date(view.to, clock.zone);
    html! {
        section aria-labelledby="protocols" {
            h2 id="protocols" { (texts.protocols) }
            table class="rules" {
                thead { tr {
                    th scope="col" { (texts.rule) } th scope="col" { (texts.condition) } th scope="col" { (texts.priority) }
                } }
                tbody {
                    @for (key, rule, personal) in &rules {
                        tr class=[personal.then_some("personal")] {
                            td { (key) @if *personal { " *" } }
                            td { (rule_condition(lang, rule)) }
                            td { (priority_badge(lang, rule.priority)) }
                        }
                    }
                }
            }
            h3 { (texts.personal_thresholds) }
            @if versions.is_empty() {
                p { (texts.no_personal_thresholds) }
            } @else {
                table class="overrides" {
                    thead { tr {
                        th scope="col" { (texts.rule) } th scope="col" { (texts.version) } th scope="col" { (texts.condition) }
                        th scope="col" { (texts.valid) } th scope="col" { (texts.author) } th scope="col" { (texts.reason) }
                        th scope="col" { (texts.review_by) } th scope="col" { (texts.approved_by) }
                    } }
                    tbody {
                        @for version in versions {
                            @let current = in_force.get(version.rule_key.as_str()).is_some_and(|current| current.id == version.id);
                            tr class=[current.then_some("in-force")] {
                                td { (version.rule_key) @if current { " *" } }
                                td { (version.version) }
                                td { code { (serde_json::to_string(&version.settings).unwrap_or_default()) } }
                                td {
                                    (clock.moment(version.valid_from))
                                    @if let Some(until) = version.valid_until { " " (texts.until) " " (clock.moment(until)) }
                                }
                                td { (version.author) }
                                td { (version.reason) }
                                td {
                                    @if let Some(date) = version.review_by {
                                        (super::i18n::date(lang, date))
                                        @if current && crate::thresholds::review_due(version, today) {
                                            " " strong class="review-due" { (texts.review_due_mark) }
                                        }
                                    }
                                }
                                td { (version.approved_by.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
            p class="hint" { (texts.personal_mark) }
        }
    }
}
