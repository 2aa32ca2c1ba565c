//! The patient page's personal thresholds to act on: the proposals
//! awaiting a second coordinator (coordinators approve or reject them; the
//! proposer can only withdraw their own) and, for coordinators, a form per
//! rule to set a personal threshold with a reason and a review-by date.
//! Nurses see the proposals without the buttons, and no forms.
//!
//! The forms post JSON to `crate::api::thresholds` through `assets/app.js`
//! (CSRF header; no inline script). Each input carries the protocol's
//! value (`data-protocol`), so that only what differs from the protocol is
//! sent: setting a value back to the protocol's restores the protocol.

use maud::{html, Markup};
use uuid::Uuid;

use super::explain::Clock;
use super::i18n::{self, Texts};
use crate::protocols::{Priority, Rule, RuleKind, TechnicalSignal};
use crate::store::{ProposalStatus, ThresholdProposal};
use crate::worklist::Lang;

/// What the part shows.
pub(crate) struct ThresholdPart<'a> {
    pub patient_id: Uuid,
    /// `(rule key, protocol's rule, rule in force)`; `None` in force: switched off.
    pub rules: Vec<(String, &'a Rule, Option<Rule>)>,
    pub proposals: &'a [ThresholdProposal],
    /// The viewer's username (the proposer may not approve).
    pub viewer: &'a str,
    pub coordinator: bool,
    /// The earliest review-by date allowed: tomorrow in the team's time zone.
    pub earliest_review: chrono::NaiveDate,
}

/// The proposals awaiting a second coordinator and, for coordinators, the forms.
pub(crate) fn render(texts: &Texts, clock: Clock, part: &ThresholdPart<'_>) -> Markup {
    let lang = clock.lang;
    html! {
        div class="thresholds" data-text-applied=(texts.threshold_applied)
            data-text-proposed=(texts.threshold_proposed) data-text-done=(texts.done)
            data-text-failed=(texts.failed) {
            section aria-labelledby="threshold-proposals" {
                (proposals(texts, clock, part))
                p id="threshold-status" class="action-result" role="status" {}
            }
            @if part.coordinator {
                section aria-labelledby="set-threshold" { (forms(texts, lang, part)) }
            }
        }
    }
}

