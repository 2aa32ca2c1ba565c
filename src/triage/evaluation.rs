//! Scores the triage engine against a simulated population: how many of the
//! injected deteriorations it finds, how early, and how many alerts it raises
//! that no deterioration explains.
//!
//! In: a [`Population`] (its patients, devices and the truth of what was
//! injected) and the protocols. Out: an [`Evaluation`], printed by
//! `thuiswacht evaluate` as text or JSON. Pure and clock-free: the same seed
//! gives the same figures.
//!
//! # Choices
//!
//! - Every reading goes through the real [`TriageEngine`] in event-time
//!   order, as a gateway-independent store would hand them to triage. The
//!   simulator's days are produced one at a time (each day's readings fall
//!   within that day), so memory stays bounded for 500 patients × 30 days.
//! - Messages a device fault made implausible are left out: the device
//!   profile check quarantines them and the triage stage turns them into
//!   technical alerts, which is not the clinical engine's job. Device faults
//!   are therefore reported as injected only; patients whose only
//!   deterioration is a device fault count as patients without one.
//! - A clinical deterioration counts when its peak falls inside the simulated
//!   window (one that peaks after the last day was cut off before it fully
//!   developed). It is detected when any rule of the patient is raised
//!   between its onset and its end; the lead time is peak minus that first
//!   raise, in hours (negative: after the peak).
//! - False alerts, two ways: raised findings on patients without any
//!   clinical deterioration, per patient-day; and raised findings outside
//!   every deterioration's onset..end on patients with one, per patient-day
//!   outside those windows.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use super::engine::{TriageEngine, TriageError};
use super::urgency::{Finding, Transition};
use crate::domain::{Metric, Timestamp};
use crate::protocols::Protocol;
use crate::simulate::{DeteriorationKind, Population};

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// One reading of a simulated patient, as triage receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedReading {
    pub ts: Timestamp,
    pub patient_id: Uuid,
    pub metric: Metric,
    pub value: f64,
}

/// Maps device ids to the patient each belongs to.
#[derive(Debug, Clone)]
pub struct DeviceOwners(HashMap<String, Uuid>);

impl DeviceOwners {
    /// Returns the owners of every device of `population`.
    pub fn of(population: &Population) -> DeviceOwners {
        DeviceOwners(
            population
                .patients
                .iter()
                .flat_map(|patient| {
                    patient
                        .devices
                        .iter()
                        .map(|device| (device.device_id.clone(), patient.id))
                })
                .collect(),
        )
    }
}

/// Returns the readings of simulated day `day` in event-time order (readings
/// with the same event time keep their message order), leaving out the
/// messages a device fault made implausible.
pub fn day_readings(
    population: &Population,
    owners: &DeviceOwners,
    day: u32,
) -> Vec<SimulatedReading> {
    let mut readings = Vec::new();
    for message in population.day(day).into_iter().filter(|m| !m.faulty) {
        let Some(&patient_id) = owners.0.get(&message.device_id) else {
            continue;
        };
        readings.extend(
            message
                .readings
                .into_iter()
                .map(|(metric, value, ts)| SimulatedReading {
                    ts,
                    patient_id,
                    metric,
                    value,
                }),
        );
    }
    readings.sort_by_key(|reading| reading.ts);
    readings
}

/// A rule raised for a patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    pub patient_id: Uuid,
    pub rule_id: String,
    pub ts: Timestamp,
}

/// What running a population through the engine produced.
#[derive(Debug, Clone)]
pub struct SimulationRun {
    pub raises: Vec<Raise>,
    pub readings: usize,
    pub state_bytes: usize,
}

/// Registers every patient of `population` and runs all its readings through
/// a new engine over `protocols`, keeping the raised findings.
///
/// # Errors
/// Names a protocol a simulated patient follows that is not loaded.
pub fn run_population(
    population: &Population,
    protocols: BTreeMap<String, Protocol>,
) -> Result<SimulationRun, TriageError> {
    let mut engine = TriageEngine::new(protocols);
    for patient in &population.patients {
        engine.register_patient(patient.id, &patient.protocols)?;
    }
    let owners = DeviceOwners::of(population);
    let mut run = SimulationRun {
        raises: Vec::new(),
        readings: 0,
        state_bytes: 0,
    };
    let mut findings: Vec<Finding> = Vec::new();
    for day in 0..population.days {
        let readings = day_readings(population, &owners, day);
        run.readings += readings.len();
        for reading in &readings {
            engine.evaluate_measurement(
                reading.patient_id,
                reading.metric,
                reading.value,
                reading.ts,
                &mut findings,
            );
            for finding in findings.drain(..) {
                if finding.transition == Transition::Raised {
                    run.raises.push(Raise {
                        patient_id: finding.patient_id,
                        rule_id: finding.rule_id,
                        ts: finding.ts,
                    });
                }
            }
        }
    }
    run.state_bytes = engine.state_bytes();
    Ok(run)
}

