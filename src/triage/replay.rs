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
//! - `urgency_score` = the highest score among the patient's active findings
//!   (0 when none) + NEWS2 total + half the Mahalanobis distance of the
//!   current vital vector (capped at 10). The continuous term is at most 25,
//!   far below the 1000 between priorities, so it only orders hours *within*
//!   a priority band (and hours with no active alert), by the published
//!   early-warning score first and the patient's own multivariate deviation
//!   second.
//! - `news2` is the NEWS2 total from the latest values within the freshness
//!   window; consciousness and air/oxygen are not in the data and count as
//!   missing (nothing assumed), so the total is a partial score.
//! - The label of a row is `SepsisLabel == 1`: the challenge already shifts
//!   that column 6 h before onset, so it means "sepsis within 6 hours".

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use uuid::Uuid;

use super::engine::TriageEngine;
use super::urgency::{Finding, Transition};
use crate::domain::{Metric, Timestamp};
use crate::protocols::Protocol;

/// 2019-01-01T00:00:00Z, the fixed epoch hour 0 maps to.
const EPOCH_SECONDS: i64 = 1_546_300_800;

const DEFAULT_PROTOCOL: &str = include_str!("../../alerts/default.toml");

/// The data columns replayed, with their metrics.
const COLUMNS: [(&str, Metric); 6] = [
    ("HR", Metric::HeartRate),
    ("O2Sat", Metric::Spo2),
    ("Temp", Metric::BodyTemperature),
    ("SBP", Metric::BpSystolic),
    ("DBP", Metric::BpDiastolic),
    ("Resp", Metric::RespiratoryRate),
];

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplaySummary {
    pub patients: usize,
    pub rows: usize,
    pub readings: usize,
    pub sepsis_patients: usize,
    pub positive_rows: usize,
    /// AUROC of `urgency_score` for "sepsis within 6 hours"; `None` without
    /// both classes.
    pub auroc_urgency: Option<f64>,
    /// AUROC of the NEWS2 total alone.
    pub auroc_news2: Option<f64>,
    /// Raised findings among patients who never have `SepsisLabel` 1.
    pub raised_without_sepsis: usize,
    pub patient_days_without_sepsis: f64,
    pub alerts_per_patient_day_without_sepsis: f64,
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
    let default_ids = ["default".to_owned()];
    let mut urgency_scores = Vec::new();
    let mut news2_scores = Vec::new();
    let mut labels = Vec::new();
    let mut summary = ReplaySummary {
        patients: 0,
        rows: 0,
        readings: 0,
        sepsis_patients: 0,
        positive_rows: 0,
        auroc_urgency: None,
        auroc_news2: None,
        raised_without_sepsis: 0,
        patient_days_without_sepsis: 0.0,
        alerts_per_patient_day_without_sepsis: 0.0,
    };
    let mut findings: Vec<Finding> = Vec::new();
    for (index, path) in files.iter().enumerate() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
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

        let mut engine = TriageEngine::new(protocols.clone());
        let patient_id = Uuid::from_u128(index as u128 + 1);
        engine.register_patient(patient_id, &default_ids)?;
        let mut raised = 0;
        let mut rows = 0;
        let mut septic = false;
        for (hour, line) in lines.filter(|line| !line.trim().is_empty()).enumerate() {
            let fields: Vec<&str> = line.split('|').collect();
            let ts = Timestamp((EPOCH_SECONDS + hour as i64 * 3600) * 1_000_000);
            for (column, metric) in data_columns {
                let value = fields
                    .get(column)
                    .and_then(|field| field.trim().parse::<f64>().ok())
                    .filter(|value| value.is_finite());
                if let Some(value) = value {
                    summary.readings += 1;
                    findings.clear();
                    engine.evaluate_measurement(patient_id, metric, value, ts, &mut findings);
                    raised += findings
                        .iter()
                        .filter(|finding| finding.transition == Transition::Raised)
                        .count();
                }
            }
            let label = fields
                .get(label_column)
                .and_then(|field| field.trim().parse::<f64>().ok())
                == Some(1.0);
            let active = engine.active_rules(&patient_id);
            let highest = active.iter().map(|(_, score)| *score).fold(0.0, f64::max);
            let news2 = engine
                .current_news2(&patient_id)
                .filter(|current| current.as_of.is_some())
                .map_or(0, |current| current.score.total);
            let distance = engine
                .multivariate(&patient_id)
                .map_or(0.0, |score| score.distance.min(10.0));
            let urgency_score = highest + f64::from(news2) + distance / 2.0;
            let hour_line = HourLine {
                patient: name,
                hour,
                urgency_score,
                news2,
                alerts: active.into_iter().map(|(id, _)| id).collect(),
            };
            serde_json::to_writer(&mut out, &hour_line).context("failed to write a json line")?;
            out.write_all(b"\n")
                .context("failed to write a json line")?;
            urgency_scores.push(urgency_score);
            news2_scores.push(f64::from(news2));
            labels.push(label);
            septic |= label;
            summary.positive_rows += usize::from(label);
            rows += 1;
        }
        summary.patients += 1;
        summary.rows += rows;
        if septic {
            summary.sepsis_patients += 1;
        } else {
            summary.raised_without_sepsis += raised;
            summary.patient_days_without_sepsis += rows as f64 / 24.0;
        }
    }
    summary.auroc_urgency = auroc(&urgency_scores, &labels);
    summary.auroc_news2 = auroc(&news2_scores, &labels);
    if summary.patient_days_without_sepsis > 0.0 {
        summary.alerts_per_patient_day_without_sepsis =
            summary.raised_without_sepsis as f64 / summary.patient_days_without_sepsis;
    }
    Ok(summary)
}

