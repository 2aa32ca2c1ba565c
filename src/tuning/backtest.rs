//! Backtest ("preview") of a protocol change: the stored readings of the
//! patients who follow the protocol, replayed through the real triage
//! engine twice — with the versions that were in force, and with the
//! proposed protocol — and compared with what actually happened.
//!
//! Only the rules the proposal changes are replayed (rules are evaluated
//! independently of each other, so an unchanged rule raises exactly what it
//! raised; the backtest engine does not hold a raise that another alert
//! covers, see [`TriageEngine::independent_rules`]), and only the readings of the metrics those rules read: a change
//! to the fever threshold replays two temperatures a day, not a wearable's
//! minute-by-minute heart rate. The unchanged rules count with the alerts
//! they actually raised (the alert book), the same before and after. Rules
//! the engine does not evaluate (missed measurements, device signals) are
//! named in `not_replayed` when changed.
//!
//! # What is counted
//!
//! An *alert* here is an episode: a rule of the protocol starting to fire
//! for a patient (the engine's raised finding), which ends when the rule
//! recovers. That is what a nurse is alerted to. (The alert book folds a
//! raise into an alert of the same rule that is still open, so where nurses
//! leave an alert open across episodes it holds fewer rows; and a raise
//! that another alert of the patient covers is named on that alert
//! instead of opening a row of its own.)
//!
//! - *Removed*: an episode under the rules in force that no proposed
//!   episode of the same patient and rule overlaps in time; *added*: the
//!   other way round; *kept*: the rest of the current ones.
//! - *Missed with a clinical outcome*: a stored alert of the protocol that
//!   nurses resolved with a clinical outcome (not "no action needed" or
//!   "measurement error") and that no proposed episode of the same patient
//!   and rule is active at, or raised within [`CATCH_HOURS`] after, the
//!   event time of the reading that raised it (a proposal that raises it
//!   later than that is counted as missing it).
//! - Per patient-day: episodes over patients × days.
//!
//! Each patient is replayed with only the protocol under test (its rules'
//! findings do not depend on other protocols, apart from the NEWS2 SpO2
//! scale, which is kept) and with their personal settings, from
//! [`warmup_hours`] before the period so that baselines and trend windows
//! hold what they held live; findings before the period are not counted.
//! Only readings of metrics a rule of the protocol reads are replayed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate};
use serde::Serialize;
use uuid::Uuid;

use crate::alert_book::{Alert, Outcome};
use crate::domain::{Metric, Timestamp};
use crate::protocols::Protocol;
use crate::store::RuleOverride;
use crate::triage::engine::{PersonalSettings, TriageEngine};
use crate::triage::patient_state::metric_index;
use crate::triage::urgency::{Finding, Transition};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

/// A stored clinical alert counts as caught by the proposal when a
/// proposed episode of its rule is active within this many hours after the
/// reading that raised it.
pub const CATCH_HOURS: i64 = 1;

/// Hours of readings before the period replayed to warm the engine up:
/// the baseline window plus the longest rule window of `protocols`.
pub fn warmup_hours(protocols: &BTreeMap<String, Protocol>) -> i64 {
    crate::alert_book::stage::rebuild_lookback_hours(protocols)
}

/// One patient's input.
#[derive(Debug, Clone)]
pub struct PatientInput {
    pub patient_id: Uuid,
    /// Whether any of the patient's protocols prescribes SpO2 scale 2.
    pub spo2_scale_two: bool,
    /// Every stored version of the patient's personal settings.
    pub personal: Vec<RuleOverride>,
    /// Readings in event-time order.
    pub readings: Vec<(Metric, f64, Timestamp)>,
}

/// One episode of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub raised: Timestamp,
    /// `None`: still firing at the end of the period.
    pub recovered: Option<Timestamp>,
}

impl Episode {
    /// Whether the episode, active from its raise until (not including)
    /// its recovery, shares a moment with `[from, to)`.
    fn overlaps(&self, from: Timestamp, to: Option<Timestamp>) -> bool {
        let self_end = self.recovered.map_or(i64::MAX, Timestamp::micros);
        let other_end = to.map_or(i64::MAX, Timestamp::micros);
        self.raised.micros() < other_end && from.micros() < self_end
    }
}