/// Detection of one kind of clinical deterioration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindReport {
    pub kind: DeteriorationKind,
    /// Injected deteriorations of this kind that peaked inside the window.
    pub injected: usize,
    pub detected: usize,
    /// `detected / injected`; `None` when none was injected.
    pub detection_rate: Option<f64>,
    /// Median hours from the first raised finding to the peak (negative:
    /// after the peak); `None` when none was detected.
    pub median_lead_hours: Option<f64>,
    /// Which rule raised first, per detected deterioration.
    pub first_rules: BTreeMap<String, usize>,
}

/// Raised findings that no clinical deterioration explains.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalseAlerts {
    /// Patients without a clinical deterioration.
    pub quiet_patients: usize,
    pub quiet_patient_days: f64,
    pub raised_on_quiet_patients: usize,
    pub per_patient_day_quiet: f64,
    /// Patients with a clinical deterioration.
    pub deteriorating_patients: usize,
    /// Their patient-days outside every deterioration's onset..end.
    pub patient_days_outside_deteriorations: f64,
    pub raised_outside_deteriorations: usize,
    pub per_patient_day_outside_deteriorations: f64,
    /// Both kinds of false raise, per rule.
    pub by_rule: BTreeMap<String, usize>,
}

/// What `thuiswacht evaluate` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub seed: u64,
    pub patients: usize,
    pub days: u32,
    pub readings: usize,
    /// One entry per clinical kind, in [`DeteriorationKind::ALL`] order.
    pub kinds: Vec<KindReport>,
    /// Device faults injected; found by the technical path, not by triage.
    pub device_faults: usize,
    pub false_alerts: FalseAlerts,
    /// Approximate size of the engine's patient state at the end.
    pub state_bytes: usize,
}

impl Evaluation {
    /// Returns the detected and injected clinical deteriorations over all kinds.
    pub fn detected_of_injected(&self) -> (usize, usize) {
        self.kinds
            .iter()
            .fold((0, 0), |(detected, injected), kind| {
                (detected + kind.detected, injected + kind.injected)
            })
    }
}

/// Runs `population` through the engine and scores it against the
/// injected deteriorations; see the module docs.
///
/// # Errors
/// As [`run_population`].
pub fn evaluate(
    population: &Population,
    protocols: BTreeMap<String, Protocol>,
) -> Result<Evaluation, TriageError> {
    let run = run_population(population, protocols)?;
    Ok(score(population, &run))
}

