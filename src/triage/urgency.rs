//! Findings and their urgency: the NTS level a finding suggests, the score the
//! worklist ranks by, and the explanation of both (DESIGN §4, "Urgency").
//!
//! In: a rule's transition with its evidence. Out: a [`Finding`] for the alert
//! book. Pure.
//!
//! # Choices
//!
//! - NTS level from priority: high → U2, medium → U3, low → U4,
//!   informational → U5 (U1, immediate danger to life, is never suggested from
//!   home measurements alone). Each NTS alarm signal raises it one level:
//!   "rapid deterioration" and "second contact" (the same rule raised again
//!   within [`SECOND_CONTACT_DAYS`]).
//! - Score: `1000 × (priority rank + 1)` so priority dominates, plus the
//!   patient's continuous [`Evidence`]: `40 × sustained NEWS2` (the mean
//!   hourly total of the last twelve hours, at most 800) and `5 × the
//!   current NEWS2 total` (at most 100), plus how far past the threshold the
//!   value lies in baseline spreads (MADs), capped at 39. Within a priority,
//!   a score that has stayed raised for hours ranks above a single raised
//!   snapshot (see [`sustained`](super::sustained) for why), and the newest
//!   total breaks ties between equally sustained ones.
//! - A patient's urgency ([`patient_urgency`]) is the score of their most
//!   urgent active finding; without one, the evidence alone (below 1000, so
//!   below every patient with an alert).

use serde::Serialize;
use uuid::Uuid;

use super::baseline::Baseline;
use super::news2;
use crate::domain::{Metric, Timestamp};
use crate::protocols::{Priority, RuleKind};

/// Days within which a rule raised again counts as a second contact.
pub const SECOND_CONTACT_DAYS: i64 = 7;

/// A level of the Dutch triage standard (NTS); `Ord` ranks U1 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub enum NtsLevel {
    U1,
    U2,
    U3,
    U4,
    U5,
}

impl NtsLevel {
    /// Returns the level a priority suggests by itself.
    pub const fn for_priority(priority: Priority) -> NtsLevel {
        match priority {
            Priority::High => NtsLevel::U2,
            Priority::Medium => NtsLevel::U3,
            Priority::Low => NtsLevel::U4,
            Priority::Informational => NtsLevel::U5,
        }
    }

    /// Returns the next more urgent level (U1 stays U1).
    pub const fn raised(self) -> NtsLevel {
        match self {
            NtsLevel::U1 | NtsLevel::U2 => NtsLevel::U1,
            NtsLevel::U3 => NtsLevel::U2,
            NtsLevel::U4 => NtsLevel::U3,
            NtsLevel::U5 => NtsLevel::U4,
        }
    }
}

/// What a rule evaluation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The condition became true.
    Raised,
    /// The condition still holds; new evidence.
    Ongoing,
    /// The condition ended (past `recover_at` where the rule has hysteresis).
    Recovered,
}

/// One reason behind a finding's place on the worklist.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "factor", rename_all = "snake_case")]
pub enum Factor {
    /// A value against the rule's threshold.
    Threshold {
        metric: Metric,
        value: f64,
        threshold: f64,
        /// "above" or "below".
        direction: &'static str,
        recover_at: Option<f64>,
        /// Readings of the last `repeat_of` meeting the condition.
        repeat: Option<(u32, u32)>,
        /// Minutes the condition has held.
        held_minutes: Option<f64>,
    },
    /// The patient's own baseline of the metric, or the prior.
    Baseline { metric: Metric, baseline: Baseline },
    /// The NEWS2 score with sub-scores, missing and stale parameters.
    News2 {
        score: news2::Score,
        threshold: f64,
        /// Parameters measured but older than the freshness window (left
        /// out of the score, so also listed in `score.missing`).
        stale: news2::ParameterSet,
        freshness_hours: i64,
    },
    /// A change over a window.
    Trend {
        metric: Metric,
        from_value: f64,
        from_ts: Timestamp,
        to_value: f64,
        change: f64,
        delta: f64,
        window_hours: u32,
    },
    /// A deviation from the personal baseline.
    Deviation {
        metric: Metric,
        value: f64,
        deviation: f64,
        delta: f64,
    },
    /// The vital-sign vector far from the patient's own running mean: which
    /// metrics deviate, by how much, and since when.
    Anomaly {
        distance: f64,
        threshold: f64,
        dimensions: usize,
        /// Largest first.
        contributions: Vec<super::anomaly::Contribution>,
        /// Since when the distance has been past the threshold.
        since: Option<Timestamp>,
        held_minutes: Option<f64>,
    },
    /// Something about the data, e.g. "late_reading".
    DataQuality { flag: &'static str },
    /// An NTS alarm signal that raised the suggested level.
    AlarmSignal { signal: &'static str },
    /// Another rule of the patient whose raise this alert covers (it reads
    /// the same metrics at no higher priority), with that rule's evidence;
    /// see [`HeldFinding`](super::patient_state::HeldFinding).
    AlsoFound {
        rule_id: String,
        priority: Priority,
        factors: Vec<Factor>,
    },
}

/// Why a finding stands where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Explanation {
    pub factors: Vec<Factor>,
}

/// A rule hit for one patient, with its urgency and explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub patient_id: Uuid,
    /// `"{protocol_id}/{rule_id}"`.
    pub rule_id: String,
    pub kind: RuleKind,
    pub transition: Transition,
    /// Event time of the reading that caused it.
    pub ts: Timestamp,
    pub priority: Priority,
    pub nts_level: NtsLevel,
    pub score: f64,
    pub explanation: Explanation,
}

