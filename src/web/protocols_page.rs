//! The protocols pages: `/protocols` lists them; `/protocols/{id}` shows a
//! protocol's rules, lets a coordinator change thresholds, run the preview
//! on history (with progress, cancellable) and save the change as a new
//! version with a reason, and shows the version history with comparison
//! (`?compare=n`: version n−1 to n), viewing (`?version=n`) and restoring.
//! The actions go through the JSON API (`/api/v1/protocols/…`) from
//! `/assets/protocols.js`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::i18n::{fill, moment};
use super::protocol_texts::{protocol_texts, ProtocolTexts};
use super::{layout, not_found, page_response, Viewer};
use crate::api::AppState;
use crate::domain::Timestamp;
use crate::protocols::catalog::{Source, VersionInfo};
use crate::protocols::diff::compare;
use crate::protocols::{Priority, Protocol, Rule, RuleKind};
use crate::store::Role;
use crate::worklist::Lang;

/// Query of the protocol page.
#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    pub version: Option<i32>,
    pub compare: Option<i32>,
}

const PRIORITIES: [Priority; 4] = [
    Priority::Informational,
    Priority::Low,
    Priority::Medium,
    Priority::High,
];
const PERIODS: [i64; 5] = [7, 14, 30, 60, 90];

fn priority_code(priority: Priority) -> &'static str {
    match priority {
        Priority::Informational => "informational",
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
    }
}

fn priority_name(texts: &ProtocolTexts, priority: Priority) -> &'static str {
    texts.priorities[PRIORITIES.iter().position(|p| *p == priority).unwrap_or(0)]
}

fn version_line(viewer: &Viewer, texts: &ProtocolTexts, info: &VersionInfo) -> Markup {
    html! {
        (texts.version) " " (info.version) " · "
        @match info.source {
            Source::File => (texts.source_file),
            Source::Database => (texts.source_saved),
        }
        @if let (Some(author), Some(from), Some(reason)) = (&info.author, info.valid_from, &info.reason) {
            " · " (fill(texts.saved_by, &[author, &moment(viewer.lang, viewer.zone, Timestamp::from_datetime(from)), reason]))
        }
        @if let Some(restored) = info.restored_from {
            " · " (fill(texts.restored_from, &[&restored.to_string()]))
        }
    }
}

/// `GET /protocols`.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    let texts = protocol_texts(viewer.lang);
    let protocols = state.protocols.current();
    let main = html! {
        h1 { (texts.title) }
        p class="hint" { (texts.intro) }
        table class="burden" {
            thead { tr {
                th scope="col" { (texts.protocol) }
                th scope="col" class="number" { (texts.rules) }
                th scope="col" { (texts.version) }
            } }
            tbody {
                @for id in protocols.keys() {
                    @if let Some((info, protocol)) = state.protocols.get(id) {
                        tr {
                            th scope="row" { a href=(format!("/protocols/{id}")) { (protocol.name) } " (" (id) ")" }
                            td class="number" { (protocol.rules.len()) }
                            td { (version_line(&viewer, texts, &info)) }
                        }
                    }
                }
            }
        }
    };
    page_response(
        &viewer,
        StatusCode::OK,
        layout(&viewer, texts.title, "/protocols", main),
    )
}

/// The fields a coordinator may change on a rule of `kind`.
fn editable_fields(kind: RuleKind) -> &'static [&'static str] {
    match kind {
        RuleKind::Threshold => &[
            "above",
            "below",
            "recover_at",
            "for_minutes",
            "repeat_count",
            "repeat_of",
            "confirm_within_minutes",
        ],
        RuleKind::News2 | RuleKind::Anomaly => &["above", "recover_at", "confirm_within_minutes"],
        RuleKind::Trend | RuleKind::BaselineDeviation => &[
            "delta",
            "window_hours",
            "recover_at",
            "confirm_within_minutes",
        ],
        RuleKind::MissedMeasurement => &["due_by"],
        RuleKind::Technical => &["below", "recover_at"],
    }
}

fn field_label(texts: &ProtocolTexts, field: &str) -> &'static str {
    match field {
        "above" => texts.field_above,
        "below" => texts.field_below,
        "recover_at" => texts.field_recover_at,
        "for_minutes" => texts.field_for_minutes,
        "repeat_count" => texts.field_repeat_count,
        "repeat_of" => texts.field_repeat_of,
        "delta" => texts.field_delta,
        "window_hours" => texts.field_window_hours,
        "due_by" => texts.field_due_by,
        _ => texts.field_confirm,
    }
}