/// Scores a run against the population's truth.
pub fn score(population: &Population, run: &SimulationRun) -> Evaluation {
    let window_start = population.start;
    let window_end = population
        .start
        .plus_micros(i64::from(population.days) * MICROS_PER_DAY);
    let clinical: Vec<_> = population
        .deteriorations
        .iter()
        .filter(|d| d.kind != DeteriorationKind::DeviceFault)
        .collect();
    let mut raises_by_patient: HashMap<Uuid, Vec<&Raise>> = HashMap::new();
    for raise in &run.raises {
        raises_by_patient
            .entry(raise.patient_id)
            .or_default()
            .push(raise);
    }
    let no_raises = Vec::new();

    let mut kinds = Vec::new();
    for kind in DeteriorationKind::ALL {
        if kind == DeteriorationKind::DeviceFault {
            continue;
        }
        let mut report = KindReport {
            kind,
            injected: 0,
            detected: 0,
            detection_rate: None,
            median_lead_hours: None,
            first_rules: BTreeMap::new(),
        };
        let mut leads = Vec::new();
        for deterioration in clinical
            .iter()
            .filter(|d| d.kind == kind && d.peak >= window_start && d.peak < window_end)
        {
            report.injected += 1;
            let first = raises_by_patient
                .get(&deterioration.patient_id)
                .unwrap_or(&no_raises)
                .iter()
                .filter(|raise| raise.ts >= deterioration.onset && raise.ts <= deterioration.end)
                .min_by_key(|raise| raise.ts);
            if let Some(first) = first {
                report.detected += 1;
                leads.push(deterioration.peak.seconds_since(first.ts) / 3600.0);
                *report.first_rules.entry(first.rule_id.clone()).or_default() += 1;
            }
        }
        if report.injected > 0 {
            report.detection_rate = Some(report.detected as f64 / report.injected as f64);
        }
        report.median_lead_hours = median(&mut leads);
        kinds.push(report);
    }

    let mut false_alerts = FalseAlerts {
        quiet_patients: 0,
        quiet_patient_days: 0.0,
        raised_on_quiet_patients: 0,
        per_patient_day_quiet: 0.0,
        deteriorating_patients: 0,
        patient_days_outside_deteriorations: 0.0,
        raised_outside_deteriorations: 0,
        per_patient_day_outside_deteriorations: 0.0,
        by_rule: BTreeMap::new(),
    };
    let window_days = f64::from(population.days);
    for patient in &population.patients {
        let windows: Vec<(Timestamp, Timestamp)> = clinical
            .iter()
            .filter(|d| d.patient_id == patient.id)
            .map(|d| (d.onset, d.end))
            .collect();
        let raises = raises_by_patient.get(&patient.id).unwrap_or(&no_raises);
        let unexplained = raises.iter().filter(|raise| {
            !windows
                .iter()
                .any(|(onset, end)| raise.ts >= *onset && raise.ts <= *end)
        });
        let mut count = 0;
        for raise in unexplained {
            count += 1;
            *false_alerts
                .by_rule
                .entry(raise.rule_id.clone())
                .or_default() += 1;
        }
        if windows.is_empty() {
            false_alerts.quiet_patients += 1;
            false_alerts.quiet_patient_days += window_days;
            false_alerts.raised_on_quiet_patients += count;
        } else {
            let covered_micros: i64 = windows
                .iter()
                .map(|(onset, end)| {
                    (end.micros().min(window_end.micros())
                        - onset.micros().max(window_start.micros()))
                    .max(0)
                })
                .sum();
            false_alerts.deteriorating_patients += 1;
            false_alerts.patient_days_outside_deteriorations +=
                (window_days - covered_micros as f64 / MICROS_PER_DAY as f64).max(0.0);
            false_alerts.raised_outside_deteriorations += count;
        }
    }
    if false_alerts.quiet_patient_days > 0.0 {
        false_alerts.per_patient_day_quiet =
            false_alerts.raised_on_quiet_patients as f64 / false_alerts.quiet_patient_days;
    }
    if false_alerts.patient_days_outside_deteriorations > 0.0 {
        false_alerts.per_patient_day_outside_deteriorations =
            false_alerts.raised_outside_deteriorations as f64
                / false_alerts.patient_days_outside_deteriorations;
    }
    Evaluation {
        seed: population.seed,
        patients: population.patients.len(),
        days: population.days,
        readings: run.readings,
        kinds,
        device_faults: population.deteriorations.len() - clinical.len(),
        false_alerts,
        state_bytes: run.state_bytes,
    }
}

