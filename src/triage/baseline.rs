//! Personal baselines: robust (median and MAD) per patient and metric, and a
//! multivariate Mahalanobis score of the latest vital vector against the
//! patient's own history.
//!
//! In: a [`MetricHistory`] (and for the multivariate score, vectors built from
//! several). Out: a [`Baseline`] that says whether it is personal or a
//! population prior, or a [`MultivariateScore`]. Pure; nothing allocates (the
//! median is a selection on a stack copy of at most [`HISTORY_CAPACITY`]
//! values).
//!
//! # Choices
//!
//! - Window: the readings of the last [`BASELINE_WINDOW_DAYS`] days before the
//!   evaluated moment, at most [`HISTORY_CAPACITY`] of them. A rule may
//!   exclude a recent stretch (see `rules`), so an ongoing deterioration does
//!   not drag its own baseline along.
//! - Below [`MIN_PERSONAL_READINGS`] readings the baseline is a population
//!   prior ([`prior`]) and says so.
//! - MAD is the raw median absolute deviation (not scaled by 1.4826); a
//!   spread below the metric's [`min_spread`] is raised to it, so a patient
//!   whose device always reads 97 % does not turn 96 % into a huge z-score.

use serde::Serialize;

use super::patient_state::{MetricHistory, PatientState, HISTORY_CAPACITY};
use crate::domain::{Metric, Timestamp};

/// Days of history a personal baseline looks back.
pub const BASELINE_WINDOW_DAYS: i64 = 14;

/// Fewest readings for a personal baseline; below it the prior is used.
pub const MIN_PERSONAL_READINGS: usize = 5;

const MICROS_PER_DAY: i64 = 24 * 3_600_000_000;

/// Where a baseline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// The patient's own readings.
    Personal,
    /// A population prior, because the patient has too few readings.
    Prior,
}

/// A robust baseline of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Baseline {
    pub median: f64,
    /// Median absolute deviation, floored at [`min_spread`].
    pub mad: f64,
    /// Readings the baseline was computed from (0 for a prior).
    pub count: usize,
    pub source: BaselineSource,
}

impl Baseline {
    /// Returns how many spreads (MADs) `value` lies from the median.
    pub fn robust_z(&self, value: f64) -> f64 {
        (value - self.median) / self.mad
    }
}

/// Returns the population prior of a metric: (median, MAD).
///
/// Typical values for people over 75 living at home (RCP NEWS2 normal bands,
/// ESH home blood pressure, NHG); COPD patients with a prescribed 88–92 %
/// target (NEWS2 scale 2) get the middle of their own target band for SpO2.
/// Body weight has no meaningful population value: its prior only keeps the
/// arithmetic defined, and weight rules are trend rules anyway.
pub fn prior(metric: Metric, spo2_scale_two: bool) -> Baseline {
    let (median, mad) = match metric {
        Metric::HeartRate => (75.0, 8.0),
        Metric::Spo2 if spo2_scale_two => (90.0, 1.5),
        Metric::Spo2 => (96.0, 1.5),
        Metric::BpSystolic => (135.0, 12.0),
        Metric::BpDiastolic => (78.0, 8.0),
        Metric::BodyTemperature => (36.8, 0.3),
        Metric::RespiratoryRate => (16.0, 2.0),
        Metric::BodyWeight => (75.0, 10.0),
        Metric::BloodGlucose => (7.5, 1.5),
        Metric::Steps => (2500.0, 1500.0),
        Metric::SkinTemperature => (33.0, 1.0),
        Metric::Consciousness | Metric::SupplementalOxygen => (0.0, 0.5),
    };
    Baseline {
        median,
        mad,
        count: 0,
        source: BaselineSource::Prior,
    }
}

/// Returns the smallest spread a baseline of `metric` may have: about the
/// resolution of a home device.
pub fn min_spread(metric: Metric) -> f64 {
    match metric {
        Metric::HeartRate => 2.0,
        Metric::Spo2 => 0.75,
        Metric::BpSystolic | Metric::BpDiastolic => 3.0,
        Metric::BodyTemperature | Metric::SkinTemperature => 0.1,
        Metric::RespiratoryRate => 1.0,
        Metric::BodyWeight => 0.2,
        Metric::BloodGlucose => 0.3,
        Metric::Steps => 100.0,
        Metric::Consciousness | Metric::SupplementalOxygen => 0.5,
    }
}