/// Episodes of one patient per rule key, under the rules in force and the
/// proposed ones.
#[derive(Debug, Clone, Default)]
pub struct PatientEpisodes {
    pub patient_id: Uuid,
    pub current: BTreeMap<String, Vec<Episode>>,
    pub proposed: BTreeMap<String, Vec<Episode>>,
    /// The patient's readings read.
    pub readings: usize,
    /// Readings evaluated by the engine, over both replays.
    pub replayed: usize,
}

/// A protocol id with its versions and their start times.
type RuleSet<'a> = (&'a str, &'a [(Timestamp, &'a Protocol)]);

/// What to replay.
#[derive(Debug, Clone)]
pub struct Setup {
    pub protocol_id: String,
    /// The versions in force, oldest first, with their start times, with
    /// only the rules to replay.
    current: Vec<(Timestamp, Protocol)>,
    /// The proposed protocol with only the rules to replay.
    proposed: Protocol,
    /// The changed rules the engine evaluates: `"{protocol}/{rule}"`.
    replayed: Vec<String>,
    /// Changed rules the engine does not evaluate.
    not_replayed: Vec<String>,
    /// Whether the proposal changes the NEWS2 scale.
    scale_changed: bool,
    /// A bit per metric ([`metric_index`]) that a replayed rule reads, in
    /// force or proposed.
    metrics: u32,
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Setup {
    /// Prepares a backtest of `proposed` against `current` (the protocol's
    /// chain of versions) over `[from, to)`.
    pub fn new(
        protocol_id: &str,
        current: &[(Timestamp, Protocol)],
        proposed: &Protocol,
        from: Timestamp,
        to: Timestamp,
    ) -> Setup {
        let newest = current.last().map(|(_, protocol)| protocol);
        let scale_changed = newest.is_some_and(|newest| newest.news2_scale != proposed.news2_scale);
        let mut ids: Vec<&String> = proposed.rules.iter().map(|rule| &rule.id).collect();
        if let Some(newest) = newest {
            ids.extend(newest.rules.iter().map(|rule| &rule.id));
        }
        ids.sort();
        ids.dedup();
        let find = |protocol: Option<&Protocol>, id: &str| {
            protocol.and_then(|p| p.rules.iter().find(|rule| rule.id == id).cloned())
        };
        let mut changed = Vec::new();
        let mut not_replayed = Vec::new();
        for id in ids {
            let before = find(newest, id);
            let after = find(Some(proposed), id);
            if before == after && !scale_changed {
                continue;
            }
            let kind = after.as_ref().or(before.as_ref()).map(|rule| rule.kind);
            if kind.is_some_and(crate::triage::rules::is_supported) {
                changed.push(id.clone());
            } else {
                not_replayed.push(format!("{protocol_id}/{id}"));
            }
        }
        let only_changed = |protocol: &Protocol| {
            let mut protocol = protocol.clone();
            protocol.rules.retain(|rule| changed.contains(&rule.id));
            protocol
        };
        let current: Vec<(Timestamp, Protocol)> = current
            .iter()
            .map(|(from, protocol)| (*from, only_changed(protocol)))
            .collect();
        let proposed = only_changed(proposed);
        let mut metrics_engine = TriageEngine::new(BTreeMap::new());
        let mut versions: Vec<(Timestamp, &Protocol)> =
            current.iter().map(|(from, p)| (*from, p)).collect();
        versions.push((Timestamp(i64::MAX), &proposed));
        metrics_engine.set_protocol_versions(protocol_id, &versions);
        let metrics = metrics_engine.protocol_metrics(protocol_id);
        Setup {
            protocol_id: protocol_id.to_owned(),
            current,
            proposed,
            scale_changed,
            metrics,
            replayed: changed
                .iter()
                .map(|id| format!("{protocol_id}/{id}"))
                .collect(),
            not_replayed,
            from,
            to,
        }
    }

    /// Returns the changed rules the replay judges.
    pub fn replayed(&self) -> &[String] {
        &self.replayed
    }

    /// Returns the metrics the replayed rules read: the only readings the
    /// replay needs.
    pub fn metrics(&self) -> Vec<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|metric| self.metrics & (1 << metric_index(*metric)) != 0)
            .collect()
    }

    /// Replays one patient under both rule sets.
    ///
    /// One pass evaluates both over one history: the proposal is loaded as
    /// a second protocol (`{id}#proposed`) beside the versions in force, so
    /// each reading is recorded once and judged by both. A changed NEWS2
    /// scale (a property of the patient, not of a rule) needs two passes.
    pub fn replay(&self, patient: &PatientInput) -> PatientEpisodes {
        let current: Vec<(Timestamp, &Protocol)> =
            self.current.iter().map(|(from, p)| (*from, p)).collect();
        let proposed = [(Timestamp::MIN, &self.proposed)];
        let proposed_id = format!("{}#proposed", self.protocol_id);
        let both: Vec<RuleSet<'_>> = vec![
            (self.protocol_id.as_str(), &current[..]),
            (proposed_id.as_str(), &proposed[..]),
        ];
        let passes: Vec<&[RuleSet<'_>]> = if self.scale_changed {
            vec![&both[..1], &both[1..]]
        } else {
            vec![&both[..]]
        };
        let mut episodes = PatientEpisodes {
            patient_id: patient.patient_id,
            ..PatientEpisodes::default()
        };
        let own_prefix = format!("{}/", self.protocol_id);
        let proposed_prefix = format!("{proposed_id}/");
        for pass in passes {
            let mut engine = TriageEngine::new(BTreeMap::new());
            engine.count_only();
            engine.independent_rules();
            let mut ids = Vec::new();
            for (id, versions) in pass {
                engine.set_protocol_versions(id, versions);
                ids.push((*id).to_owned());
            }
            engine
                .register_patient(patient.patient_id, &ids)
                .expect("the protocols are loaded");
            engine.set_spo2_scale_two(&patient.patient_id, patient.spo2_scale_two);
            // The patient's personal settings apply to both rule sets.
            let keys: Vec<(String, &RuleOverride)> = patient
                .personal
                .iter()
                .filter_map(|version| {
                    let rule = version.rule_key.strip_prefix(&own_prefix)?;
                    Some(ids.iter().map(move |id| (format!("{id}/{rule}"), version)))
                })
                .flatten()
                .collect();
            let settings: Vec<PersonalSettings<'_>> = keys
                .iter()
                .map(|(key, version)| PersonalSettings {
                    rule_key: key,
                    settings: &version.settings,
                    valid_from: version.valid_from,
                    valid_until: version.valid_until,
                })
                .collect();
            engine.set_personal_settings(patient.patient_id, &settings);
            let mut findings: Vec<Finding> = Vec::new();
            for (metric, value, ts) in &patient.readings {
                if self.metrics & (1 << metric_index(*metric)) == 0 || *ts >= self.to {
                    continue;
                }
                episodes.replayed += 1;
                engine.evaluate_measurement(
                    patient.patient_id,
                    *metric,
                    *value,
                    *ts,
                    &mut findings,
                );
                for finding in findings.drain(..) {
                    if finding.ts < self.from {
                        continue;
                    }
                    let (out, rule_key) = match finding.rule_id.strip_prefix(&proposed_prefix) {
                        Some(rule) => (&mut episodes.proposed, format!("{own_prefix}{rule}")),
                        None => (&mut episodes.current, finding.rule_id),
                    };
                    let list = out.entry(rule_key).or_default();
                    match finding.transition {
                        Transition::Raised => list.push(Episode {
                            raised: finding.ts,
                            recovered: None,
                        }),
                        Transition::Recovered => {
                            if let Some(open) = list
                                .last_mut()
                                .filter(|episode| episode.recovered.is_none())
                            {
                                open.recovered = Some(finding.ts);
                            }
                        }
                        Transition::Ongoing => {}
                    }
                }
            }
        }
        episodes.readings = patient.readings.len();
        episodes
    }
}