/// Returns the area under the ROC curve of `scores` for `labels`
/// (Mann–Whitney, tied scores get their average rank); `None` unless both
/// classes occur. `scores` and `labels` have the same length.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    debug_assert_eq!(scores.len(), labels.len(), "one label per score");
    let positives = labels.iter().filter(|label| **label).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their average.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += average_rank * tied_positives as f64;
        start = end;
    }
    let positives = positives as f64;
    Some((positive_rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_is_one_for_perfect_ranking_and_half_for_ties() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            auroc(&[1.0, 1.0, 1.0, 1.0], &[false, true, false, true]),
            Some(0.5)
        );
        // Pairs (pos, neg): (0.8,0.1) win, (0.8,0.8) tie, (0.4,0.1) win, (0.4,0.8) loss → 2.5/4.
        assert_eq!(
            auroc(&[0.1, 0.8, 0.8, 0.4], &[false, false, true, true]),
            Some(0.625)
        );
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }

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
            (summary.patients, summary.rows, summary.sepsis_patients),
            (2, 6, 1)
        );
        assert_eq!(lines[0]["patient"], "p000001");
        assert_eq!(lines[0]["urgency_score"], 0.0, "no readings yet");
        assert_eq!(lines[0]["news2"], 0);
        assert_eq!(lines[3]["hour"], 0);
        // Hour 0 of the septic patient: 20/min 0, 95 % 1, 110 mmHg 1, 88/min 0, 37.5 °C 0.
        assert_eq!(lines[3]["news2"], 2);
        let alerts = lines[4]["alerts"].as_array().unwrap();
        assert!(alerts.iter().any(|id| id == "default/news2"), "{alerts:?}");
        assert!(
            lines[4]["urgency_score"].as_f64().unwrap() >= 4000.0,
            "high priority active"
        );
        assert_eq!(summary.auroc_news2, Some(1.0));
        assert_eq!(summary.auroc_urgency, Some(1.0));
        assert!(summary.alerts_per_patient_day_without_sepsis == 0.0);
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
        assert_eq!(summary.rows, expected_rows);
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
}
