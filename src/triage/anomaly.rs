//! Streaming multivariate anomaly detection on a patient's vital-sign vector.
//!
//! In: each new (not late) reading of a vital sign ([`VITAL_METRICS`]). Out:
//! the Mahalanobis distance of the patient's current vector — the newest
//! value of each vital sign measured within [`FRESH_HOURS`] — from the
//! patient's own running mean and covariance, with the metrics that deviate
//! most and since when the distance has been high. The `anomaly` rule kind
//! turns it into findings.
//!
//! # Choices
//!
//! - **Running statistics, not a window.** Mean and covariance are
//!   exponentially weighted (weight `1 / min(n, MEMORY)`, so the first
//!   readings count fully and later ones with a memory of about [`MEMORY`]
//!   vectors). An update costs O(d²) for d ≤ 6 and allocates nothing: the
//!   ndarray buffers are allocated once per patient, when the patient's first
//!   vital sign arrives, and only for patients whose protocols have an
//!   anomaly rule.
//! - **Score before learning.** A vector is scored against the statistics of
//!   the vectors before it, then learned. While the distance is past
//!   [`LEARN_SLOWLY_ABOVE`], it is learned four times slower, so that a
//!   deterioration does not become its own baseline within a day, while a
//!   lasting new normal (a changed medication) is still absorbed in days.
//! - **Population priors** stand in for a metric the patient has fewer than
//!   [`MIN_PERSONAL_VECTORS`] vectors of (its mean and spread from
//!   [`baseline::prior`], no correlation), so a new patient is not scored on
//!   noise.
//! - **Few vectors.** Statistics learned from few vectors underestimate the
//!   spread of the next one, so the squared distance is divided by
//!   Hotelling's predictive factor for the number learned
//!   (`few_vectors_factor`): without it a new patient's first
//!   days (or an ICU stay's first day, on the PhysioNet replay) raise most
//!   of the anomalies, and those say more about the estimate than about the
//!   patient.
//! - **Shrinkage.** Off-diagonal covariances are shrunk by
//!   [`SHRINKAGE`](baseline::SHRINKAGE) toward zero and variances floored at
//!   the device resolution ([`baseline::min_spread`]), which keeps the 6×6
//!   matrix well conditioned for the Cholesky solve.
//! - **Explanation.** Each metric's contribution is its standardised
//!   deviation (z); the three largest are reported with value and expected
//!   mean, plus how long the distance has been past the rule's threshold.

use ndarray::{Array1, Array2};
use serde::Serialize;

use super::baseline::{self, VITAL_DIMENSION, VITAL_METRICS};
use crate::domain::{Metric, Timestamp};

/// Hours a vital sign's newest value stays part of the current vector.
pub const FRESH_HOURS: i64 = 12;

/// Effective memory of the running statistics, in vectors.
pub const MEMORY: f64 = 60.0;

/// Vectors with a metric before its personal mean and spread replace the prior.
pub const MIN_PERSONAL_VECTORS: u32 = 8;

/// At most one vector is learned per this many minutes: a wearable's
/// minute-rate pulse must not shorten the memory to an hour.
pub const LEARN_EVERY_MINUTES: i64 = 30;

/// Distance past which a vector is learned [`SLOW_FACTOR`] times slower.
pub const LEARN_SLOWLY_ABOVE: f64 = 4.0;

/// See [`LEARN_SLOWLY_ABOVE`].
pub const SLOW_FACTOR: f64 = 4.0;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// One metric's part in a distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Contribution {
    pub metric: Metric,
    pub value: f64,
    /// The patient's running mean (or the prior).
    pub expected: f64,
    /// Standardised deviation, signed.
    pub z: f64,
}

/// The distance of the current vector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AnomalyScore {
    pub distance: f64,
    /// Metrics in the vector.
    pub dimensions: usize,
    /// The largest contributions, largest first (unused slots `None`).
    pub top: [Option<Contribution>; 3],
    pub ts: Timestamp,
}

/// Per-patient running statistics; see the module docs.
#[derive(Debug, Clone)]
pub struct AnomalyState {
    latest: [f64; VITAL_DIMENSION],
    latest_ts: [i64; VITAL_DIMENSION],
    /// Vectors learned per metric.
    counts: [u32; VITAL_DIMENSION],
    mean: Array1<f64>,
    covariance: Array2<f64>,
    /// Scratch for the score: the selected covariance, its Cholesky factor,
    /// the deviation and the solution.
    matrix: Array2<f64>,
    deviation: Array1<f64>,
    solution: Array1<f64>,
    /// The last score, `None` until a vector could be scored.
    pub score: Option<AnomalyScore>,
    last_learned: i64,
    last_update: i64,
    spo2_scale_two: bool,
}