/// Returns the median of `values` (the mean of the middle two for an even
/// count), reordering them. A selection, not a sort: about two comparisons
/// per value, which matters for a 14-day baseline evaluated after every
/// reading of an active rule.
///
/// # Panics
/// Debug builds panic on an empty slice.
pub fn median(values: &mut [f64]) -> f64 {
    debug_assert!(!values.is_empty(), "median of at least one value");
    let middle = values.len() / 2;
    let upper_middle = select(values, middle);
    if values.len() % 2 == 1 {
        return upper_middle;
    }
    // `select` leaves the smaller half before the middle.
    let lower_middle = values[..middle]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    (lower_middle + upper_middle) / 2.0
}

/// Returns the `k`-th smallest of `values` (0-based) and leaves every value
/// before position `k` not greater than it and every value after it not
/// smaller: Hoare's selection with a middle pivot, insertion sort for the
/// last few. The values are finite (readings are checked before they are
/// recorded).
fn select(values: &mut [f64], k: usize) -> f64 {
    debug_assert!(k < values.len(), "k within the values");
    const SORT_BELOW: usize = 8;
    let (mut low, mut high) = (0, values.len() - 1);
    while high - low >= SORT_BELOW {
        let pivot = values[low + (high - low) / 2];
        let (mut i, mut j) = (low, high);
        let split = loop {
            while values[i] < pivot {
                i += 1;
            }
            while values[j] > pivot {
                j -= 1;
            }
            if i >= j {
                break j;
            }
            values.swap(i, j);
            i += 1;
            j -= 1;
        };
        // values[low..=split] <= pivot <= values[split + 1..=high]
        if k <= split {
            high = split;
        } else {
            low = split + 1;
        }
    }
    for next in low + 1..=high {
        let mut at = next;
        while at > low && values[at - 1] > values[at] {
            values.swap(at - 1, at);
            at -= 1;
        }
    }
    values[k]
}

/// Returns the median and raw MAD of `values`, reordering them.
pub fn median_and_mad(values: &mut [f64]) -> (f64, f64) {
    let median = median(values);
    for value in values.iter_mut() {
        *value = (*value - median).abs();
    }
    (median, self::median(values))
}

/// Returns the baseline of `metric` from the readings of `history` with event
/// time in `[before - 14 days, before)`, or the prior below
/// [`MIN_PERSONAL_READINGS`].
pub fn personal_baseline(
    history: &MetricHistory,
    metric: Metric,
    before: Timestamp,
    spo2_scale_two: bool,
) -> Baseline {
    let from = Timestamp(before.micros() - BASELINE_WINDOW_DAYS * MICROS_PER_DAY);
    // The history is in event-time order: find the window's ends by
    // bisection rather than testing every reading.
    let first = partition_point(history, |ts| ts < from);
    let end = partition_point(history, |ts| ts < before);
    let mut scratch = [0.0; HISTORY_CAPACITY];
    let mut count = 0;
    for index in first..end {
        let (_, value) = history.get(index);
        if value.is_finite() {
            scratch[count] = value;
            count += 1;
        }
    }
    if count < MIN_PERSONAL_READINGS {
        return prior(metric, spo2_scale_two);
    }
    let (median, mad) = median_and_mad(&mut scratch[..count]);
    Baseline {
        median,
        mad: mad.max(min_spread(metric)),
        count,
        source: BaselineSource::Personal,
    }
}