fn field_value(rule: &Rule, field: &str) -> String {
    let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    match field {
        "above" => number(rule.above),
        "below" => number(rule.below),
        "recover_at" => number(rule.recover_at),
        "for_minutes" => rule.for_minutes.to_string(),
        "repeat_count" => rule.repeat_count.to_string(),
        "repeat_of" => rule.repeat_of.to_string(),
        "delta" => number(rule.delta),
        "window_hours" => rule.window_hours.map(|v| v.to_string()).unwrap_or_default(),
        "due_by" => rule.due_by.clone().unwrap_or_default(),
        _ => rule.confirm_within_minutes.to_string(),
    }
}

fn kind_code(kind: RuleKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn rule_legend(rule: &Rule) -> String {
    let mut legend = format!("{} · {}", rule.id, kind_code(rule.kind));
    if let Some(metric) = rule.metric {
        legend.push_str(" · ");
        legend.push_str(metric.code());
    }
    legend
}

/// The rules as a form (`editable`) or read only.
fn rules_form(texts: &ProtocolTexts, protocol: &Protocol, editable: bool) -> Markup {
    html! {
        fieldset class="targets" {
            legend { (texts.response_targets) }
            @for priority in PRIORITIES.iter().rev() {
                @let id = format!("target-{}", priority_code(*priority));
                label for=(id) { (priority_name(texts, *priority)) }
                input type="number" id=(id) min="1" step="1" data-target=(priority_code(*priority))
                    value=(protocol.response_targets.get(priority).map(u32::to_string).unwrap_or_default())
                    disabled[!editable];
            }
            label for="news2-scale" { (texts.news2_scale) }
            select id="news2-scale" disabled[!editable] {
                @for scale in [1u8, 2] {
                    option value=(scale) selected[protocol.news2_scale == scale] { (scale) }
                }
            }
        }
        @for rule in &protocol.rules {
            fieldset class="rule" data-rule=(rule.id) {
                legend { (rule_legend(rule)) }
                @for field in editable_fields(rule.kind) {
                    @let id = format!("rule-{}-{field}", rule.id);
                    span class="field" {
                        label for=(id) { (field_label(texts, field)) }
                        @if *field == "due_by" {
                            input type="time" id=(id) data-field=(field) value=(field_value(rule, field)) disabled[!editable];
                        } @else {
                            input type="number" step="any" id=(id) data-field=(field) value=(field_value(rule, field)) disabled[!editable];
                        }
                    }
                }
                span class="field" {
                    @let id = format!("rule-{}-priority", rule.id);
                    label for=(id) { (texts.priority) }
                    select id=(id) data-field="priority" disabled[!editable] {
                        @for priority in PRIORITIES {
                            option value=(priority_code(priority)) selected[rule.priority == priority] { (priority_name(texts, priority)) }
                        }
                    }
                }
            }
        }
    }
}

fn show_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        // 38 rather than 38.0, as on the form.
        serde_json::Value::Number(number) => number
            .as_f64()
            .map_or_else(|| number.to_string(), |value| value.to_string()),
        other => other.to_string(),
    }
}