/// Returns the median of `values` (the mean of the middle two for an even
/// count), reordering them; `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} simulated patients × {} days (seed {}): {} readings through the triage engine",
            self.patients, self.days, self.seed, self.readings
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>8} {:>8} {:>6} {:>18}",
            "deterioration", "injected", "detected", "rate", "median lead (h)"
        )?;
        for kind in &self.kinds {
            let name = serde_json::to_value(kind.kind)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default();
            let rate = kind
                .detection_rate
                .map_or_else(|| "-".to_owned(), |rate| format!("{:.0}%", rate * 100.0));
            let lead = kind
                .median_lead_hours
                .map_or_else(|| "-".to_owned(), |lead| format!("{lead:+.1}"));
            writeln!(
                f,
                "{name:<22} {:>8} {:>8} {rate:>6} {lead:>18}",
                kind.injected, kind.detected
            )?;
        }
        let (detected, injected) = self.detected_of_injected();
        writeln!(f, "{:<22} {injected:>8} {detected:>8}", "all clinical")?;
        writeln!(
            f,
            "(lead: hours from the first raised finding to the peak; negative means after it)"
        )?;
        writeln!(f)?;
        let false_alerts = &self.false_alerts;
        writeln!(
            f,
            "false alerts: {:.3} per patient-day on {} patients without a deterioration ({} raised over {:.0} patient-days)",
            false_alerts.per_patient_day_quiet,
            false_alerts.quiet_patients,
            false_alerts.raised_on_quiet_patients,
            false_alerts.quiet_patient_days
        )?;
        writeln!(
            f,
            "              {:.3} per patient-day outside the deterioration on {} patients with one ({} raised over {:.0} patient-days)",
            false_alerts.per_patient_day_outside_deteriorations,
            false_alerts.deteriorating_patients,
            false_alerts.raised_outside_deteriorations,
            false_alerts.patient_days_outside_deteriorations
        )?;
        let mut by_rule: Vec<(&String, &usize)> = false_alerts.by_rule.iter().collect();
        by_rule.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        if !by_rule.is_empty() {
            let listed: Vec<String> = by_rule
                .iter()
                .map(|(rule, count)| format!("{rule} {count}"))
                .collect();
            writeln!(f, "false alerts by rule: {}", listed.join(", "))?;
        }
        writeln!(
            f,
            "device faults injected: {} (quarantined and raised as technical alerts, not by triage)",
            self.device_faults
        )?;
        write!(
            f,
            "triage state: {:.1} MiB ({} bytes per patient)",
            self.state_bytes as f64 / (1024.0 * 1024.0),
            self.state_bytes / self.patients.max(1)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::protocols::load_dir;

    fn protocols() -> BTreeMap<String, Protocol> {
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")).expect("alerts/ loads")
    }

    #[test]
    fn day_readings_are_in_event_time_order_and_leave_out_faulty_messages() {
        // Arrange
        let end = Timestamp(1_790_000_000 * 1_000_000);
        let population = Population::generate(11, 40, 10, end);
        let owners = DeviceOwners::of(&population);
        let faulty_day = (0..population.days)
            .find(|day| population.day(*day).iter().any(|m| m.faulty))
            .expect("a device fault within ten days of 40 patients");

        // Act
        let readings = day_readings(&population, &owners, faulty_day);

        // Assert
        let messages = population.day(faulty_day);
        let plausible: usize = messages
            .iter()
            .filter(|m| !m.faulty)
            .map(|m| m.readings.len())
            .sum();
        assert_eq!(readings.len(), plausible);
        assert!(readings.len() < messages.iter().map(|m| m.readings.len()).sum());
        assert!(readings.windows(2).all(|pair| pair[0].ts <= pair[1].ts));
    }

    #[test]
    fn scoring_counts_detections_leads_and_false_alerts_from_the_raises() {
        // Arrange: a population with one clinical deterioration, and made-up
        // raises: one inside it (10 h before the peak), one outside it, one
        // on a quiet patient.
        let end = Timestamp(1_790_000_000 * 1_000_000);
        let population = Population::generate(5, 60, 20, end);
        let deterioration = population
            .deteriorations
            .iter()
            .find(|d| {
                d.kind != DeteriorationKind::DeviceFault
                    && d.peak.micros() < population.start.micros() + 19 * MICROS_PER_DAY
            })
            .expect("a clinical deterioration in the window");
        let quiet = population
            .patients
            .iter()
            .find(|p| {
                population
                    .deteriorations
                    .iter()
                    .all(|d| d.patient_id != p.id)
            })
            .expect("a quiet patient");
        let raise = |patient_id, rule: &str, ts| Raise {
            patient_id,
            rule_id: rule.to_owned(),
            ts,
        };
        let run = SimulationRun {
            raises: vec![
                raise(
                    deterioration.patient_id,
                    "default/fever",
                    deterioration.peak.plus_micros(-10 * MICROS_PER_HOUR),
                ),
                raise(
                    deterioration.patient_id,
                    "default/news2",
                    deterioration.onset.plus_micros(-30 * MICROS_PER_HOUR),
                ),
                raise(
                    quiet.id,
                    "default/tachycardia",
                    population.start.plus_micros(MICROS_PER_DAY),
                ),
            ],
            readings: 123,
            state_bytes: 0,
        };

        // Act
        let evaluation = score(&population, &run);

        // Assert
        let kind = evaluation
            .kinds
            .iter()
            .find(|k| k.kind == deterioration.kind)
            .unwrap();
        assert!(kind.detected >= 1);
        assert_eq!(kind.first_rules.get("default/fever"), Some(&1));
        if kind.detected == 1 {
            assert_eq!(kind.median_lead_hours, Some(10.0));
        }
        assert_eq!(evaluation.false_alerts.raised_on_quiet_patients, 1);
        assert_eq!(evaluation.false_alerts.raised_outside_deteriorations, 1);
        assert_eq!(evaluation.false_alerts.by_rule.len(), 2);
        assert!(evaluation.false_alerts.per_patient_day_quiet > 0.0);
        assert_eq!(evaluation.readings, 123);
        assert!(!evaluation
            .kinds
            .iter()
            .any(|k| k.kind == DeteriorationKind::DeviceFault));
    }

    /// Feeds a simulated population through the engine and checks that most
    /// injected deteriorations are found without many false alerts. For the
    /// figures of a large population run `thuiswacht evaluate`.
    #[test]
    fn simulated_deteriorations_are_mostly_detected() {
        // Arrange
        let end = Timestamp(1_790_000_000 * 1_000_000);
        let population = Population::generate(5, 60, 20, end);

        // Act
        let evaluation = evaluate(&population, protocols()).unwrap();

        // Assert
        eprintln!("{evaluation}");
        let (detected, injected) = evaluation.detected_of_injected();
        assert!(injected > 0, "the population has clinical deteriorations");
        assert!(
            detected as f64 >= 0.6 * injected as f64,
            "detected {detected} of {injected}"
        );
        assert!(
            evaluation.false_alerts.per_patient_day_quiet < 0.5,
            "{:?}",
            evaluation.false_alerts
        );
    }
}