fn proposals(texts: &Texts, clock: Clock, part: &ThresholdPart<'_>) -> Markup {
    let pending: Vec<&ThresholdProposal> = part
        .proposals
        .iter()
        .filter(|proposal| proposal.status == ProposalStatus::Pending)
        .collect();
    html! {
        h2 id="threshold-proposals" { (texts.proposals_title) }
        @if pending.is_empty() {
            p { (texts.no_pending_proposals) }
        } @else {
            ul class="proposals" {
                @for proposal in pending {
                    li data-proposal=(proposal.id) {
                        p {
                            code { (proposal.rule_key) } " · "
                            code { (serde_json::to_string(&proposal.settings).unwrap_or_default()) }
                        }
                        p class="note-meta" {
                            (texts.proposed_by) " " (proposal.author) " · " (clock.moment(proposal.created_at))
                            " · " (texts.review_by) " " (i18n::date(clock.lang, proposal.review_by))
                            @if let Some(until) = proposal.valid_until { " · " (texts.until) " " (clock.moment(until)) }
                        }
                        p { (texts.reason) ": " (proposal.reason) }
                        @if part.coordinator {
                            @let base = format!("/api/v1/threshold-proposals/{}", proposal.id);
                            form class="threshold-decision" method="post" action=(format!("{base}/reject")) {
                                @if proposal.author == part.viewer {
                                    p class="hint" { (texts.own_proposal) }
                                    button type="submit" formaction=(format!("{base}/reject")) { (texts.withdraw) }
                                } @else {
                                    label { (texts.decision_note) " " input type="text" name="note" maxlength="1000"; }
                                    " "
                                    button type="submit" formaction=(format!("{base}/approve")) { (texts.approve) }
                                    " "
                                    button type="submit" formaction=(format!("{base}/reject")) { (texts.reject) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn forms(texts: &Texts, lang: Lang, part: &ThresholdPart<'_>) -> Markup {
    let action = format!("/api/v1/patients/{}/thresholds", part.patient_id);
    html! {
        h2 id="set-threshold" { (texts.set_threshold) }
        p class="hint" { (texts.set_threshold_hint) }
        @for (key, protocol_rule, in_force) in &part.rules {
            @let shown = in_force.as_ref().unwrap_or(protocol_rule);
            @let id = key.replace('/', "-");
            details class="threshold-form" data-rule=(key) {
                summary { code { (key) } }
                form class="threshold-set" method="post" action=(action) data-rule=(key) {
                    @for (field, label, value, protocol, integer) in fields(texts, protocol_rule, shown) {
                        label for=(format!("{id}-{field}")) { (label) }
                        " "
                        input id=(format!("{id}-{field}")) type="number" step=(if integer { "1" } else { "any" })
                            name=(field) data-field=(field) data-integer=[integer.then_some("true")]
                            data-protocol=(protocol) value=(value);
                        " "
                    }
                    @if protocol_rule.kind == RuleKind::MissedMeasurement {
                        label for=(format!("{id}-due_by")) { (texts.field_due_by) }
                        " "
                        input id=(format!("{id}-due_by")) type="time" name="due_by" data-field="due_by"
                            data-protocol=(protocol_rule.due_by.clone().unwrap_or_default())
                            value=(shown.due_by.clone().unwrap_or_default());
                        " "
                    }
                    label for=(format!("{id}-priority")) { (texts.priority) }
                    " "
                    select id=(format!("{id}-priority")) name="priority" data-field="priority"
                        data-protocol=(priority_code(protocol_rule.priority)) {
                        @for priority in [Priority::High, Priority::Medium, Priority::Low, Priority::Informational] {
                            option value=(priority_code(priority)) selected[priority == shown.priority] {
                                (lang.text(&format!("priority_{}", priority_code(priority))))
                            }
                        }
                    }
                    " "
                    label class="wide" { input type="checkbox" name="enabled" data-field="enabled" checked[in_force.is_some()]; " " (texts.field_enabled) }
                    label for=(format!("{id}-reason")) { (texts.reason) }
                    " "
                    textarea id=(format!("{id}-reason")) name="reason" required maxlength="1000" rows="2" {}
                    " "
                    label for=(format!("{id}-review_by")) { (texts.review_by) }
                    " "
                    input id=(format!("{id}-review_by")) type="date" name="review_by" required
                        min=(part.earliest_review.to_string());
                    " "
                    label for=(format!("{id}-valid_until")) { (texts.valid_until_optional) }
                    " "
                    input id=(format!("{id}-valid_until")) type="datetime-local" name="valid_until";
                    " "
                    button type="submit" class="wide" { (texts.save_threshold) }
                }
            }
        }
    }
}

/// The number fields a rule of this kind has: `(setting, label, value in
/// force, protocol's value, whole number)`; an empty value is a bound the
/// rule does not have.
fn fields(
    texts: &Texts,
    protocol: &Rule,
    shown: &Rule,
) -> Vec<(&'static str, &'static str, String, String, bool)> {
    let number = |value: Option<f64>| value.map(|value| value.to_string()).unwrap_or_default();
    let whole = |value: u32| value.to_string();
    let mut fields = Vec::new();
    let bounds = match protocol.kind {
        RuleKind::Threshold => true,
        RuleKind::Technical => protocol.signal == Some(TechnicalSignal::BatteryLow),
        _ => false,
    };
    if bounds || matches!(protocol.kind, RuleKind::News2 | RuleKind::Anomaly) {
        fields.push((
            "above",
            texts.field_above,
            number(shown.above),
            number(protocol.above),
            false,
        ));
    }
    if bounds {
        fields.push((
            "below",
            texts.field_below,
            number(shown.below),
            number(protocol.below),
            false,
        ));
    }
    if matches!(protocol.kind, RuleKind::Trend | RuleKind::BaselineDeviation) {
        fields.push((
            "delta",
            texts.field_delta,
            number(shown.delta),
            number(protocol.delta),
            false,
        ));
        fields.push((
            "window_hours",
            texts.field_window_hours,
            shown.window_hours.map(whole).unwrap_or_default(),
            protocol.window_hours.map(whole).unwrap_or_default(),
            true,
        ));
    }
    // Missed measurements end when measured; device faults when cleared.
    let recovers = match protocol.kind {
        RuleKind::MissedMeasurement => false,
        RuleKind::Technical => bounds,
        _ => true,
    };
    if recovers {
        fields.push((
            "recover_at",
            texts.field_recover_at,
            number(shown.recover_at),
            number(protocol.recover_at),
            false,
        ));
    }
    if matches!(protocol.kind, RuleKind::Threshold | RuleKind::Anomaly) {
        fields.push((
            "for_minutes",
            texts.field_for_minutes,
            whole(shown.for_minutes),
            whole(protocol.for_minutes),
            true,
        ));
    }
    if protocol.kind == RuleKind::Threshold {
        fields.push((
            "repeat_count",
            texts.field_repeat_count,
            whole(shown.repeat_count),
            whole(protocol.repeat_count),
            true,
        ));
        fields.push((
            "repeat_of",
            texts.field_repeat_of,
            whole(shown.repeat_of),
            whole(protocol.repeat_of),
            true,
        ));
    }
    fields
}

fn priority_code(priority: Priority) -> &'static str {
    crate::alert_book::priority_code(priority)
}
