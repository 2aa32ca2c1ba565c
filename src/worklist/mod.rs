//! The nurses' worklist as they read it: open alerts grouped per patient
//! (one call about weight and blood pressure together), most urgent patient
//! first, each alert with its reason in plain words and the time waited
//! against its response target.
//!
//! In: a page of [`AlertListItem`]s in urgency order (from
//! [`Store::query_alerts`](crate::store::Store::query_alerts)), the time now
//! and a [`Lang`]. Out: [`PatientGroup`]s, serialisable for the JSON API and
//! rendered by the web pages. Pure: no IO, no clock.
//!
//! # Choices
//!
//! - A patient ranks by their most urgent alert; within a patient, alerts
//!   keep the store's urgency order. Groups keep the order in which their
//!   first alert arrived, which is the urgency order.
//! - The reason is built from the alert's stored explanation (the first
//!   factor that says what was measured), so it is the same text the
//!   explanation card elaborates, and old alerts read the same after an
//!   upgrade.

pub mod i18n;
pub mod rendered;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

pub use i18n::Lang;

use crate::alert_book::{priority_code, AlertStatus};
use crate::domain::{Metric, Timestamp};
use crate::store::AlertListItem;

/// One alert on the worklist.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorklistAlert {
    #[serde(flatten)]
    pub item: AlertListItem,
    /// The reason in plain words, in the requested language.
    pub reason: String,
    /// Minutes since the alert was raised.
    pub waited_minutes: i64,
    /// Minutes from raising to the response target.
    pub target_minutes: i64,
    /// Minutes left before the response target; negative when overdue.
    pub remaining_minutes: i64,
    pub overdue: bool,
}

/// A patient's alerts together.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PatientGroup {
    pub patient_id: Uuid,
    pub patient_display_name: String,
    pub team: String,
    pub alerts: Vec<WorklistAlert>,
}

/// Groups a page of alerts (in urgency order) per patient; see the module docs.
pub fn group(items: Vec<AlertListItem>, now: Timestamp, lang: Lang) -> Vec<PatientGroup> {
    let mut groups: Vec<PatientGroup> = Vec::new();
    for item in items {
        let alert = worklist_alert(item, now, lang);
        let patient_id = alert.item.alert.patient_id;
        match groups
            .iter_mut()
            .find(|group| group.patient_id == patient_id)
        {
            Some(group) => group.alerts.push(alert),
            None => groups.push(PatientGroup {
                patient_id,
                patient_display_name: alert.item.patient_display_name.clone(),
                team: alert.item.team.clone(),
                alerts: vec![alert],
            }),
        }
    }
    groups
}

/// Returns the worklist view of one alert.
pub fn worklist_alert(item: AlertListItem, now: Timestamp, lang: Lang) -> WorklistAlert {
    const MINUTE: i64 = 60_000_000;
    let alert = &item.alert;
    let waited_minutes = (now.micros() - alert.opened_at.micros()).max(0) / MINUTE;
    let target_minutes = (alert.respond_by.micros() - alert.opened_at.micros()) / MINUTE;
    let remaining = alert.respond_by.micros() - now.micros();
    // Claimed or resolved alerts are no longer waiting for someone.
    let waiting = matches!(
        alert.status,
        AlertStatus::Open | AlertStatus::Escalated | AlertStatus::Snoozed
    );
    let remaining_minutes = remaining.div_euclid(MINUTE);
    WorklistAlert {
        reason: reason(&alert.rule_key, &alert.explanation, lang),
        waited_minutes,
        target_minutes,
        remaining_minutes,
        overdue: waiting && remaining < 0,
        item,
    }
}

/// Returns the reason of an alert in plain words, from its explanation.
pub fn reason(rule_key: &str, explanation: &Value, lang: Lang) -> String {
    let factors = explanation
        .get("factors")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut parts: Vec<String> = Vec::new();
    for factor in factors {
        if let Some(text) = factor_text(factor, lang) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        return rule_key
            .rsplit('/')
            .next()
            .unwrap_or(rule_key)
            .replace('_', " ");
    }
    parts.join("; ")
}

