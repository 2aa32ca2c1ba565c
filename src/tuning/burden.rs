//! Alarm-burden figures for coordinators: how much work and how many false
//! alarms each protocol, rule, team and patient brings, so thresholds can be
//! tuned where it matters.
//!
//! In: the alerts opened in a period (with patient and team) and the
//! patients monitored in it. Out: [`AlarmBurden`], serialisable for the JSON
//! API and rendered by the page. Pure: no IO, no clock.
//!
//! # Definitions
//!
//! - **Alerts per patient-day**: alerts opened in the period divided by the
//!   patients the row concerns times the days of the period. A rule or
//!   protocol concerns the patients who follow its protocol; technical
//!   alerts (`technical/…`) concern every patient.
//! - **False-alarm share**: of the alerts resolved by a nurse with an
//!   outcome, those resolved as "no action needed" or "measurement error".
//!   Alerts the system resolved (a late upload, a recovered battery) are
//!   left out: nobody judged them.
//! - **Time to claim**: from opening to the claim, as a median in minutes,
//!   and the share claimed within the response target.
//! - **Escalations**: alerts escalated by a nurse or automatically after an
//!   unclaimed response target.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use crate::alert_book::Outcome;
use crate::domain::Timestamp;
use crate::store::{AlertListItem, Patient};

const MINUTE: f64 = 60_000_000.0;
const DAY: i64 = 86_400_000_000;
/// Rows of the noisiest-rules list and of the per-patient list.
pub const TOP_ROWS: usize = 10;

/// The figures of one protocol, rule, team or patient.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BurdenRow {
    /// The protocol id, `protocol/rule`, team name or patient display name.
    pub key: String,
    /// The patient's id, for per-patient rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<Uuid>,
    pub alerts: usize,
    pub patient_days: f64,
    pub alerts_per_patient_day: f64,
    /// Resolved by a nurse with an outcome.
    pub judged: usize,
    /// Of those, "no action needed" or "measurement error".
    pub false_alarms: usize,
    /// `false_alarms / judged`; `None` when nothing was judged.
    pub false_alarm_share: Option<f64>,
    pub claimed: usize,
    pub median_minutes_to_claim: Option<f64>,
    /// Share of claimed alerts claimed within their response target.
    pub claimed_within_target_share: Option<f64>,
    pub escalations: usize,
}

/// The figures of a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlarmBurden {
    pub from: Timestamp,
    pub to: Timestamp,
    pub days: f64,
    pub patients: usize,
    pub total: BurdenRow,
    pub by_protocol: Vec<BurdenRow>,
    pub by_rule: Vec<BurdenRow>,
    pub by_team: Vec<BurdenRow>,
    /// The patients with the most alerts per day, at most [`TOP_ROWS`].
    pub by_patient: Vec<BurdenRow>,
    /// The rules with the most alerts in the last seven days of the period,
    /// at most [`TOP_ROWS`].
    pub noisiest_rules_this_week: Vec<BurdenRow>,
}

/// Accumulates one row.
#[derive(Default)]
struct Tally {
    alerts: usize,
    judged: usize,
    false_alarms: usize,
    claim_minutes: Vec<f64>,
    claimed_in_time: usize,
    escalations: usize,
}

impl Tally {
    fn add(&mut self, item: &AlertListItem) {
        let alert = &item.alert;
        self.alerts += 1;
        // Only a nurse's outcome is a judgement; the system resolves with none.
        if let Some(outcome) = alert.outcome {
            self.judged += 1;
            if matches!(outcome, Outcome::NoActionNeeded | Outcome::MeasurementError) {
                self.false_alarms += 1;
            }
        }
        if let Some(claimed_at) = alert.claimed_at {
            let minutes = (claimed_at.micros() - alert.opened_at.micros()) as f64 / MINUTE;
            self.claim_minutes.push(minutes.max(0.0));
            if claimed_at <= alert.respond_by {
                self.claimed_in_time += 1;
            }
        }
        if alert.escalated_to.is_some() {
            self.escalations += 1;
        }
    }

    fn row(mut self, key: String, patient_id: Option<Uuid>, patient_days: f64) -> BurdenRow {
        let claimed = self.claim_minutes.len();
        let median_minutes_to_claim = if claimed == 0 {
            None
        } else {
            Some(crate::triage::baseline::median(&mut self.claim_minutes))
        };
        let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
        BurdenRow {
            key,
            patient_id,
            alerts: self.alerts,
            patient_days,
            alerts_per_patient_day: if patient_days > 0.0 {
                self.alerts as f64 / patient_days
            } else {
                0.0
            },
            judged: self.judged,
            false_alarms: self.false_alarms,
            false_alarm_share: share(self.false_alarms, self.judged),
            claimed,
            median_minutes_to_claim,
            claimed_within_target_share: share(self.claimed_in_time, claimed),
            escalations: self.escalations,
        }
    }
}

fn protocol_of(rule_key: &str) -> &str {
    rule_key.split('/').next().unwrap_or(rule_key)
}

