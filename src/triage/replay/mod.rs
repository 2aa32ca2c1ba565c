//! Replays the PhysioNet/CinC 2019 sepsis challenge data through the real
//! triage engine, to see how its ranking relates to an outcome.
//!
//! In: a folder of `.psv` files (pipe-separated, a header row, one row per
//! ICU hour, `NaN` for missing). Out: one JSON line per patient-hour and a
//! [`ReplaySummary`] with AUROCs. This is an offline tool at the edge, so it
//! reads files and returns `anyhow` errors (STYLE §4).
//!
//! # Choices
//!
//! - Each patient is registered with the `default` protocol (embedded from
//!   `alerts/default.toml`); row `h` becomes readings at `h × 3600 s` after a
//!   fixed epoch, so each hour is scored from readings up to that hour only.
//!   Heart rate ← `HR`, SpO2 ← `O2Sat`, temperature ← `Temp`, systolic and
//!   diastolic ← `SBP`, `DBP`, respiratory rate ← `Resp`.
//! - `urgency_score` is what the engine ranks the patient by
//!   ([`TriageEngine::patient_urgency`]): the score of their most urgent
//!   active finding (priority first, then the sustained and current NEWS2,
//!   see [`urgency`](super::urgency)), or without one that evidence alone.
//!   The replay computes nothing of its own.
//! - `news2` is the NEWS2 total from the latest values within the freshness
//!   window; consciousness and air/oxygen are not in the data and count as
//!   missing (nothing assumed), so the total is a partial score.
//! - The label of a row is `SepsisLabel == 1`: the challenge already shifts
//!   that column 6 h before onset, so it means "sepsis within 6 hours".
//!
//! # Alert burden and its reference
//!
//! The engine's burden is its raised findings (every rule, every protocol
//! rule id, a new raise only after the rule recovered) among patients who
//! never have `SepsisLabel` 1, per patient-day (24 rows): what would open
//! an alert in the alert book. A finding held by a covering alert counts
//! when it is raised on its own (see the engine's "Covered findings"). The reference is
//! **NEWS2 alone**: an alert raised when the NEWS2 total reaches 5 (the
//! medium band) or any single parameter scores 3, the RCP 2017 trigger for
//! an urgent review, evaluated after every reading of a NEWS2 parameter like
//! the engine's rules, and raised again only after the condition has
//! cleared. "No more alerts than NEWS2 alone" compares the two.
//!
//! The figures are also given for two halves, patients with an even and an
//! odd number in their file name, to show they are not a property of a few
//! patients.

mod figures;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use uuid::Uuid;

pub use figures::{auroc, Figures, PatientOutcome};

use super::engine::TriageEngine;
use super::rules::is_news2_metric;
use super::urgency::{Finding, Transition};
use crate::domain::{Metric, Timestamp};
use crate::protocols::Protocol;

/// 2019-01-01T00:00:00Z, the fixed epoch hour 0 maps to.
const EPOCH_SECONDS: i64 = 1_546_300_800;

const DEFAULT_PROTOCOL: &str = include_str!("../../../alerts/default.toml");

/// The data columns replayed, with their metrics.
const COLUMNS: [(&str, Metric); 6] = [
    ("HR", Metric::HeartRate),
    ("O2Sat", Metric::Spo2),
    ("Temp", Metric::BodyTemperature),
    ("SBP", Metric::BpSystolic),
    ("DBP", Metric::BpDiastolic),
    ("Resp", Metric::RespiratoryRate),
];

/// The NEWS2 total from which the reference raises (medium band).
const NEWS2_ALONE_TOTAL: u8 = 5;
/// A single parameter score from which the reference raises.
const NEWS2_ALONE_SINGLE: u8 = 3;

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplaySummary {
    /// Figures over every replayed patient.
    #[serde(flatten)]
    pub all: Figures,
    pub readings: usize,
    /// The engine's raised findings among patients without sepsis, per rule.
    pub raised_by_rule_without_sepsis: BTreeMap<String, usize>,
    /// The same figures for patients with an even number in their file name.
    pub even_patients: Figures,
    /// And for those with an odd number.
    pub odd_patients: Figures,
}