/// Returns the position of `metric` in the vital vector.
pub fn dimension_of(metric: Metric) -> Option<usize> {
    VITAL_METRICS
        .iter()
        .position(|candidate| *candidate == metric)
}

impl AnomalyState {
    /// Returns empty statistics.
    pub fn new(spo2_scale_two: bool) -> AnomalyState {
        AnomalyState {
            latest: [f64::NAN; VITAL_DIMENSION],
            latest_ts: [i64::MIN; VITAL_DIMENSION],
            counts: [0; VITAL_DIMENSION],
            mean: Array1::zeros(VITAL_DIMENSION),
            covariance: Array2::zeros((VITAL_DIMENSION, VITAL_DIMENSION)),
            matrix: Array2::zeros((VITAL_DIMENSION, VITAL_DIMENSION)),
            deviation: Array1::zeros(VITAL_DIMENSION),
            solution: Array1::zeros(VITAL_DIMENSION),
            score: None,
            last_learned: i64::MIN,
            last_update: i64::MIN,
            spo2_scale_two,
        }
    }

    /// Returns the approximate heap size in bytes.
    pub fn heap_bytes() -> usize {
        std::mem::size_of::<f64>() * (3 * VITAL_DIMENSION + 2 * VITAL_DIMENSION * VITAL_DIMENSION)
    }

    /// Takes the newest reading of vital sign `dimension`: learns the vector
    /// as it stood before this reading (at most once per
    /// [`LEARN_EVERY_MINUTES`], so a round of spot checks is learned whole,
    /// when the next round starts), then scores the current vector.
    /// Allocates nothing.
    pub fn update(&mut self, dimension: usize, value: f64, ts: Timestamp) {
        let learn_due =
            ts.micros().saturating_sub(self.last_learned) >= LEARN_EVERY_MINUTES * 60_000_000;
        if learn_due && self.last_update != i64::MIN && ts.micros() > self.last_update {
            let (used, n) = self.fresh(self.last_update);
            let slow = self
                .score
                .is_some_and(|score| score.distance > LEARN_SLOWLY_ABOVE);
            self.learn(&used[..n], slow);
            self.last_learned = ts.micros();
        }
        self.latest[dimension] = value;
        self.latest_ts[dimension] = ts.micros();
        self.last_update = self.last_update.max(ts.micros());
        let (used, n) = self.fresh(ts.micros());
        self.score = self.distance(&used[..n], ts);
    }

    /// Returns the dimensions with a value measured within [`FRESH_HOURS`]
    /// before `at`.
    fn fresh(&self, at: i64) -> ([usize; VITAL_DIMENSION], usize) {
        let fresh_from = at - FRESH_HOURS * MICROS_PER_HOUR;
        let mut used = [0usize; VITAL_DIMENSION];
        let mut n = 0;
        for index in 0..VITAL_DIMENSION {
            if self.latest_ts[index] >= fresh_from
                && self.latest_ts[index] <= at
                && self.latest[index].is_finite()
            {
                used[n] = index;
                n += 1;
            }
        }
        (used, n)
    }

    /// The expected mean and variance of one dimension: personal, or the prior.
    fn moments(&self, index: usize) -> (f64, f64, bool) {
        let metric = VITAL_METRICS[index];
        let floor = baseline::min_spread(metric).powi(2);
        if self.counts[index] >= MIN_PERSONAL_VECTORS {
            (
                self.mean[index],
                self.covariance[[index, index]].max(floor),
                true,
            )
        } else {
            let prior = baseline::prior(metric, self.spo2_scale_two);
            // A MAD of a normal distribution is 0.6745 standard deviations.
            let sd = prior.mad / 0.6745;
            (prior.median, (sd * sd).max(floor), false)
        }
    }