/// The continuous evidence of deterioration that ranks findings and
/// patients within a priority.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// The NEWS2 total from the newest values.
    pub news2_total: u8,
    /// The mean hourly NEWS2 total of the last twelve hours.
    pub sustained_news2: f64,
}

impl Evidence {
    /// Returns the evidence's share of a score: `40 × sustained NEWS2 + 5 ×
    /// NEWS2 total`, at most 900.
    pub fn points(self) -> f64 {
        let sustained = if self.sustained_news2.is_finite() {
            self.sustained_news2.clamp(0.0, 20.0)
        } else {
            0.0
        };
        40.0 * sustained + 5.0 * f64::from(self.news2_total.min(20))
    }
}

/// Returns the ranking score of a finding: priority first, then the
/// patient's evidence, then the excess past the threshold in baseline
/// spreads.
pub fn score(priority: Priority, evidence: Evidence, excess_in_spreads: f64) -> f64 {
    let rank = match priority {
        Priority::Informational => 0.0,
        Priority::Low => 1.0,
        Priority::Medium => 2.0,
        Priority::High => 3.0,
    };
    let excess = if excess_in_spreads.is_finite() {
        excess_in_spreads.clamp(0.0, 39.0)
    } else {
        0.0
    };
    1000.0 * (rank + 1.0) + evidence.points() + excess
}

/// Returns a patient's urgency: the highest score among their active
/// findings, or without one the evidence alone (below 1000).
pub fn patient_urgency(active_scores: impl IntoIterator<Item = f64>, evidence: Evidence) -> f64 {
    active_scores
        .into_iter()
        .fold(None, |highest: Option<f64>, score| {
            Some(highest.map_or(score, |highest| highest.max(score)))
        })
        .unwrap_or_else(|| evidence.points())
}

/// Returns the suggested NTS level after the alarm signals.
pub fn suggested_level(
    priority: Priority,
    rapid_deterioration: bool,
    second_contact: bool,
) -> NtsLevel {
    let mut level = NtsLevel::for_priority(priority);
    if rapid_deterioration {
        level = level.raised();
    }
    if second_contact {
        level = level.raised();
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(news2_total: u8, sustained_news2: f64) -> Evidence {
        Evidence {
            news2_total,
            sustained_news2,
        }
    }

    #[test]
    fn urgency_score_ranks_high_over_medium() {
        // Arrange: a medium finding with the largest possible evidence.
        let medium = score(Priority::Medium, evidence(20, 20.0), 1000.0);

        // Act
        let high = score(Priority::High, Evidence::default(), 0.0);

        // Assert
        assert!(high > medium);
        assert!(
            score(Priority::Medium, evidence(3, 3.0), 0.0)
                > score(Priority::Medium, evidence(2, 2.0), 30.0)
        );
    }

    #[test]
    fn a_sustained_score_ranks_above_a_single_raised_snapshot() {
        // Twelve hours at 5 against one hour of 8 after eleven at 1.
        let sustained = score(Priority::High, evidence(5, 5.0), 0.0);
        let snapshot = score(Priority::High, evidence(8, (11.0 + 8.0) / 12.0), 0.0);
        assert!(sustained > snapshot);
        // The newest total breaks a tie in the sustained score.
        assert!(
            score(Priority::High, evidence(6, 4.0), 0.0)
                > score(Priority::High, evidence(3, 4.0), 0.0)
        );
    }

    #[test]
    fn a_patient_ranks_by_the_most_urgent_finding_or_else_by_evidence() {
        let quiet = patient_urgency([], evidence(4, 3.5));
        assert_eq!(quiet, 40.0 * 3.5 + 5.0 * 4.0);
        assert!(quiet < 1000.0);
        assert_eq!(patient_urgency([2100.0, 4050.0], evidence(4, 3.5)), 4050.0);
    }

    #[test]
    fn second_contact_raises_the_nts_level() {
        assert_eq!(
            suggested_level(Priority::Medium, false, false),
            NtsLevel::U3
        );
        assert_eq!(suggested_level(Priority::Medium, false, true), NtsLevel::U2);
        assert_eq!(suggested_level(Priority::High, true, true), NtsLevel::U1);
        assert_eq!(
            suggested_level(Priority::Informational, false, false),
            NtsLevel::U5
        );
    }
}
