//! The figures of a replay: AUROCs of the urgency score and of NEWS2 alone,
//! and the alert burden of the engine and of NEWS2 alone, for the whole set
//! and for two halves of it.
//!
//! In: one [`PatientOutcome`] per replayed patient. Out: [`Figures`]. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one replayed patient contributes to the figures.
#[derive(Debug, Clone, Default)]
pub struct PatientOutcome {
    /// `(urgency score, NEWS2 total, label)` per hour.
    pub hours: Vec<(f64, f64, bool)>,
    /// Raised findings of the engine, per rule.
    pub raised_by_rule: BTreeMap<String, usize>,
    /// Raises of the NEWS2-alone reference alert.
    pub news2_alone_raised: usize,
}

impl PatientOutcome {
    /// Returns whether any hour is labelled "sepsis within 6 hours".
    pub fn septic(&self) -> bool {
        self.hours.iter().any(|(_, _, label)| *label)
    }
}

/// AUROCs and alert burdens over a set of replayed patients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub patients: usize,
    pub rows: usize,
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
    /// Raises of the NEWS2-alone reference alert among the same patients
    /// (see the [module docs](super)).
    pub news2_alone_raised_without_sepsis: usize,
    pub news2_alone_alerts_per_patient_day_without_sepsis: f64,
}

impl Figures {
    /// Returns the figures of `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a PatientOutcome>) -> Figures {
        let mut urgency = Vec::new();
        let mut news2 = Vec::new();
        let mut labels = Vec::new();
        let mut figures = Figures {
            patients: 0,
            rows: 0,
            sepsis_patients: 0,
            positive_rows: 0,
            auroc_urgency: None,
            auroc_news2: None,
            raised_without_sepsis: 0,
            patient_days_without_sepsis: 0.0,
            alerts_per_patient_day_without_sepsis: 0.0,
            news2_alone_raised_without_sepsis: 0,
            news2_alone_alerts_per_patient_day_without_sepsis: 0.0,
        };
        for outcome in outcomes {
            figures.patients += 1;
            figures.rows += outcome.hours.len();
            for &(score, total, label) in &outcome.hours {
                urgency.push(score);
                news2.push(total);
                labels.push(label);
                figures.positive_rows += usize::from(label);
            }
            if outcome.septic() {
                figures.sepsis_patients += 1;
            } else {
                figures.raised_without_sepsis += outcome.raised_by_rule.values().sum::<usize>();
                figures.news2_alone_raised_without_sepsis += outcome.news2_alone_raised;
                figures.patient_days_without_sepsis += outcome.hours.len() as f64 / 24.0;
            }
        }
        figures.auroc_urgency = auroc(&urgency, &labels);
        figures.auroc_news2 = auroc(&news2, &labels);
        if figures.patient_days_without_sepsis > 0.0 {
            figures.alerts_per_patient_day_without_sepsis =
                figures.raised_without_sepsis as f64 / figures.patient_days_without_sepsis;
            figures.news2_alone_alerts_per_patient_day_without_sepsis =
                figures.news2_alone_raised_without_sepsis as f64
                    / figures.patient_days_without_sepsis;
        }
        figures
    }
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

    #[test]
    fn alert_burden_counts_only_patients_who_never_develop_sepsis() {
        // Arrange: 48 quiet hours with 3 engine and 4 reference raises; 24
        // septic hours whose raises do not count.
        let quiet = PatientOutcome {
            hours: vec![(0.0, 1.0, false); 48],
            raised_by_rule: BTreeMap::from([("default/news2".to_owned(), 3)]),
            news2_alone_raised: 4,
        };
        let mut septic_hours = vec![(0.0, 1.0, false); 18];
        septic_hours.extend([(5.0, 6.0, true); 6]);
        let septic = PatientOutcome {
            hours: septic_hours,
            raised_by_rule: BTreeMap::from([("default/fever".to_owned(), 9)]),
            news2_alone_raised: 9,
        };

        // Act
        let figures = Figures::of([&quiet, &septic]);

        // Assert
        assert_eq!((figures.patients, figures.rows), (2, 72));
        assert_eq!((figures.sepsis_patients, figures.positive_rows), (1, 6));
        assert_eq!(figures.patient_days_without_sepsis, 2.0);
        assert_eq!(figures.alerts_per_patient_day_without_sepsis, 1.5);
        assert_eq!(
            figures.news2_alone_alerts_per_patient_day_without_sepsis,
            2.0
        );
        assert_eq!(figures.auroc_urgency, Some(1.0));
    }
}