/// Returns the number of leading readings of `history` whose event time
/// satisfies `before` (which must hold for a prefix).
fn partition_point(history: &MetricHistory, before: impl Fn(Timestamp) -> bool) -> usize {
    let (mut low, mut high) = (0, history.len());
    while low < high {
        let middle = low + (high - low) / 2;
        if before(history.time(middle)) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// The vital signs of the multivariate score, in vector order.
pub const VITAL_METRICS: [Metric; 6] = [
    Metric::HeartRate,
    Metric::Spo2,
    Metric::BpSystolic,
    Metric::BpDiastolic,
    Metric::BodyTemperature,
    Metric::RespiratoryRate,
];

/// Dimension of the vital vector.
pub const VITAL_DIMENSION: usize = VITAL_METRICS.len();

/// Fixed shrinkage of the sample covariance toward its diagonal. With the
/// 10–60 vectors a home patient has, the sample correlations are noisy; 0.3
/// keeps the well-established ones (systolic with diastolic, pulse with
/// temperature) and damps the rest, and keeps the matrix well conditioned.
pub const SHRINKAGE: f64 = 0.3;

/// A Mahalanobis distance and the metric that deviates most.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MultivariateScore {
    /// Mahalanobis distance (not squared) of the latest vector.
    pub distance: f64,
    /// Dimensions used (those present in the latest vector).
    pub dimensions: usize,
    /// The metric with the largest standardized deviation.
    pub most_deviating: Metric,
    /// That deviation, in standard deviations (signed).
    pub most_deviating_z: f64,
}

/// Hours a vital sign is carried forward into a multivariate vector: the
/// NEWS2 freshness window.
const CARRY_FORWARD_MICROS: i64 = super::rules::NEWS2_FRESHNESS_HOURS * 3_600_000_000;

/// Returns the Mahalanobis score of the patient's newest vital vector against
/// the vectors formed at each earlier heart-rate reading (the other vital
/// signs carried forward up to [`NEWS2_FRESHNESS_HOURS`] hours).
///
/// [`NEWS2_FRESHNESS_HOURS`]: super::rules::NEWS2_FRESHNESS_HOURS
pub fn multivariate(patient: &PatientState) -> Option<MultivariateScore> {
    let pulse = patient.history(Metric::HeartRate);
    if pulse.is_empty() {
        return None;
    }
    let histories: [&MetricHistory; VITAL_DIMENSION] =
        std::array::from_fn(|index| patient.history(VITAL_METRICS[index]));
    // The pulse times ascend, so each metric's "newest reading at or before"
    // only moves forward: one pass over every history instead of a search
    // per vector and metric.
    let mut next = [0usize; VITAL_DIMENSION];
    let mut vector_at = |at: Timestamp| -> [f64; VITAL_DIMENSION] {
        std::array::from_fn(|index| {
            let history = histories[index];
            while next[index] < history.len() && history.time(next[index]) <= at {
                next[index] += 1;
            }
            if next[index] == 0 {
                return f64::NAN;
            }
            let (ts, value) = history.get(next[index] - 1);
            if at.micros() - ts.micros() <= CARRY_FORWARD_MICROS {
                value
            } else {
                f64::NAN
            }
        })
    };
    let mut vectors = [[f64::NAN; VITAL_DIMENSION]; HISTORY_CAPACITY];
    for (row, index) in vectors.iter_mut().zip(0..pulse.len()) {
        *row = vector_at(pulse.time(index));
    }
    let earlier = pulse.len() - 1;
    mahalanobis(&vectors[..earlier], &vectors[earlier])
}

/// Returns the Mahalanobis distance of `latest` from the mean of `history`
/// under a covariance shrunk toward its diagonal by [`SHRINKAGE`]. Components
/// that are NaN in `latest` are left out; history vectors missing a used
/// component are skipped. `None` with fewer than
/// [`MIN_PERSONAL_READINGS`] usable history vectors or no usable component.
// Index loops read like the matrix formulas they implement.
#[allow(clippy::needless_range_loop)]
pub fn mahalanobis(
    history: &[[f64; VITAL_DIMENSION]],
    latest: &[f64; VITAL_DIMENSION],
) -> Option<MultivariateScore> {
    let mut used = [0usize; VITAL_DIMENSION];
    let mut dimensions = 0;
    for (index, value) in latest.iter().enumerate() {
        if value.is_finite() {
            used[dimensions] = index;
            dimensions += 1;
        }
    }
    if dimensions == 0 {
        return None;
    }
    let usable =
        |row: &[f64; VITAL_DIMENSION]| used[..dimensions].iter().all(|&i| row[i].is_finite());
    let mut mean = [0.0; VITAL_DIMENSION];
    let mut count = 0usize;
    for row in history.iter().filter(|row| usable(row)) {
        for (slot, &index) in used[..dimensions].iter().enumerate() {
            mean[slot] += row[index];
        }
        count += 1;
    }
    if count < MIN_PERSONAL_READINGS {
        return None;
    }
    for value in &mut mean[..dimensions] {
        *value /= count as f64;
    }
    let mut covariance = [[0.0; VITAL_DIMENSION]; VITAL_DIMENSION];
    for row in history.iter().filter(|row| usable(row)) {
        for a in 0..dimensions {
            let deviation_a = row[used[a]] - mean[a];
            for b in 0..dimensions {
                covariance[a][b] += deviation_a * (row[used[b]] - mean[b]);
            }
        }
    }
    for a in 0..dimensions {
        let floor = min_spread(VITAL_METRICS[used[a]]).powi(2);
        for b in 0..dimensions {
            covariance[a][b] /= (count - 1) as f64;
            if a != b {
                covariance[a][b] *= 1.0 - SHRINKAGE;
            }
        }
        covariance[a][a] = covariance[a][a].max(floor);
    }
    let mut deviation = [0.0; VITAL_DIMENSION];
    let mut most_deviating = (0, 0.0f64);
    for slot in 0..dimensions {
        deviation[slot] = latest[used[slot]] - mean[slot];
        let z = deviation[slot] / covariance[slot][slot].sqrt();
        if z.abs() > most_deviating.1.abs() {
            most_deviating = (slot, z);
        }
    }
    let solved = cholesky_solve(&covariance, &deviation, dimensions)?;
    let squared: f64 = (0..dimensions).map(|i| deviation[i] * solved[i]).sum();
    Some(MultivariateScore {
        distance: squared.max(0.0).sqrt(),
        dimensions,
        most_deviating: VITAL_METRICS[used[most_deviating.0]],
        most_deviating_z: most_deviating.1,
    })
}

/// Solves `matrix · x = rhs` for the leading `n`×`n` block of a symmetric
/// positive-definite matrix by Cholesky decomposition; `None` when it is not
/// positive definite.
#[allow(clippy::needless_range_loop)]
fn cholesky_solve(
    matrix: &[[f64; VITAL_DIMENSION]; VITAL_DIMENSION],
    rhs: &[f64; VITAL_DIMENSION],
    n: usize,
) -> Option<[f64; VITAL_DIMENSION]> {
    let mut lower = [[0.0; VITAL_DIMENSION]; VITAL_DIMENSION];
    for i in 0..n {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| lower[i][k] * lower[j][k]).sum();
            if i == j {
                let pivot = matrix[i][i] - sum;
                if pivot <= 0.0 {
                    return None;
                }
                lower[i][j] = pivot.sqrt();
            } else {
                lower[i][j] = (matrix[i][j] - sum) / lower[j][j];
            }
        }
    }
    let mut forward = [0.0; VITAL_DIMENSION];
    for i in 0..n {
        let sum: f64 = (0..i).map(|k| lower[i][k] * forward[k]).sum();
        forward[i] = (rhs[i] - sum) / lower[i][i];
    }
    let mut solution = [0.0; VITAL_DIMENSION];
    for i in (0..n).rev() {
        let sum: f64 = (i + 1..n).map(|k| lower[k][i] * solution[k]).sum();
        solution[i] = (forward[i] - sum) / lower[i][i];
    }
    Some(solution)
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    fn hours(count: i64) -> Timestamp {
        Timestamp(count * 3_600_000_000)
    }

    #[test]
    fn baseline_is_personal_from_the_minimum_count() {
        // Arrange
        let mut history = MetricHistory::default();
        for (index, value) in [97.0, 98.0, 97.0, 96.0, 97.0].into_iter().enumerate() {
            history.insert(hours(index as i64 * 12), value);
        }

        // Act
        let four = personal_baseline(&history, Metric::Spo2, hours(4 * 12), false);
        let five = personal_baseline(&history, Metric::Spo2, hours(5 * 12), false);

        // Assert
        assert_eq!(four.source, BaselineSource::Prior);
        assert_eq!(four.median, 96.0);
        assert_eq!(five.source, BaselineSource::Personal);
        assert_eq!(five.median, 97.0);
        assert_eq!(five.mad, 0.75, "MAD 0 is floored at the device resolution");
    }

    #[test]
    fn copd_prior_is_the_middle_of_the_target_band() {
        assert_eq!(prior(Metric::Spo2, true).median, 90.0);
    }

    #[test]
    fn median_and_mad_of_an_even_count_average_the_middle() {
        let mut values = [1.0, 2.0, 3.0, 10.0];
        assert_eq!(median_and_mad(&mut values), (2.5, 1.0));
    }

    #[test]
    fn mahalanobis_score_is_larger_for_an_outlying_vector() {
        // Arrange: a steady patient with correlated blood pressures.
        let history: Vec<[f64; VITAL_DIMENSION]> = (0..30)
            .map(|i| {
                let wobble = (i as f64 * 0.7).sin();
                [
                    72.0 + 3.0 * wobble,
                    96.0 + 0.8 * (i as f64).cos(),
                    130.0 + 8.0 * wobble,
                    80.0 + 5.0 * wobble,
                    36.8 + 0.15 * (i as f64 * 1.3).sin(),
                    f64::NAN,
                ]
            })
            .collect();
        let typical = [73.0, 96.0, 132.0, 81.0, 36.8, f64::NAN];
        let outlying = [95.0, 91.0, 105.0, 70.0, 38.4, f64::NAN];

        // Act
        let typical_score = mahalanobis(&history, &typical).unwrap();
        let outlying_score = mahalanobis(&history, &outlying).unwrap();

        // Assert
        assert_eq!(typical_score.dimensions, 5);
        assert!(outlying_score.distance > 3.0 * typical_score.distance.max(1.0));
        assert!(matches!(
            outlying_score.most_deviating,
            Metric::BodyTemperature | Metric::Spo2 | Metric::HeartRate
        ));
    }

    #[test]
    fn mahalanobis_needs_enough_history() {
        let history = [[70.0, 96.0, 130.0, 80.0, 36.8, 16.0]; 3];
        assert!(mahalanobis(&history, &history[0]).is_none());
    }

    fn sorted_median(values: &[f64]) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        }
    }

    proptest::proptest! {
        /// Readings repeat (integer SpO2, pressures): duplicates are the
        /// hard case of a selection.
        #[test]
        fn median_by_selection_equals_the_median_of_the_sorted_values(
            values in proptest::collection::vec((0u8..12).prop_map(|v| f64::from(v) * 0.5 + 90.0), 1..80)
        ) {
            let mut selected = values.clone();
            proptest::prop_assert_eq!(median(&mut selected), sorted_median(&values));
        }

        #[test]
        fn median_and_mad_equal_their_definitions(
            values in proptest::collection::vec(-50.0f64..250.0, 1..70)
        ) {
            let expected_median = sorted_median(&values);
            let deviations: Vec<f64> = values.iter().map(|v| (v - expected_median).abs()).collect();
            let mut reordered = values.clone();
            proptest::prop_assert_eq!(
                median_and_mad(&mut reordered),
                (expected_median, sorted_median(&deviations))
            );
        }
    }

    #[test]
    fn baseline_window_is_the_fourteen_days_before_the_moment() {
        // Arrange: one reading a day for 30 days, value = day number.
        let mut history = MetricHistory::default();
        for day in 0..30 {
            history.insert(hours(day * 24), day as f64);
        }

        // Act: the window [day 6, day 20) holds days 6 to 19.
        let baseline = personal_baseline(&history, Metric::HeartRate, hours(20 * 24), false);

        // Assert
        assert_eq!(baseline.count, 14);
        assert_eq!(baseline.median, 12.5);
    }

    #[test]
    fn multivariate_score_uses_the_vitals_current_at_each_pulse_reading() {
        // Arrange: pulse every 6 h, pressure every 12 h, temperature daily
        // with a gap of more than 12 h that leaves some vectors without it.
        let mut patient = PatientState::new(Vec::new(), false);
        for step in 0..40i64 {
            let wave = (step as f64 * 0.9).sin();
            patient.record(Metric::HeartRate, hours(step * 6), 72.0 + 4.0 * wave);
            if step % 2 == 0 {
                patient.record(Metric::BpSystolic, hours(step * 6 + 1), 130.0 + 9.0 * wave);
            }
            if step % 4 == 0 && !(12..20).contains(&step) {
                patient.record(
                    Metric::BodyTemperature,
                    hours(step * 6 + 2),
                    36.8 + 0.2 * wave,
                );
            }
        }
        patient.record(Metric::HeartRate, hours(40 * 6), 96.0);
        let value_at = |metric: Metric, at: Timestamp| {
            patient
                .history(metric)
                .iter()
                .rev()
                .find(|(ts, _)| *ts <= at)
                .filter(|(ts, _)| at.micros() - ts.micros() <= CARRY_FORWARD_MICROS)
                .map_or(f64::NAN, |(_, value)| value)
        };
        let vectors: Vec<[f64; VITAL_DIMENSION]> = patient
            .history(Metric::HeartRate)
            .iter()
            .map(|(at, _)| std::array::from_fn(|index| value_at(VITAL_METRICS[index], at)))
            .collect();
        let (latest, earlier) = vectors.split_last().unwrap();

        // Act
        let score = multivariate(&patient).unwrap();

        // Assert
        assert_eq!(Some(score), mahalanobis(earlier, latest));
        assert_eq!(score.most_deviating, Metric::HeartRate);
        assert!(earlier.iter().any(|vector| vector[4].is_nan()));
    }
}