/// Counts of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Alerts under the rules in force.
    pub current: usize,
    /// Alerts under the proposed rules.
    pub proposed: usize,
    /// Alerts in force that the proposal no longer raises.
    pub removed: usize,
    /// Alerts the proposal raises that were not raised.
    pub added: usize,
}

/// Per patient.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatientRow {
    pub patient_id: Uuid,
    /// The patient's name, for the page (filled in by the caller).
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Per rule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleRow {
    /// `"{protocol}/{rule}"`.
    pub rule: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Per week (Monday to Sunday, UTC).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WeekRow {
    #[schema(value_type = String, format = Date)]
    pub week_of: NaiveDate,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A stored alert resolved with a clinical outcome that the proposal
/// would not have raised.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MissedAlert {
    pub alert_id: Uuid,
    pub patient_id: Uuid,
    pub rule: String,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub outcome: Outcome,
}

/// The backtest's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BacktestResult {
    pub protocol_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub from: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub to: chrono::DateTime<chrono::Utc>,
    pub patients: usize,
    /// Readings of the period and the warm-up before it that were read.
    pub readings: usize,
    /// Readings the engine evaluated, over both replays: only those of the
    /// metrics the changed rules read.
    pub readings_replayed: usize,
    #[serde(flatten)]
    pub totals: Counts,
    /// Alerts per patient-day under the rules in force.
    pub current_per_patient_day: f64,
    /// Alerts per patient-day under the proposed rules.
    pub proposed_per_patient_day: f64,
    pub missed_clinical: Vec<MissedAlert>,
    /// The changed rules that were replayed.
    pub replayed_rules: Vec<String>,
    /// Changed rules the engine does not evaluate (missed measurements,
    /// device signals): counted as they were.
    pub not_replayed: Vec<String>,
    pub by_rule: Vec<RuleRow>,
    pub by_week: Vec<WeekRow>,
    /// Patients whose counts change, most changed first.
    pub by_patient: Vec<PatientRow>,
}