fn comparison(texts: &ProtocolTexts, versions: &[(VersionInfo, Protocol)], to: i32) -> Markup {
    let Some(index) = versions.iter().position(|(info, _)| info.version == to) else {
        return html! {};
    };
    let Some(before) = index.checked_sub(1).map(|i| &versions[i]) else {
        return html! {};
    };
    let changes = compare(&before.1, &versions[index].1);
    html! {
        section aria-labelledby="comparison" {
            h2 id="comparison" { (fill(texts.compare_title, &[&before.0.version.to_string(), &to.to_string()])) }
            @if changes.is_empty() {
                p { (texts.no_changes) }
            } @else {
                table class="burden comparison" {
                    thead { tr {
                        th scope="col" { (texts.rules) }
                        th scope="col" { (texts.field) }
                        th scope="col" { (texts.before) }
                        th scope="col" { (texts.after) }
                    } }
                    tbody {
                        @for change in &changes {
                            tr {
                                th scope="row" { (change.rule.as_deref().unwrap_or(texts.whole_protocol)) }
                                @if change.field == "rule" {
                                    td { @if change.before.is_null() { (texts.rule_added) } @else { (texts.rule_removed) } }
                                    td {} td {}
                                } @else {
                                    td { (change.field) }
                                    td { (show_value(&change.before)) }
                                    td { (show_value(&change.after)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn texts_attributes(texts: &ProtocolTexts, lang: Lang) -> Markup {
    // The script's words, as data attributes (no inline script under the CSP).
    html! {
        div id="protocol-texts" hidden
            data-lang=(lang.code())
            data-progress=(texts.preview_progress)
            data-cancelled=(texts.preview_cancelled)
            data-failed=(texts.preview_failed)
            data-current=(texts.result_current)
            data-proposed=(texts.result_proposed)
            data-removed=(texts.result_removed)
            data-added=(texts.result_added)
            data-per-patient-day=(texts.result_per_patient_day)
            data-missed=(texts.result_missed)
            data-none-missed=(texts.result_none_missed)
            data-by-rule=(texts.result_by_rule)
            data-by-week=(texts.result_by_week)
            data-by-patient=(texts.result_by_patient)
            data-summary=(texts.result_summary)
            data-saved=(texts.saved)
            data-conflict=(texts.conflict)
            data-problems=(texts.problems) {}
    }
}

/// `GET /protocols/{id}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(protocol_id): Path<String>,
    Query(params): Query<PageParams>,
) -> Response {
    let texts = protocol_texts(viewer.lang);
    let versions = state.protocols.versions(&protocol_id);
    let Some((newest, _)) = versions.last().cloned() else {
        return not_found(&viewer);
    };
    let shown_version = params.version.unwrap_or(newest.version);
    let Some((shown, protocol)) = versions
        .iter()
        .find(|(info, _)| info.version == shown_version)
        .cloned()
    else {
        return not_found(&viewer);
    };
    let coordinator = viewer.signed_in.session.user.role == Role::Coordinator;
    let editable = coordinator && shown.version == newest.version;
    let main = html! {
        h1 { (protocol.name) " (" (protocol_id) ")" }
        p class="version" id="version-line" { (version_line(&viewer, texts, &shown)) }
        @if !protocol.description.is_empty() { p { (protocol.description) } }
        @if shown.version != newest.version {
            p class="notice" { (fill(texts.old_version, &[&shown.version.to_string(), &newest.version.to_string()])) }
        }
        @if !coordinator { p class="notice" { (texts.read_only) } }
        @if let Some(to) = params.compare { (comparison(texts, &versions, to)) }
        section aria-labelledby="rules-heading" {
            h2 id="rules-heading" { @if editable { (texts.edit) } @else { (texts.rules) } }
            @if editable { p class="hint" { (texts.edit_hint) } }
            form id="protocol-form" data-protocol=(protocol_id) data-version=(shown.version) novalidate {
                (rules_form(texts, &protocol, editable))
                @if editable {
                    section class="preview" aria-labelledby="preview-heading" {
                        h3 id="preview-heading" { (texts.preview_title) }
                        p class="hint" { (texts.preview_hint) }
                        label for="preview-days" { (texts.period) " " }
                        select id="preview-days" {
                            @for days in PERIODS {
                                option value=(days) selected[days == 30] { (fill(texts.days, &[&days.to_string()])) }
                            }
                        }
                        " "
                        button type="button" id="preview-run" { (texts.preview_run) }
                        " "
                        button type="button" id="preview-cancel" hidden { (texts.preview_cancel) }
                        p id="preview-status" role="status" aria-live="polite" {}
                        progress id="preview-progress" hidden max="1" value="0" {}
                        div id="preview-result" {}
                    }
                    p class="save" {
                        label for="change-reason" { (texts.reason) }
                        textarea id="change-reason" rows="2" required {}
                        button type="button" id="protocol-save" { (texts.save) }
                    }
                    div id="save-status" role="alert" {}
                }
            }
        }
        section aria-labelledby="history-heading" {
            h2 id="history-heading" { (texts.history) }
            table class="burden versions" {
                thead { tr {
                    th scope="col" { (texts.version) }
                    th scope="col" { (texts.valid_from) }
                    th scope="col" { (texts.author) }
                    th scope="col" { (texts.reason) }
                    th scope="col" { span class="sr-only" { (texts.view) } }
                } }
                tbody {
                    @for (info, _) in versions.iter().rev() {
                        tr data-version=(info.version) {
                            th scope="row" {
                                (info.version)
                                @if info.source == Source::File { " (" (texts.source_file) ")" }
                                @if let Some(restored) = info.restored_from { " ← " (restored) }
                            }
                            td { @if let Some(from) = info.valid_from { (moment(viewer.lang, viewer.zone, Timestamp::from_datetime(from))) } @else { "—" } }
                            td { (info.author.as_deref().unwrap_or("—")) }
                            td { (info.reason.as_deref().unwrap_or("—")) }
                            td class="actions" {
                                a href=(format!("/protocols/{protocol_id}?version={}", info.version)) { (texts.view) }
                                @if info.version > 0 {
                                    " · " a href=(format!("/protocols/{protocol_id}?compare={}", info.version)) { (texts.compare) }
                                }
                                @if coordinator && info.version != newest.version {
                                    form class="restore" data-restore=(info.version) {
                                        label class="sr-only" for=(format!("restore-reason-{}", info.version)) { (texts.reason) }
                                        input type="text" id=(format!("restore-reason-{}", info.version)) placeholder=(texts.reason) required;
                                        button type="submit" { (texts.restore) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (texts_attributes(texts, viewer.lang))
        script src="/assets/protocols.js" defer {}
    };
    page_response(
        &viewer,
        StatusCode::OK,
        layout(&viewer, &protocol.name, "/protocols", main),
    )
}