    fn distance(&mut self, used: &[usize], ts: Timestamp) -> Option<AnomalyScore> {
        let n = used.len();
        if n == 0
            || used
                .iter()
                .all(|&index| self.counts[index] < MIN_PERSONAL_VECTORS)
        {
            return None;
        }
        let mut top: [Option<Contribution>; 3] = [None; 3];
        for (a, &index_a) in used.iter().enumerate() {
            let (mean_a, variance_a, personal_a) = self.moments(index_a);
            let deviation = self.latest[index_a] - mean_a;
            self.deviation[a] = deviation;
            for (b, &index_b) in used.iter().enumerate() {
                let value = if a == b {
                    variance_a
                } else {
                    let personal_b = self.counts[index_b] >= MIN_PERSONAL_VECTORS;
                    if personal_a && personal_b {
                        self.covariance[[index_a, index_b]] * (1.0 - baseline::SHRINKAGE)
                    } else {
                        0.0
                    }
                };
                self.matrix[[a, b]] = value;
            }
            let contribution = Contribution {
                metric: VITAL_METRICS[index_a],
                value: self.latest[index_a],
                expected: mean_a,
                z: deviation / variance_a.sqrt(),
            };
            insert_top(&mut top, contribution);
        }
        let squared = self.solve(n)? / self.few_vectors_factor(used);
        Some(AnomalyScore {
            distance: squared.max(0.0).sqrt(),
            dimensions: n,
            top,
            ts,
        })
    }

    /// Returns how much wider than the statistics themselves say the spread
    /// of a new vector is, because they were learned from few vectors:
    /// Hotelling's predictive factor `(n + 1)(n − 1) / (n (n − p))` for `p`
    /// personal dimensions learned from `n` vectors (the fewest of those
    /// dimensions, at most [`MEMORY`], the weighting's effective count).
    /// Eight vectors of six signs make a squared distance look four times
    /// larger than it is; sixty, 1.1 times.
    fn few_vectors_factor(&self, used: &[usize]) -> f64 {
        let mut personal = 0.0;
        let mut vectors = MEMORY;
        for &index in used {
            if self.counts[index] >= MIN_PERSONAL_VECTORS {
                personal += 1.0;
                vectors = vectors.min(f64::from(self.counts[index]));
            }
        }
        // At least two vectors more than dimensions keeps the factor finite;
        // MIN_PERSONAL_VECTORS (8) exceeds VITAL_DIMENSION (6) by two.
        let vectors = vectors.max(personal + 2.0);
        (vectors + 1.0) * (vectors - 1.0) / (vectors * (vectors - personal))
    }

    /// Cholesky-factors `matrix[..n, ..n]` in place and returns
    /// `deviationᵀ matrix⁻¹ deviation`; `None` when not positive definite.
    fn solve(&mut self, n: usize) -> Option<f64> {
        let matrix = &mut self.matrix;
        for j in 0..n {
            let mut diagonal = matrix[[j, j]];
            for k in 0..j {
                diagonal -= matrix[[j, k]] * matrix[[j, k]];
            }
            if diagonal <= 0.0 || !diagonal.is_finite() {
                return None;
            }
            let diagonal = diagonal.sqrt();
            matrix[[j, j]] = diagonal;
            for i in j + 1..n {
                let mut value = matrix[[i, j]];
                for k in 0..j {
                    value -= matrix[[i, k]] * matrix[[j, k]];
                }
                matrix[[i, j]] = value / diagonal;
            }
        }
        // Forward substitution L y = deviation; then |y|² = dᵀ Σ⁻¹ d.
        let mut squared = 0.0;
        for i in 0..n {
            let mut value = self.deviation[i];
            for k in 0..i {
                value -= matrix[[i, k]] * self.solution[k];
            }
            let y = value / matrix[[i, i]];
            self.solution[i] = y;
            squared += y * y;
        }
        Some(squared)
    }

    /// Learns the current vector (exponentially weighted mean and covariance
    /// over the dimensions present).
    fn learn(&mut self, used: &[usize], slow: bool) {
        for &index in used {
            self.counts[index] = self.counts[index].saturating_add(1);
        }
        let weight_of = |count: u32| {
            let weight = 1.0 / f64::from(count).min(MEMORY);
            if slow {
                weight / SLOW_FACTOR
            } else {
                weight
            }
        };
        for &a in used {
            let weight = weight_of(self.counts[a]);
            let difference_a = self.latest[a] - self.mean[a];
            for &b in used {
                let difference_b = self.latest[b] - self.mean[b];
                let weight_ab = weight.max(weight_of(self.counts[b]));
                let old = self.covariance[[a, b]];
                self.covariance[[a, b]] =
                    (1.0 - weight_ab) * (old + weight_ab * difference_a * difference_b);
            }
        }
        for &index in used {
            let weight = weight_of(self.counts[index]);
            self.mean[index] += weight * (self.latest[index] - self.mean[index]);
        }
    }
}