fn week_of(ts: Timestamp) -> NaiveDate {
    let date = ts.to_datetime().date_naive();
    date - ChronoDuration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// Compares the episodes of every patient and the stored alerts of the period.
/// `stored` are the stored alerts of the period, each with the event time
/// of the reading that raised it.
pub fn summarize(
    setup: &Setup,
    patients: &[PatientEpisodes],
    stored: &[(Alert, Timestamp)],
) -> BacktestResult {
    let mut totals = Counts::default();
    let mut by_rule: BTreeMap<String, Counts> = BTreeMap::new();
    let mut by_week: BTreeMap<NaiveDate, Counts> = BTreeMap::new();
    let mut week = week_of(setup.from);
    while week <= week_of(setup.to.plus_micros(-1)) {
        by_week.insert(week, Counts::default());
        week += ChronoDuration::days(7);
    }
    let mut by_patient = Vec::new();
    let mut readings = 0;
    let mut readings_replayed = 0;
    for patient in patients {
        readings += patient.readings;
        readings_replayed += patient.replayed;
        let mut counts = Counts::default();
        let empty = Vec::new();
        let rules: std::collections::BTreeSet<&String> = patient
            .current
            .keys()
            .chain(patient.proposed.keys())
            .collect();
        for rule in rules {
            let current = patient.current.get(rule).unwrap_or(&empty);
            let proposed = patient.proposed.get(rule).unwrap_or(&empty);
            let rule_counts = by_rule.entry(rule.clone()).or_default();
            for episode in current {
                let kept = proposed
                    .iter()
                    .any(|other| other.overlaps(episode.raised, episode.recovered));
                let week = by_week.entry(week_of(episode.raised)).or_default();
                for counts in [&mut counts, &mut *rule_counts, week] {
                    counts.current += 1;
                    counts.removed += usize::from(!kept);
                }
            }
            for episode in proposed {
                let new = !current
                    .iter()
                    .any(|other| other.overlaps(episode.raised, episode.recovered));
                let week = by_week.entry(week_of(episode.raised)).or_default();
                for counts in [&mut counts, &mut *rule_counts, week] {
                    counts.proposed += 1;
                    counts.added += usize::from(new);
                }
            }
        }
        totals.current += counts.current;
        totals.proposed += counts.proposed;
        totals.removed += counts.removed;
        totals.added += counts.added;
        if counts.removed + counts.added > 0 {
            by_patient.push(PatientRow {
                patient_id: patient.patient_id,
                display_name: None,
                counts,
            });
        }
    }
    by_patient.sort_by_key(|row| std::cmp::Reverse(row.counts.removed + row.counts.added));
    let prefix = format!("{}/", setup.protocol_id);
    // The rules not replayed count as they actually raised, before and after.
    for (alert, _) in stored {
        if !alert.rule_key.starts_with(&prefix)
            || setup.replayed.contains(&alert.rule_key)
            || alert.opened_at < setup.from
            || alert.opened_at >= setup.to
            || !patients.iter().any(|p| p.patient_id == alert.patient_id)
        {
            continue;
        }
        let rule_counts = by_rule.entry(alert.rule_key.clone()).or_default();
        let week = by_week.entry(week_of(alert.opened_at)).or_default();
        for counts in [&mut totals, rule_counts, week] {
            counts.current += 1;
            counts.proposed += 1;
        }
    }
    let missed_clinical = stored
        .iter()
        .filter(|(alert, _)| setup.replayed.contains(&alert.rule_key))
        .filter(|(alert, _)| alert.outcome.is_some_and(Outcome::is_clinical))
        .filter(|(alert, _)| alert.opened_at >= setup.from && alert.opened_at < setup.to)
        .filter(|(alert, raised)| {
            let Some(patient) = patients.iter().find(|p| p.patient_id == alert.patient_id) else {
                return false;
            };
            !patient
                .proposed
                .get(&alert.rule_key)
                .is_some_and(|episodes| {
                    episodes.iter().any(|episode| {
                        episode.overlaps(*raised, Some(raised.plus_micros(CATCH_HOURS * HOUR + 1)))
                    })
                })
        })
        .map(|(alert, _)| MissedAlert {
            alert_id: alert.id,
            patient_id: alert.patient_id,
            rule: alert.rule_key.clone(),
            opened_at: alert.opened_at.to_datetime(),
            outcome: alert.outcome.unwrap_or(Outcome::NoActionNeeded),
        })
        .collect();
    #[allow(clippy::cast_precision_loss)] // counts and days are small
    let patient_days = (patients.len() as f64 * (setup.to.micros() - setup.from.micros()) as f64
        / DAY as f64)
        .max(f64::MIN_POSITIVE);
    #[allow(clippy::cast_precision_loss)]
    BacktestResult {
        protocol_id: setup.protocol_id.clone(),
        from: setup.from.to_datetime(),
        to: setup.to.to_datetime(),
        patients: patients.len(),
        readings,
        readings_replayed,
        totals,
        current_per_patient_day: totals.current as f64 / patient_days,
        proposed_per_patient_day: totals.proposed as f64 / patient_days,
        missed_clinical,
        replayed_rules: setup.replayed.clone(),
        not_replayed: setup.not_replayed.clone(),
        by_rule: by_rule
            .into_iter()
            .map(|(rule, counts)| RuleRow { rule, counts })
            .collect(),
        by_week: by_week
            .into_iter()
            .map(|(week_of, counts)| WeekRow { week_of, counts })
            .collect(),
        by_patient,
    }
}

/// Replays `patients` on all cores; counts finished patients in `done` and
/// stops early (returning `None`) when `cancelled` says so.
pub fn replay_all(
    setup: &Setup,
    patients: &[PatientInput],
    done: &AtomicUsize,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Option<Vec<PatientEpisodes>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(patients.len().max(1));
    let chunk = patients.len().div_ceil(workers).max(1);
    let results: Vec<Option<Vec<PatientEpisodes>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = patients
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for patient in part {
                        if cancelled() {
                            return None;
                        }
                        out.push(setup.replay(patient));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(patients.len());
    for part in results {
        all.extend(part?);
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::protocols::load_dir;

    fn setup(proposed_above: f64) -> Setup {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let default = load_dir(&dir).unwrap().remove("default").unwrap();
        let mut proposed = default.clone();
        proposed
            .rules
            .iter_mut()
            .find(|rule| rule.id == "fever")
            .unwrap()
            .above = Some(proposed_above);
        Setup::new(
            "default",
            &[(Timestamp::MIN, default)],
            &proposed,
            Timestamp(10 * DAY),
            Timestamp(24 * DAY),
        )
    }

    fn patient(id: u128, temps: &[(i64, f64)]) -> PatientInput {
        PatientInput {
            patient_id: Uuid::from_u128(id),
            spo2_scale_two: false,
            personal: Vec::new(),
            readings: temps
                .iter()
                .map(|(hour, value)| {
                    (
                        Metric::BodyTemperature,
                        *value,
                        Timestamp(10 * DAY + hour * HOUR),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn raising_a_threshold_removes_the_alerts_below_it_and_keeps_the_rest() {
        // Arrange: fever from 38.0 (in force) or 38.5 (proposed). Patient 1:
        // 38.2 then 39.0 later; patient 2: 38.3 only; a reading before the
        // period warms up but does not count.
        let setup = setup(38.5);
        let patients = vec![
            patient(
                1,
                &[
                    (-30, 38.6),
                    (-29, 37.0),
                    (1, 38.2),
                    (2, 37.0),
                    (200, 39.0),
                    (201, 37.0),
                ],
            ),
            patient(2, &[(5, 38.3), (6, 37.2)]),
        ];

        // Act
        let done = AtomicUsize::new(0);
        let episodes = replay_all(&setup, &patients, &done, &|| false).unwrap();
        let result = summarize(&setup, &episodes, &[]);

        // Assert
        assert_eq!(done.load(Ordering::Relaxed), 2);
        assert_eq!(
            result.totals,
            Counts {
                current: 3,
                proposed: 1,
                removed: 2,
                added: 0
            }
        );
        let fever = result
            .by_rule
            .iter()
            .find(|row| row.rule == "default/fever")
            .unwrap();
        assert_eq!(fever.counts.current, 3);
        assert_eq!(result.by_patient.len(), 2);
        // Day 10 (a Sunday) to day 24: weeks of 5, 12 and 19 January 1970.
        assert_eq!(result.by_week.len(), 3, "{:?}", result.by_week);
        assert_eq!(
            result
                .by_week
                .iter()
                .map(|w| w.counts.current)
                .sum::<usize>(),
            3
        );
        assert!((result.current_per_patient_day - 3.0 / 28.0).abs() < 1e-9);
    }

    #[test]
    fn personal_settings_apply_to_both_rule_sets_and_a_scale_change_replays_twice() {
        // Arrange: the patient's own fever threshold is 39.5.
        let setup = setup(38.5);
        let mut with_personal = patient(1, &[(1, 38.7), (2, 37.0)]);
        with_personal.personal.push(RuleOverride {
            id: 1,
            patient_id: with_personal.patient_id,
            rule_key: "default/fever".to_owned(),
            version: 1,
            settings: serde_json::from_str(r#"{"above": 39.5, "recover_at": 39.0}"#).unwrap(),
            valid_from: Timestamp(0),
            valid_until: None,
            author: "coördinator".to_owned(),
            reason: "gewoonlijk wat warm".to_owned(),
            created_at: Timestamp(0),
            review_by: None,
            approved_by: None,
        });
        let without = patient(2, &[(1, 38.7), (2, 37.0)]);
        let mut scale_two = setup.proposed.clone();
        scale_two.news2_scale = 2;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let default = load_dir(&dir).unwrap().remove("default").unwrap();
        let scale_setup = Setup::new(
            "default",
            &[(Timestamp::MIN, default)],
            &scale_two,
            setup.from,
            setup.to,
        );

        // Act
        let done = AtomicUsize::new(0);
        let personal = summarize(
            &setup,
            &replay_all(&setup, &[with_personal], &done, &|| false).unwrap(),
            &[],
        );
        let plain = summarize(
            &setup,
            &replay_all(&setup, std::slice::from_ref(&without), &done, &|| false).unwrap(),
            &[],
        );
        let scaled = summarize(
            &scale_setup,
            &replay_all(&scale_setup, &[without], &done, &|| false).unwrap(),
            &[],
        );

        // Assert
        assert_eq!(
            personal.totals,
            Counts::default(),
            "39.5 is the patient's own threshold"
        );
        assert_eq!(
            plain.totals,
            Counts {
                current: 1,
                proposed: 1,
                removed: 0,
                added: 0
            }
        );
        // A scale change replays every rule, each rule set in its own pass.
        assert!(
            scaled.replayed_rules.len() > 5,
            "{:?}",
            scaled.replayed_rules
        );
        assert_eq!(scaled.totals.current, scaled.totals.proposed);
        assert_eq!(scaled.readings_replayed, 4);
    }

    #[test]
    fn lowering_a_threshold_adds_alerts_and_cancelling_stops() {
        let setup = setup(37.6);
        let patients = vec![patient(1, &[(1, 37.7), (2, 37.0)])];
        let done = AtomicUsize::new(0);
        let episodes = replay_all(&setup, &patients, &done, &|| false).unwrap();
        let result = summarize(&setup, &episodes, &[]);
        assert_eq!(
            result.totals,
            Counts {
                current: 0,
                proposed: 1,
                removed: 0,
                added: 1
            }
        );
        assert!(replay_all(&setup, &patients, &done, &|| true).is_none());
    }
}