fn metric_of(factor: &Value) -> Option<Metric> {
    factor
        .get("metric")
        .and_then(Value::as_str)
        .and_then(Metric::from_code)
}

fn number(factor: &Value, key: &str) -> Option<f64> {
    factor.get(key).and_then(Value::as_f64)
}

/// Returns the decimals a metric's values are shown with.
pub fn display_decimals(metric: Metric) -> usize {
    match metric {
        Metric::BodyTemperature | Metric::SkinTemperature | Metric::BodyWeight => 1,
        Metric::BloodGlucose => 1,
        _ => 0,
    }
}

/// Renders a value of a metric with its unit, as the pages show it too.
pub fn value_text(metric: Metric, value: f64, lang: Lang) -> String {
    let unit = match metric {
        Metric::HeartRate | Metric::RespiratoryRate => "/min",
        Metric::Spo2 => "%",
        Metric::BpSystolic | Metric::BpDiastolic => "mmHg",
        Metric::BodyTemperature | Metric::SkinTemperature => "°C",
        Metric::BodyWeight => "kg",
        Metric::BloodGlucose => "mmol/L",
        Metric::Steps | Metric::Consciousness | Metric::SupplementalOxygen => "",
    };
    let number = lang.number(value, display_decimals(metric));
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

fn signed(lang: Lang, value: f64, decimals: usize) -> String {
    let text = lang.number(value.abs(), decimals);
    if value < 0.0 {
        format!("−{text}")
    } else {
        format!("+{text}")
    }
}

fn factor_text(factor: &Value, lang: Lang) -> Option<String> {
    let kind = factor.get("factor").and_then(Value::as_str)?;
    match kind {
        "threshold" => {
            let metric = metric_of(factor)?;
            let value = number(factor, "value")?;
            let threshold = number(factor, "threshold")?;
            let direction = factor.get("direction").and_then(Value::as_str)?;
            Some(format!(
                "{} {} ({} {})",
                capitalised(lang.metric(metric)),
                value_text(metric, value, lang),
                lang.text(direction),
                value_text(metric, threshold, lang)
            ))
        }
        "news2" => {
            let score = factor.get("score")?;
            let total = score.get("total").and_then(Value::as_u64)?;
            let missing: Vec<&str> = score
                .get("missing")
                .and_then(Value::as_array)
                .map(|missing| missing.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut text = format!("NEWS2 {total}");
            if !missing.is_empty() {
                let names: Vec<&str> = missing
                    .iter()
                    .map(|code| news2_parameter(code, lang))
                    .collect();
                text.push_str(&format!(
                    " ({}: {})",
                    lang.text("missing"),
                    names.join(", ")
                ));
            }
            Some(text)
        }
        "trend" => {
            let metric = metric_of(factor)?;
            let change = number(factor, "change")?;
            let hours = factor.get("window_hours").and_then(Value::as_u64)?;
            let sign = if change < 0.0 { "−" } else { "+" };
            Some(format!(
                "{} {sign}{} in {hours} {}",
                capitalised(lang.metric(metric)),
                value_text(metric, change.abs(), lang),
                lang.text("hours")
            ))
        }
        "deviation" => {
            let metric = metric_of(factor)?;
            let value = number(factor, "value")?;
            let deviation = number(factor, "deviation")?;
            Some(format!(
                "{} {} ({} {})",
                capitalised(lang.metric(metric)),
                value_text(metric, value, lang),
                signed(lang, deviation, 1),
                lang.text("own_baseline")
            ))
        }
        "anomaly" => {
            let contributions = factor.get("contributions").and_then(Value::as_array)?;
            let parts: Vec<String> = contributions
                .iter()
                .take(2)
                .filter_map(|contribution| {
                    let metric = metric_of(contribution)?;
                    let value = number(contribution, "value")?;
                    Some(format!(
                        "{} {}",
                        lang.metric(metric),
                        value_text(metric, value, lang)
                    ))
                })
                .collect();
            Some(format!(
                "{}: {}",
                capitalised(lang.text("unusual_combination")),
                parts.join(", ")
            ))
        }
        "missed_measurement" => {
            let metric = metric_of(factor)?;
            let due_by = factor.get("due_by").and_then(Value::as_str).unwrap_or("?");
            let cause = factor
                .get("cause")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let cause_key = format!("cause_{cause}");
            let mut text = format!(
                "{} {} {due_by}",
                capitalised(lang.metric(metric)),
                lang.text("not_measured_by")
            );
            if lang.text(&cause_key) != "?" {
                text.push_str(&format!(" ({})", lang.text(&cause_key)));
            }
            Some(text)
        }
        "also_found" => {
            // A covered finding of the same patient, in its own words.
            let nested = factor.get("factors").and_then(Value::as_array)?;
            let parts: Vec<String> = nested
                .iter()
                .filter_map(|nested| factor_text(nested, lang))
                .collect();
            let first = parts.first()?;
            Some(format!("{}: {first}", lang.text("also_found")))
        }
        "device" | "data_quality" => {
            let flag = factor.get("flag").and_then(Value::as_str)?;
            let device = factor.get("device_id").and_then(Value::as_str);
            let Some(device) = device else {
                // A flag on clinical evidence (a late reading): not a reason by itself.
                return None;
            };
            let mut text = capitalised(lang.text(flag));
            if let Some(battery) = number(factor, "battery_pct") {
                text.push_str(&format!(" ({} %)", lang.number(battery, 0)));
            }
            if let Some(fault) = factor.get("fault").and_then(Value::as_str) {
                text.push_str(&format!(" ({fault})"));
            }
            text.push_str(&format!(" — {device}"));
            Some(text)
        }
        _ => None,
    }
}

fn news2_parameter(code: &str, lang: Lang) -> &'static str {
    let metric = match code {
        "respiration_rate" => Metric::RespiratoryRate,
        "spo2" => Metric::Spo2,
        "air_or_oxygen" => Metric::SupplementalOxygen,
        "systolic_bp" => Metric::BpSystolic,
        "pulse" => Metric::HeartRate,
        "consciousness" => Metric::Consciousness,
        _ => Metric::BodyTemperature,
    };
    lang.metric(metric)
}

/// Returns `text` with its first letter upper case.
pub fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Returns the text of a priority.
pub fn priority_text(priority: crate::protocols::Priority, lang: Lang) -> &'static str {
    lang.text(&format!("priority_{}", priority_code(priority)))
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::alert_book::Alert;
    use crate::protocols::Priority;
    use crate::triage::urgency::NtsLevel;

    const MINUTE: i64 = 60_000_000;

    /// An open alert of `patient`, raised at minute `opened` with `target`
    /// minutes to respond.
    pub(crate) fn item(
        patient: u128,
        rule: &str,
        explanation: Value,
        opened: i64,
        target: i64,
    ) -> AlertListItem {
        AlertListItem {
            alert: Alert {
                id: Uuid::new_v4(),
                patient_id: Uuid::from_u128(patient),
                rule_key: rule.to_owned(),
                status: AlertStatus::Open,
                priority: Priority::Medium,
                nts: NtsLevel::U3,
                score: 2000.0,
                explanation,
                opened_at: Timestamp(opened * MINUTE),
                updated_at: Timestamp(opened * MINUTE),
                respond_by: Timestamp((opened + target) * MINUTE),
                claimed_by: None,
                claimed_at: None,
                snoozed_until: None,
                escalated_to: None,
                resolved_at: None,
                resolved_by: None,
                outcome: None,
            },
            patient_display_name: format!("patient {patient}"),
            team_id: Uuid::nil(),
            team: "Assen".to_owned(),
        }
    }

    #[test]
    fn alerts_of_one_patient_are_grouped_in_urgency_order() {
        let items = vec![
            item(1, "default/fever", json!({}), 0, 240),
            item(2, "default/hypotension", json!({}), 0, 60),
            item(1, "heart-failure/weight_gain_3d", json!({}), 0, 240),
        ];
        let groups = group(items, Timestamp(10 * MINUTE), Lang::Nl);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].patient_id, Uuid::from_u128(1));
        let rules: Vec<&str> = groups[0]
            .alerts
            .iter()
            .map(|a| a.item.alert.rule_key.as_str())
            .collect();
        assert_eq!(rules, vec!["default/fever", "heart-failure/weight_gain_3d"]);
    }

    #[test]
    fn waiting_time_counts_down_and_turns_overdue() {
        let waiting = worklist_alert(
            item(1, "r/x", json!({}), 100, 60),
            Timestamp(130 * MINUTE),
            Lang::Nl,
        );
        assert_eq!(
            (
                waiting.waited_minutes,
                waiting.remaining_minutes,
                waiting.overdue
            ),
            (30, 30, false)
        );
        let late = worklist_alert(
            item(1, "r/x", json!({}), 100, 60),
            Timestamp(175 * MINUTE),
            Lang::Nl,
        );
        assert_eq!((late.remaining_minutes, late.overdue), (-15, true));
        let mut claimed = item(1, "r/x", json!({}), 100, 60);
        claimed.alert.status = AlertStatus::Claimed;
        assert!(!worklist_alert(claimed, Timestamp(175 * MINUTE), Lang::Nl).overdue);
    }

    #[test]
    fn reasons_read_as_plain_words_in_dutch_and_english() {
        let fever = json!({"factors": [
            {"factor": "threshold", "metric": "body_temperature", "value": 38.9, "threshold": 38.0,
             "direction": "above", "recover_at": 37.8, "repeat": null, "held_minutes": null},
            {"factor": "baseline", "metric": "body_temperature", "baseline": {}}]});
        assert_eq!(
            reason("default/fever", &fever, Lang::Nl),
            "Temperatuur 38,9 °C (boven 38 °C)"
        );
        assert_eq!(
            reason("default/fever", &fever, Lang::En),
            "Temperature 38.9 °C (above 38 °C)"
        );
        let covering = json!({"factors": [
            {"factor": "threshold", "metric": "bp_systolic", "value": 86.0, "threshold": 91.0,
             "direction": "below", "recover_at": 100.0, "repeat": [2, 3], "held_minutes": null},
            {"factor": "also_found", "rule_id": "default/systolic_falling_fast", "priority": "high",
             "factors": [{"factor": "trend", "metric": "bp_systolic", "from_value": 128.0,
                          "from_ts": "2026-12-01T08:00:00Z", "to_value": 86.0, "change": -42.0,
                          "delta": -30.0, "window_hours": 6}]}]});
        assert_eq!(
            reason("default/hypotension", &covering, Lang::Nl),
            "Bovendruk 86 mmHg (onder 91 mmHg); ook: Bovendruk −42 mmHg in 6 uur"
        );
        assert_eq!(
            reason("default/hypotension", &covering, Lang::En),
            "Systolic pressure 86 mmHg (below 91 mmHg); also: Systolic pressure −42 mmHg in 6 hours"
        );
        let news2 = json!({"factors": [{"factor": "news2", "threshold": 4.5, "freshness_hours": 12,
            "stale": [], "score": {"total": 6, "missing": ["consciousness", "air_or_oxygen"]}}]});
        assert_eq!(
            reason("default/news2", &news2, Lang::Nl),
            "NEWS2 6 (ontbreekt: bewustzijn, extra zuurstof)"
        );
        let weight = json!({"factors": [{"factor": "trend", "metric": "body_weight", "from_value": 80.0,
            "from_ts": 0, "to_value": 82.3, "change": 2.3, "delta": 2.0, "window_hours": 72}]});
        assert_eq!(
            reason("hf/weight_gain_3d", &weight, Lang::Nl),
            "Gewicht +2,3 kg in 72 uur"
        );
        let missed = json!({"factors": [{"factor": "missed_measurement", "metric": "body_weight",
            "due_by": "10:00", "cause": "device_silent"}]});
        assert_eq!(
            reason("hf/weight_missed", &missed, Lang::Nl),
            "Gewicht niet gemeten vóór 10:00 (apparaat geeft geen signaal)"
        );
        let battery = json!({"factors": [{"factor": "device", "flag": "battery_low",
            "device_id": "scale-7", "battery_pct": 14}]});
        assert_eq!(
            reason("technical/battery_low/scale-7", &battery, Lang::En),
            "Battery low (14 %) — scale-7"
        );
        assert_eq!(
            reason("default/some_rule", &json!({}), Lang::Nl),
            "some rule"
        );
    }
}