/// Returns the rule part of an alert's key, with a device suffix of
/// technical alerts (`technical/battery_low/{device}`) left out, so all
/// devices' battery alerts count as one rule.
fn rule_of(rule_key: &str) -> String {
    let mut parts = rule_key.splitn(3, '/');
    let protocol = parts.next().unwrap_or_default();
    let rule = parts.next().unwrap_or_default();
    format!("{protocol}/{rule}")
}

/// Computes the figures; see the module docs. `patients` are the patients
/// monitored (of the teams asked for); `alerts` those opened in `[from, to)`.
pub fn compute(
    alerts: &[AlertListItem],
    patients: &[Patient],
    from: Timestamp,
    to: Timestamp,
) -> AlarmBurden {
    let days = ((to.micros() - from.micros()) as f64 / DAY as f64).max(0.0);
    let mut followers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut team_patients: BTreeMap<&str, usize> = BTreeMap::new();
    for patient in patients {
        for protocol in &patient.protocols {
            *followers.entry(protocol.as_str()).or_default() += 1;
        }
        *team_patients.entry(patient.team.as_str()).or_default() += 1;
    }
    let concerned = |protocol: &str| -> usize {
        if protocol == "technical" {
            patients.len()
        } else {
            followers.get(protocol).copied().unwrap_or(0)
        }
    };
    let week_start = to.plus_micros(-7 * DAY).max(from);
    let week_days = (to.micros() - week_start.micros()) as f64 / DAY as f64;

    let mut total = Tally::default();
    let mut by_protocol: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_team: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_patient: BTreeMap<Uuid, (String, Tally)> = BTreeMap::new();
    let mut this_week: BTreeMap<String, Tally> = BTreeMap::new();
    for item in alerts {
        let key = &item.alert.rule_key;
        total.add(item);
        by_protocol
            .entry(protocol_of(key).to_owned())
            .or_default()
            .add(item);
        by_rule.entry(rule_of(key)).or_default().add(item);
        by_team.entry(item.team.clone()).or_default().add(item);
        by_patient
            .entry(item.alert.patient_id)
            .or_insert_with(|| (item.patient_display_name.clone(), Tally::default()))
            .1
            .add(item);
        if item.alert.opened_at >= week_start {
            this_week.entry(rule_of(key)).or_default().add(item);
        }
    }
    let total_days = patients.len() as f64 * days;
    let mut rows_by_rule: Vec<BurdenRow> = by_rule
        .into_iter()
        .map(|(rule, tally)| {
            let patient_days = concerned(protocol_of(&rule)) as f64 * days;
            tally.row(rule, None, patient_days)
        })
        .collect();
    let by_alerts = |a: &BurdenRow, b: &BurdenRow| {
        b.alerts_per_patient_day
            .total_cmp(&a.alerts_per_patient_day)
            .then(b.alerts.cmp(&a.alerts))
            .then(a.key.cmp(&b.key))
    };
    rows_by_rule.sort_by(by_alerts);
    let mut rows_by_protocol: Vec<BurdenRow> = by_protocol
        .into_iter()
        .map(|(protocol, tally)| {
            let patient_days = concerned(&protocol) as f64 * days;
            tally.row(protocol, None, patient_days)
        })
        .collect();
    rows_by_protocol.sort_by(by_alerts);
    let mut rows_by_team: Vec<BurdenRow> = by_team
        .into_iter()
        .map(|(team, tally)| {
            let patient_days = team_patients.get(team.as_str()).copied().unwrap_or(0) as f64 * days;
            tally.row(team, None, patient_days)
        })
        .collect();
    rows_by_team.sort_by(by_alerts);
    let mut rows_by_patient: Vec<BurdenRow> = by_patient
        .into_iter()
        .map(|(id, (name, tally))| tally.row(name, Some(id), days))
        .collect();
    rows_by_patient.sort_by(by_alerts);
    rows_by_patient.truncate(TOP_ROWS);
    let mut noisiest: Vec<BurdenRow> = this_week
        .into_iter()
        .map(|(rule, tally)| {
            let patient_days = concerned(protocol_of(&rule)) as f64 * week_days;
            tally.row(rule, None, patient_days)
        })
        .collect();
    noisiest.sort_by(|a, b| b.alerts.cmp(&a.alerts).then(a.key.cmp(&b.key)));
    noisiest.truncate(TOP_ROWS);
    AlarmBurden {
        from,
        to,
        days,
        patients: patients.len(),
        total: total.row("total".to_owned(), None, total_days),
        by_protocol: rows_by_protocol,
        by_rule: rows_by_rule,
        by_team: rows_by_team,
        by_patient: rows_by_patient,
        noisiest_rules_this_week: noisiest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert_book::{Alert, AlertStatus};
    use crate::protocols::Priority;
    use crate::triage::urgency::NtsLevel;

    const MINUTE_MICROS: i64 = 60_000_000;

    fn patient(id: u128, team: &str, protocols: &[&str]) -> Patient {
        Patient {
            id: Uuid::from_u128(id),
            team_id: Uuid::from_u128(1000 + u128::from(team == "Emmen")),
            team: team.to_owned(),
            display_name: format!("P{id}"),
            birth_year: None,
            protocols: protocols.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn alert(
        patient: &Patient,
        rule_key: &str,
        opened_day: i64,
        claimed_after_minutes: Option<i64>,
        outcome: Option<Outcome>,
    ) -> AlertListItem {
        let opened_at = Timestamp(opened_day * DAY);
        AlertListItem {
            alert: Alert {
                id: Uuid::new_v4(),
                patient_id: patient.id,
                rule_key: rule_key.to_owned(),
                status: if outcome.is_some() {
                    AlertStatus::Resolved
                } else {
                    AlertStatus::Open
                },
                priority: Priority::Medium,
                nts: NtsLevel::U3,
                score: 3000.0,
                explanation: serde_json::json!({}),
                opened_at,
                updated_at: opened_at,
                respond_by: opened_at.plus_micros(60 * MINUTE_MICROS),
                claimed_by: claimed_after_minutes.map(|_| "anouk".to_owned()),
                claimed_at: claimed_after_minutes
                    .map(|minutes| opened_at.plus_micros(minutes * MINUTE_MICROS)),
                snoozed_until: None,
                escalated_to: None,
                resolved_at: None,
                resolved_by: None,
                outcome,
            },
            patient_display_name: patient.display_name.clone(),
            team_id: patient.team_id,
            team: patient.team.clone(),
        }
    }

    #[test]
    fn burden_counts_per_patient_day_false_alarms_and_time_to_claim() {
        // Arrange: three patients over 10 days; two follow heart-failure.
        let a = patient(1, "Assen", &["default", "heart-failure"]);
        let b = patient(2, "Assen", &["default", "heart-failure"]);
        let c = patient(3, "Emmen", &["default"]);
        let patients = [a.clone(), b.clone(), c.clone()];
        let alerts = [
            alert(
                &a,
                "heart-failure/weight_gain_3d",
                1,
                Some(30),
                Some(Outcome::ContactedPatient),
            ),
            alert(
                &a,
                "heart-failure/weight_gain_3d",
                5,
                Some(90),
                Some(Outcome::NoActionNeeded),
            ),
            alert(
                &b,
                "heart-failure/weight_gain_3d",
                8,
                Some(10),
                Some(Outcome::MeasurementError),
            ),
            alert(&c, "default/fever", 9, None, None),
            alert(&c, "technical/battery_low/scale-1", 9, None, None),
        ];

        // Act
        let burden = compute(&alerts, &patients, Timestamp(0), Timestamp(10 * DAY));

        // Assert: the weight rule concerns the two heart-failure patients.
        let weight = &burden.by_rule[0];
        assert_eq!(weight.key, "heart-failure/weight_gain_3d");
        assert_eq!(weight.alerts, 3);
        assert!((weight.patient_days - 20.0).abs() < 1e-9);
        assert!((weight.alerts_per_patient_day - 0.15).abs() < 1e-9);
        assert_eq!((weight.judged, weight.false_alarms), (3, 2));
        assert!((weight.false_alarm_share.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(weight.median_minutes_to_claim, Some(30.0));
        assert!((weight.claimed_within_target_share.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        // Technical alerts are one rule whatever the device, over everyone.
        let battery = burden
            .by_rule
            .iter()
            .find(|row| row.key == "technical/battery_low")
            .unwrap();
        assert!((battery.patient_days - 30.0).abs() < 1e-9);
        // Teams, patients, the total and this week.
        assert_eq!(burden.by_team.len(), 2);
        let assen = burden
            .by_team
            .iter()
            .find(|row| row.key == "Assen")
            .unwrap();
        assert!((assen.alerts_per_patient_day - 3.0 / 20.0).abs() < 1e-9);
        assert_eq!(burden.total.alerts, 5);
        assert!((burden.total.patient_days - 30.0).abs() < 1e-9);
        // P1 and P3 both have two alerts in ten days; the name breaks the tie.
        assert_eq!(burden.by_patient[0].patient_id, Some(a.id));
        assert_eq!(burden.by_patient.len(), 3);
        let this_week: Vec<&str> = burden
            .noisiest_rules_this_week
            .iter()
            .map(|row| row.key.as_str())
            .collect();
        assert_eq!(
            this_week,
            vec![
                "heart-failure/weight_gain_3d",
                "default/fever",
                "technical/battery_low"
            ],
            "alerts opened from day 3 on, most first"
        );
        assert_eq!(burden.noisiest_rules_this_week[0].alerts, 2);
    }

    #[test]
    fn nothing_judged_leaves_the_share_unknown_not_zero() {
        let a = patient(1, "Assen", &["default"]);
        let burden = compute(
            &[alert(&a, "default/fever", 0, None, None)],
            &[a],
            Timestamp(0),
            Timestamp(DAY),
        );
        assert_eq!(burden.total.false_alarm_share, None);
        assert_eq!(burden.total.median_minutes_to_claim, None);
    }
}