#[derive(Serialize)]
struct HourLine<'a> {
    patient: &'a str,
    hour: usize,
    urgency_score: f64,
    news2: u8,
    alerts: Vec<String>,
}

/// Replays every `.psv` file of `dir` (in name order), writing one JSON line
/// per patient-hour to `out`.
///
/// # Errors
/// Fails when the folder or a file cannot be read, a file lacks a needed
/// column, or `out` cannot be written.
pub fn replay_physionet2019(dir: &Path, out: impl Write) -> anyhow::Result<ReplaySummary> {
    let files = psv_files(dir)?;
    replay_files(&files, out)
}

/// Returns the `.psv` files of `dir` in name order.
///
/// # Errors
/// Fails when the folder cannot be read.
pub fn psv_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "psv"))
        .collect();
    files.sort();
    Ok(files)
}

/// Replays the given `.psv` files; see [`replay_physionet2019`].
///
/// # Errors
/// As [`replay_physionet2019`].
pub fn replay_files(files: &[PathBuf], mut out: impl Write) -> anyhow::Result<ReplaySummary> {
    let protocol = Protocol::parse(DEFAULT_PROTOCOL)
        .map_err(|problems| anyhow::anyhow!("invalid default protocol: {problems:?}"))?;
    let protocols = BTreeMap::from([("default".to_owned(), protocol)]);
    let mut readings = 0;
    let mut outcomes: Vec<(bool, PatientOutcome)> = Vec::with_capacity(files.len());
    for (index, path) in files.iter().enumerate() {
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        let even = patient_number(name).unwrap_or(index as u64) % 2 == 0;
        let engine = TriageEngine::new(protocols.clone());
        let patient_id = Uuid::from_u128(index as u128 + 1);
        let (outcome, patient_readings) = replay_file(path, name, engine, patient_id, &mut out)?;
        readings += patient_readings;
        outcomes.push((even, outcome));
    }
    let mut raised_by_rule_without_sepsis = BTreeMap::new();
    for (_, outcome) in outcomes.iter().filter(|(_, outcome)| !outcome.septic()) {
        for (rule, raised) in &outcome.raised_by_rule {
            *raised_by_rule_without_sepsis
                .entry(rule.clone())
                .or_insert(0) += raised;
        }
    }
    Ok(ReplaySummary {
        all: Figures::of(outcomes.iter().map(|(_, outcome)| outcome)),
        readings,
        raised_by_rule_without_sepsis,
        even_patients: Figures::of(
            outcomes
                .iter()
                .filter(|(even, _)| *even)
                .map(|(_, outcome)| outcome),
        ),
        odd_patients: Figures::of(
            outcomes
                .iter()
                .filter(|(even, _)| !*even)
                .map(|(_, outcome)| outcome),
        ),
    })
}