fn insert_top(top: &mut [Option<Contribution>; 3], contribution: Contribution) {
    let size = contribution.z.abs();
    for slot in 0..top.len() {
        match top[slot] {
            Some(existing) if existing.z.abs() >= size => {}
            _ => {
                for move_to in (slot + 1..top.len()).rev() {
                    top[move_to] = top[move_to - 1];
                }
                top[slot] = Some(contribution);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = MICROS_PER_HOUR;
    const MINUTE: i64 = 60_000_000;

    fn dim(metric: Metric) -> usize {
        dimension_of(metric).unwrap()
    }

    /// Morning and evening rounds of pulse, SpO2 and systolic pressure with
    /// a little natural variation.
    fn learn_normal_days(state: &mut AnomalyState, days: i64) -> i64 {
        let mut hour = 0;
        for day in 0..days {
            for round in 0..2 {
                hour = day * 24 + round * 10;
                let wiggle = ((day * 7 + round * 3) % 5) as f64 - 2.0;
                // One round: the three measured within a minute; the vector
                // is learned once, complete, at its last reading.
                state.update(
                    dim(Metric::HeartRate),
                    72.0 + wiggle,
                    Timestamp(hour * HOUR - 2 * MINUTE),
                );
                state.update(
                    dim(Metric::Spo2),
                    95.0 + wiggle / 4.0,
                    Timestamp(hour * HOUR - MINUTE),
                );
                state.update(
                    dim(Metric::BpSystolic),
                    150.0 + 2.0 * wiggle,
                    Timestamp(hour * HOUR),
                );
            }
        }
        hour
    }

    #[test]
    fn usual_values_score_low_and_a_joint_deviation_scores_high() {
        // Arrange: a patient who lives at 150 mmHg (a prior of 135 would
        // call that unusual; their own statistics do not).
        let mut state = AnomalyState::new(false);
        let hour = learn_normal_days(&mut state, 14) + 24;

        // Act
        state.update(dim(Metric::HeartRate), 73.0, Timestamp(hour * HOUR));
        let usual = state.score.unwrap();
        state.update(dim(Metric::HeartRate), 96.0, Timestamp((hour + 1) * HOUR));
        state.update(dim(Metric::Spo2), 91.0, Timestamp((hour + 1) * HOUR + 1));
        let unusual = state.score.unwrap();

        // Assert
        assert!(usual.distance < 2.5, "{usual:?}");
        assert!(unusual.distance > 6.0, "{unusual:?}");
        let metrics: Vec<Metric> = unusual.top.iter().flatten().map(|c| c.metric).collect();
        assert_eq!(
            &metrics[..2],
            &[Metric::HeartRate, Metric::Spo2],
            "{unusual:?}"
        );
        let spo2 = unusual
            .top
            .iter()
            .flatten()
            .find(|c| c.metric == Metric::Spo2)
            .unwrap();
        assert!(
            spo2.z < -3.0 && (spo2.expected - 95.0).abs() < 0.5,
            "{spo2:?}"
        );
    }

    #[test]
    fn nothing_is_scored_before_a_metric_has_personal_statistics() {
        // A vector is learned when the next one arrives, so the scored
        // vector number MIN_PERSONAL_VECTORS + 1 is the first with enough.
        let mut state = AnomalyState::new(false);
        let first = i64::from(MIN_PERSONAL_VECTORS) + 1;
        for index in 0..first - 1 {
            state.update(dim(Metric::HeartRate), 70.0, Timestamp(index * HOUR));
            assert!(state.score.is_none(), "scored at vector {index}");
        }
        state.update(dim(Metric::HeartRate), 70.0, Timestamp(first * HOUR));
        assert!(state.score.is_some());
    }

    #[test]
    fn stale_values_leave_the_vector() {
        let mut state = AnomalyState::new(false);
        let hour = learn_normal_days(&mut state, 10);
        // Two days later only the pulse is fresh.
        state.update(dim(Metric::HeartRate), 72.0, Timestamp((hour + 48) * HOUR));
        assert_eq!(state.score.unwrap().dimensions, 1);
    }

    #[test]
    fn a_lasting_new_normal_is_learned_slowly_but_learned() {
        // Arrange
        let mut state = AnomalyState::new(false);
        let mut hour = learn_normal_days(&mut state, 14);

        // Act: a new medication lowers the pulse to 60 for good.
        let mut distances = Vec::new();
        for _ in 0..120 {
            hour += 12;
            state.update(dim(Metric::HeartRate), 60.0, Timestamp(hour * HOUR));
            distances.push(state.score.unwrap().distance);
        }

        // Assert: alarming at first, ordinary after a while.
        assert!(distances[0] > LEARN_SLOWLY_ABOVE, "{distances:?}");
        assert!(*distances.last().unwrap() < 2.0, "{distances:?}");
    }
}