/// Returns the number in a file name such as `p100001`.
fn patient_number(name: &str) -> Option<u64> {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// Replays one patient's file through `engine`, writing its hour lines;
/// returns the patient's outcome and how many readings it held.
fn replay_file(
    path: &Path,
    name: &str,
    mut engine: TriageEngine,
    patient_id: Uuid,
    out: &mut impl Write,
) -> anyhow::Result<(PatientOutcome, usize)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{} has no header", path.display()))?
        .split('|')
        .collect();
    let column = |wanted: &str| {
        header
            .iter()
            .position(|name| *name == wanted)
            .with_context(|| format!("{} has no {wanted} column", path.display()))
    };
    let mut data_columns = [(0usize, Metric::HeartRate); COLUMNS.len()];
    for (slot, (name, metric)) in data_columns.iter_mut().zip(COLUMNS) {
        *slot = (column(name)?, metric);
    }
    let label_column = column("SepsisLabel")?;

    engine.register_patient(patient_id, &["default".to_owned()])?;
    let mut outcome = PatientOutcome::default();
    let mut readings = 0;
    let mut findings: Vec<Finding> = Vec::new();
    let mut news2_alone_active = false;
    for (hour, line) in lines.filter(|line| !line.trim().is_empty()).enumerate() {
        let fields: Vec<&str> = line.split('|').collect();
        let ts = Timestamp((EPOCH_SECONDS + hour as i64 * 3600) * 1_000_000);
        for (column, metric) in data_columns {
            let value = fields
                .get(column)
                .and_then(|field| field.trim().parse::<f64>().ok())
                .filter(|value| value.is_finite());
            let Some(value) = value else {
                continue;
            };
            readings += 1;
            findings.clear();
            engine.evaluate_measurement(patient_id, metric, value, ts, &mut findings);
            for finding in &findings {
                if finding.transition == Transition::Raised {
                    *outcome
                        .raised_by_rule
                        .entry(finding.rule_id.clone())
                        .or_insert(0) += 1;
                }
            }
            if is_news2_metric(metric) {
                let score = engine
                    .current_news2(&patient_id)
                    .filter(|current| current.as_of.is_some())
                    .map(|current| current.score);
                let condition = score.is_some_and(|score| {
                    score.total >= NEWS2_ALONE_TOTAL
                        || score.highest_subscore() >= NEWS2_ALONE_SINGLE
                });
                if condition && !news2_alone_active {
                    outcome.news2_alone_raised += 1;
                }
                news2_alone_active = condition;
            }
        }
        let label = fields
            .get(label_column)
            .and_then(|field| field.trim().parse::<f64>().ok())
            == Some(1.0);
        let news2 = engine
            .current_news2(&patient_id)
            .filter(|current| current.as_of.is_some())
            .map_or(0, |current| current.score.total);
        let urgency_score = engine.patient_urgency(&patient_id).unwrap_or(0.0);
        let hour_line = HourLine {
            patient: name,
            hour,
            urgency_score,
            news2,
            alerts: engine
                .active_rules(&patient_id, false)
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        };
        serde_json::to_writer(&mut *out, &hour_line).context("failed to write a json line")?;
        out.write_all(b"\n")
            .context("failed to write a json line")?;
        outcome.hours.push((urgency_score, f64::from(news2), label));
    }
    Ok((outcome, readings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "HR|O2Sat|Temp|SBP|MAP|DBP|Resp|EtCO2|Age|ICULOS|SepsisLabel";

    #[test]
    fn replay_writes_one_line_per_hour_from_past_readings_only() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let quiet = format!(
            "{HEADER}\nNaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|80|1|0\n72|97|36.8|125|90|75|16|NaN|80|2|0\n74|96|NaN|NaN|NaN|NaN|15|NaN|80|3|0\n"
        );
        let septic = format!(
            "{HEADER}\n88|95|37.5|110|80|65|20|NaN|70|1|0\n112|91|39.2|88|60|50|26|NaN|70|2|1\n118|90|39.4|85|58|48|28|NaN|70|3|1\n"
        );
        std::fs::write(dir.path().join("p000001.psv"), quiet).unwrap();
        std::fs::write(dir.path().join("p000002.psv"), septic).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let mut out = Vec::new();

        // Act
        let summary = replay_physionet2019(dir.path(), &mut out).unwrap();

        // Assert
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            (
                summary.all.patients,
                summary.all.rows,
                summary.all.sepsis_patients
            ),
            (2, 6, 1)
        );
        assert_eq!(lines[0]["patient"], "p000001");
        assert_eq!(lines[0]["urgency_score"], 0.0, "no readings yet");
        assert_eq!(lines[0]["news2"], 0);
        assert_eq!(lines[3]["hour"], 0);
        // Hour 0 of the septic patient: 20/min 0, 95 % 1, 110 mmHg 1, 88/min 0, 37.5 °C 0.
        assert_eq!(lines[3]["news2"], 2);
        // NEWS2 is 13 at hour 1; one earlier hour is no stream of readings
        // yet, so the rule raises at once.
        let alerts = lines[4]["alerts"].as_array().unwrap();
        assert!(alerts.iter().any(|id| id == "default/news2"), "{alerts:?}");
        assert!(
            lines[4]["urgency_score"].as_f64().unwrap() >= 4000.0,
            "high priority active"
        );
        assert_eq!(summary.all.auroc_news2, Some(1.0));
        assert_eq!(summary.all.auroc_urgency, Some(1.0));
        assert!(summary.all.alerts_per_patient_day_without_sepsis == 0.0);
        assert_eq!(summary.all.news2_alone_raised_without_sepsis, 0);
    }

    /// Runs on the first 50 files of the sample folder, or on the whole folder
    /// with `THUISWACHT_FULL_PHYSIONET=1` (use `--release --nocapture`).
    #[test]
    fn replay_of_the_physionet_sample_is_structurally_sound() {
        // Arrange
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/physionet2019-sepsis-setB-2000");
        let mut files = psv_files(&dir).expect("the PhysioNet sample folder must exist");
        let full = std::env::var("THUISWACHT_FULL_PHYSIONET").is_ok_and(|value| value == "1");
        if !full {
            files.truncate(50);
        }
        assert!(
            files.len() >= 50,
            "expected at least 50 files in {}",
            dir.display()
        );
        let mut out = Vec::new();

        // Act
        let summary = replay_files(&files, &mut out).unwrap();

        // Assert
        let text = String::from_utf8(out).unwrap();
        let mut expected_rows = 0;
        for file in &files {
            let content = std::fs::read_to_string(file).unwrap();
            expected_rows += content
                .lines()
                .skip(1)
                .filter(|line| !line.trim().is_empty())
                .count();
        }
        assert_eq!(summary.all.rows, expected_rows);
        assert_eq!(text.lines().count(), expected_rows);
        let mut previous: Option<(String, u64)> = None;
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let patient = value["patient"].as_str().unwrap().to_owned();
            let hour = value["hour"].as_u64().unwrap();
            match &previous {
                Some((last_patient, last_hour)) if *last_patient == patient => {
                    assert_eq!(hour, last_hour + 1, "{patient}")
                }
                _ => assert_eq!(hour, 0, "{patient} starts at hour 0"),
            }
            assert!(value["urgency_score"].as_f64().unwrap().is_finite());
            assert!(value["news2"].as_u64().unwrap() <= 20);
            previous = Some((patient, hour));
        }
        eprintln!(
            "physionet replay ({} files): {}",
            files.len(),
            serde_json::to_string(&summary).unwrap()
        );
    }

    /// The engine's alert burden may be at most this multiple of NEWS2
    /// alone's: the goal, no more alerts (0.89 on this subset, 0.86 on the
    /// whole set; 1.34 before covered findings were held and trend rules
    /// asked for a change beyond the person's own variation).
    const BURDEN_CEILING: f64 = 1.0;

    /// Locks the ranking and burden figures loosely on a fixed subset (every
    /// fourth file of the shared sample, 500 patients), so a change that
    /// undoes them fails. Figures on the whole set are in the README.
    #[test]
    fn urgency_ranks_better_than_news2_alone_at_a_bounded_alert_burden() {
        // Arrange
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/physionet2019-sepsis-setB-2000");
        let files: Vec<PathBuf> = psv_files(&dir)
            .expect("the PhysioNet sample folder must exist")
            .into_iter()
            .step_by(4)
            .collect();
        assert_eq!(files.len(), 500);

        // Act
        let summary = replay_files(&files, std::io::sink()).unwrap();

        // Assert
        eprintln!("{}", serde_json::to_string(&summary).unwrap());
        let figures = &summary.all;
        let urgency = figures.auroc_urgency.unwrap();
        let news2 = figures.auroc_news2.unwrap();
        // 0.722 against 0.706 when written.
        assert!(urgency > news2 + 0.01, "urgency {urgency} vs NEWS2 {news2}");
        let engine = figures.alerts_per_patient_day_without_sepsis;
        let reference = figures.news2_alone_alerts_per_patient_day_without_sepsis;
        assert!(
            engine <= BURDEN_CEILING * reference,
            "{engine} alerts per patient-day vs {reference}"
        );
    }
}
