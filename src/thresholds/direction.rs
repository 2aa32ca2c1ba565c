//! Whether a change of a patient's rule makes alerts more likely (stricter)
//! or less likely (looser): the four-eyes rule asks a second coordinator to
//! approve only what makes alerts less likely.
//!
//! A change is compared field by field, from the rule in force to the rule
//! proposed (the protocol's rule with the proposed settings applied), each
//! `None` when the rule is switched off for the patient:
//!
//! | field | looser when | stricter when |
//! |---|---|---|
//! | switched on | switched off | switched on again |
//! | `above` | raised or removed | lowered or added |
//! | `below` | lowered or removed | raised or added |
//! | `recover_at` | alerts end sooner | alerts last longer |
//! | `for_minutes` | longer | shorter |
//! | `repeat_count` | higher | lower |
//! | `repeat_of` | lower | higher |
//! | `delta` | larger change needed | smaller change needed |
//! | `window_hours` | shorter | longer |
//! | `due_by` | later (or removed) | earlier |
//! | `priority` | lowered | raised |
//!
//! A change that moves some fields each way is mixed, and counts as looser.
//! `recover_at` is compared as the level at which an alert ends, so also
//! when it is not set (the engine's default then: the threshold itself, or
//! half of `delta` for a trend or baseline deviation).

use serde::Serialize;

use crate::protocols::{parse_hhmm, Rule, RuleKind};

/// Which way a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Nothing that decides when an alert fires changes.
    Unchanged,
    /// Alerts become more likely, earlier or more urgent.
    Tightening,
    /// Alerts become less likely, later, shorter or less urgent.
    Loosening,
    /// Some of both; treated as loosening.
    Mixed,
}

impl Direction {
    /// Returns whether a second coordinator must approve the change before
    /// it applies: loosening and mixed changes.
    pub const fn needs_second_coordinator(self) -> bool {
        matches!(self, Direction::Loosening | Direction::Mixed)
    }
}

/// How one field moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The setting's name (`enabled` for switching the rule off or on).
    pub field: &'static str,
    /// [`Direction::Tightening`], [`Direction::Loosening`] or, for a
    /// `delta` that changes sign, [`Direction::Mixed`].
    pub direction: Direction,
}

/// Every field a change moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub changes: Vec<FieldChange>,
}

impl Classification {
    /// Returns the direction of the whole change.
    pub fn direction(&self) -> Direction {
        let loosens = self
            .changes
            .iter()
            .any(|change| matches!(change.direction, Direction::Loosening | Direction::Mixed));
        let tightens = self
            .changes
            .iter()
            .any(|change| matches!(change.direction, Direction::Tightening | Direction::Mixed));
        match (loosens, tightens) {
            (false, false) => Direction::Unchanged,
            (false, true) => Direction::Tightening,
            (true, false) => Direction::Loosening,
            (true, true) => Direction::Mixed,
        }
    }

    /// Returns the fields that make alerts less likely.
    pub fn loosening_fields(&self) -> Vec<&'static str> {
        self.changes
            .iter()
            .filter(|change| matches!(change.direction, Direction::Loosening | Direction::Mixed))
            .map(|change| change.field)
            .collect()
    }

    fn push(&mut self, field: &'static str, direction: Option<Direction>) {
        if let Some(direction) = direction {
            self.changes.push(FieldChange { field, direction });
        }
    }
}

/// Classifies the change from the rule in force (`current`) to the rule
/// proposed; `None` is a rule switched off. See the module docs.
pub fn classify(current: Option<&Rule>, proposed: Option<&Rule>) -> Classification {
    let mut found = Classification::default();
    match (current, proposed) {
        (None, None) => {}
        (Some(_), None) => found.push("enabled", Some(Direction::Loosening)),
        (None, Some(_)) => found.push("enabled", Some(Direction::Tightening)),
        (Some(current), Some(proposed)) => compare(current, proposed, &mut found),
    }
    found
}

fn compare(current: &Rule, proposed: &Rule, found: &mut Classification) {
    // A bound fires when the value is past it: raising `above` or lowering
    // `below` asks more of the value.
    found.push(
        "above",
        optional(current.above, proposed.above, |from, to| {
            ordered(from, to, Direction::Loosening)
        }),
    );
    found.push(
        "below",
        optional(current.below, proposed.below, |from, to| {
            ordered(from, to, Direction::Tightening)
        }),
    );
    found.push("recover_at", recovery_change(current, proposed));
    found.push(
        "for_minutes",
        ordered(
            current.for_minutes,
            proposed.for_minutes,
            Direction::Loosening,
        ),
    );
    found.push(
        "repeat_count",
        ordered(
            current.repeat_count,
            proposed.repeat_count,
            Direction::Loosening,
        ),
    );
    found.push(
        "repeat_of",
        ordered(current.repeat_of, proposed.repeat_of, Direction::Tightening),
    );
    found.push(
        "delta",
        optional(current.delta, proposed.delta, |from, to| {
            if from * to < 0.0 {
                // The other way round: other changes fire, these no longer.
                Some(Direction::Mixed)
            } else {
                ordered(from.abs(), to.abs(), Direction::Loosening)
            }
        }),
    );
    found.push(
        "window_hours",
        optional(current.window_hours, proposed.window_hours, |from, to| {
            ordered(from, to, Direction::Tightening)
        }),
    );
    found.push(
        "due_by",
        optional(
            current.due_by.as_deref().and_then(parse_hhmm),
            proposed.due_by.as_deref().and_then(parse_hhmm),
            |from, to| ordered(from, to, Direction::Loosening),
        ),
    );
    found.push(
        "priority",
        ordered(current.priority, proposed.priority, Direction::Tightening),
    );
}

/// Compares two values; `when_higher` is the direction of a higher value.
fn ordered<T: PartialOrd>(from: T, to: T, when_higher: Direction) -> Option<Direction> {
    let when_lower = match when_higher {
        Direction::Loosening => Direction::Tightening,
        _ => Direction::Loosening,
    };
    if to > from {
        Some(when_higher)
    } else if to < from {
        Some(when_lower)
    } else {
        None
    }
}

/// Compares a setting that may be absent: removing one makes alerts less
/// likely, adding one more likely; both present are compared by `both`.
fn optional<T: Copy>(
    from: Option<T>,
    to: Option<T>,
    both: impl FnOnce(T, T) -> Option<Direction>,
) -> Option<Direction> {
    match (from, to) {
        (None, None) => None,
        (Some(_), None) => Some(Direction::Loosening),
        (None, Some(_)) => Some(Direction::Tightening),
        (Some(from), Some(to)) => both(from, to),
    }
}

/// The side an alert is raised on, for its recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Raised above a level: ends once the value falls below the recovery level.
    Above,
    /// Raised below a level: ends once the value rises above it.
    Below,
    /// A change or deviation: ends once it is back within the level (by size).
    Change,
}

/// Returns where an alert of the rule ends, as the engine decides it
/// (`crate::triage::rules`), or `None` when `recover_at` plays no part.
fn recovery(rule: &Rule) -> Option<(Side, f64)> {
    match rule.kind {
        RuleKind::Threshold | RuleKind::Technical => match (rule.above, rule.below) {
            (Some(above), None) => Some((Side::Above, rule.recover_at.unwrap_or(above))),
            (None, Some(below)) => Some((Side::Below, rule.recover_at.unwrap_or(below))),
            // With both bounds the engine ignores recover_at.
            _ => None,
        },
        RuleKind::News2 | RuleKind::Anomaly => rule
            .above
            .map(|above| (Side::Above, rule.recover_at.unwrap_or(above))),
        RuleKind::Trend | RuleKind::BaselineDeviation => rule
            .delta
            .map(|delta| (Side::Change, rule.recover_at.unwrap_or(delta / 2.0).abs())),
        RuleKind::MissedMeasurement => None,
    }
}

/// An alert that ends sooner is looser: a higher level above, a lower one
/// below, a larger one for a change.
fn recovery_change(current: &Rule, proposed: &Rule) -> Option<Direction> {
    let (from_side, from) = recovery(current)?;
    let (to_side, to) = recovery(proposed)?;
    if from_side != to_side {
        // The bound changed side; the bounds themselves say which way.
        return None;
    }
    if from_side == Side::Change
        && current
            .delta
            .zip(proposed.delta)
            .is_some_and(|(a, b)| a * b < 0.0)
    {
        return None; // the delta's change of sign already counts both ways
    }
    match from_side {
        Side::Above | Side::Change => ordered(from, to, Direction::Loosening),
        Side::Below => ordered(from, to, Direction::Tightening),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::RuleSettings;

    fn rule(toml_text: &str) -> Rule {
        toml::from_str(&format!("id = \"r\"\n{toml_text}")).unwrap()
    }

    fn fever() -> Rule {
        rule("kind = \"threshold\"\nmetric = \"body_temperature\"\nabove = 38.0\nrecover_at = 37.8\npriority = \"medium\"")
    }

    fn hypotension() -> Rule {
        rule("kind = \"threshold\"\nmetric = \"bp_systolic\"\nbelow = 91\nrecover_at = 100\nrepeat_count = 2\nrepeat_of = 3\npriority = \"high\"")
    }

    fn trend() -> Rule {
        rule("kind = \"trend\"\nmetric = \"body_weight\"\ndelta = 2.0\nwindow_hours = 72\npriority = \"medium\"")
    }

    fn missed() -> Rule {
        rule("kind = \"missed_measurement\"\nmetric = \"body_weight\"\ndue_by = \"10:00\"\npriority = \"low\"")
    }

    /// Classifies `settings` (JSON) applied to `base`, against `base`.
    fn change(base: &Rule, settings: &str) -> Classification {
        let settings: RuleSettings = serde_json::from_str(settings).unwrap();
        let proposed = settings.enabled.then(|| base.with_settings(&settings));
        classify(Some(base), proposed.as_ref())
    }

    fn fields(classification: &Classification) -> Vec<(&'static str, Direction)> {
        classification
            .changes
            .iter()
            .map(|change| (change.field, change.direction))
            .collect()
    }

    use Direction::{Loosening as L, Mixed as M, Tightening as T, Unchanged as U};

    #[test]
    fn nothing_changed_is_unchanged() {
        assert_eq!(change(&fever(), "{}").direction(), U);
        assert_eq!(change(&fever(), r#"{"above": 38.0}"#).direction(), U);
        assert_eq!(classify(None, None).direction(), U);
        assert!(!U.needs_second_coordinator());
    }

    #[test]
    fn above_raised_or_removed_loosens_and_lowered_or_added_tightens() {
        assert_eq!(
            fields(&change(&fever(), r#"{"above": 38.5, "recover_at": 37.8}"#)),
            [("above", L)]
        );
        assert_eq!(
            fields(&change(&fever(), r#"{"above": 37.9, "recover_at": 37.8}"#)),
            [("above", T)]
        );
        let removed = change(&hypotension(), r#"{"below": 91, "above": null}"#);
        assert_eq!(removed.direction(), U, "no above to remove");
        let both = rule("kind = \"threshold\"\nmetric = \"heart_rate\"\nabove = 110\nbelow = 40\npriority = \"medium\"");
        assert_eq!(fields(&change(&both, r#"{"above": null}"#)), [("above", L)]);
        assert_eq!(
            fields(&change(
                &hypotension(),
                r#"{"above": 180, "recover_at": null}"#
            ))[0],
            ("above", T)
        );
    }

    #[test]
    fn below_lowered_or_removed_loosens_and_raised_tightens() {
        assert_eq!(
            fields(&change(&hypotension(), r#"{"below": 85}"#)),
            [("below", L)]
        );
        assert_eq!(
            fields(&change(&hypotension(), r#"{"below": 95}"#)),
            [("below", T)]
        );
        let both = rule("kind = \"threshold\"\nmetric = \"heart_rate\"\nabove = 110\nbelow = 40\npriority = \"medium\"");
        assert_eq!(fields(&change(&both, r#"{"below": null}"#)), [("below", L)]);
        assert_eq!(fields(&change(&both, r#"{"below": 45}"#)), [("below", T)]);
    }

    #[test]
    fn recover_at_that_ends_alerts_sooner_loosens() {
        // Above: an alert ends once the value falls below recover_at.
        assert_eq!(
            fields(&change(&fever(), r#"{"recover_at": 37.95}"#)),
            [("recover_at", L)]
        );
        assert_eq!(
            fields(&change(&fever(), r#"{"recover_at": 37.5}"#)),
            [("recover_at", T)]
        );
        // Removing it recovers at the threshold itself: sooner.
        assert_eq!(
            fields(&change(&fever(), r#"{"recover_at": null}"#)),
            [("recover_at", L)]
        );
        // Below: an alert ends once the value rises above recover_at.
        assert_eq!(
            fields(&change(&hypotension(), r#"{"recover_at": 95}"#)),
            [("recover_at", L)]
        );
        assert_eq!(
            fields(&change(&hypotension(), r#"{"recover_at": 105}"#)),
            [("recover_at", T)]
        );
        // A change: ends once back within recover_at (default half of delta).
        assert_eq!(
            fields(&change(&trend(), r#"{"recover_at": 1.5}"#)),
            [("recover_at", L)]
        );
        assert_eq!(
            fields(&change(&trend(), r#"{"recover_at": 0.5}"#)),
            [("recover_at", T)]
        );
    }

    #[test]
    fn a_raised_threshold_that_also_recovers_later_is_mixed() {
        let mixed = change(&fever(), r#"{"above": 38.5, "recover_at": 37.5}"#);
        assert_eq!(fields(&mixed), [("above", L), ("recover_at", T)]);
        assert_eq!(mixed.direction(), M);
        assert!(M.needs_second_coordinator());
        assert_eq!(mixed.loosening_fields(), ["above"]);
    }

    #[test]
    fn for_minutes_longer_loosens() {
        assert_eq!(
            fields(&change(&fever(), r#"{"for_minutes": 30}"#)),
            [("for_minutes", L)]
        );
        let sustained = rule("kind = \"threshold\"\nmetric = \"heart_rate\"\nabove = 110\nrecover_at = 100\nfor_minutes = 15\npriority = \"medium\"");
        assert_eq!(
            fields(&change(&sustained, r#"{"for_minutes": 5}"#)),
            [("for_minutes", T)]
        );
    }

    #[test]
    fn repeat_count_higher_or_repeat_of_lower_loosens() {
        assert_eq!(
            fields(&change(&hypotension(), r#"{"repeat_count": 3}"#)),
            [("repeat_count", L)]
        );
        assert_eq!(
            fields(&change(&hypotension(), r#"{"repeat_count": 1}"#)),
            [("repeat_count", T)]
        );
        assert_eq!(
            fields(&change(&hypotension(), r#"{"repeat_of": 2}"#)),
            [("repeat_of", L)]
        );
        assert_eq!(
            fields(&change(&hypotension(), r#"{"repeat_of": 5}"#)),
            [("repeat_of", T)]
        );
    }

    #[test]
    fn a_larger_delta_loosens_and_a_reversed_one_is_mixed() {
        // recover_at follows delta (half of it) when not set.
        assert_eq!(
            fields(&change(&trend(), r#"{"delta": 3.0}"#)),
            [("recover_at", L), ("delta", L)]
        );
        assert_eq!(
            fields(&change(&trend(), r#"{"delta": 1.5, "recover_at": 1.0}"#)),
            [("delta", T)]
        );
        let falling = rule("kind = \"baseline_deviation\"\nmetric = \"spo2\"\ndelta = -3\nwindow_hours = 24\npriority = \"medium\"");
        assert_eq!(
            fields(&change(&falling, r#"{"delta": -4, "recover_at": -1.5}"#)),
            [("delta", L)]
        );
        let reversed = change(&falling, r#"{"delta": 3}"#);
        assert_eq!(fields(&reversed), [("delta", M)]);
        assert_eq!(reversed.direction(), M);
    }

    #[test]
    fn a_shorter_window_loosens() {
        assert_eq!(
            fields(&change(&trend(), r#"{"window_hours": 24}"#)),
            [("window_hours", L)]
        );
        assert_eq!(
            fields(&change(&trend(), r#"{"window_hours": 96}"#)),
            [("window_hours", T)]
        );
    }

    #[test]
    fn a_later_due_time_loosens() {
        assert_eq!(
            fields(&change(&missed(), r#"{"due_by": "12:30"}"#)),
            [("due_by", L)]
        );
        assert_eq!(
            fields(&change(&missed(), r#"{"due_by": "09:00"}"#)),
            [("due_by", T)]
        );
    }

    #[test]
    fn a_lower_priority_loosens_and_a_higher_one_tightens() {
        assert_eq!(
            fields(&change(&fever(), r#"{"priority": "low"}"#)),
            [("priority", L)]
        );
        assert_eq!(
            fields(&change(&fever(), r#"{"priority": "high"}"#)),
            [("priority", T)]
        );
    }

    #[test]
    fn switching_a_rule_off_loosens_and_on_again_tightens() {
        let off = change(&fever(), r#"{"enabled": false}"#);
        assert_eq!(fields(&off), [("enabled", L)]);
        assert_eq!(off.direction(), L);
        assert!(L.needs_second_coordinator());
        let on = classify(None, Some(&fever()));
        assert_eq!(fields(&on), [("enabled", T)]);
        assert!(!T.needs_second_coordinator());
    }

    #[test]
    fn a_bound_that_changes_side_is_judged_by_the_bounds() {
        // From "above 38" to "below 35.5": one bound removed, one added.
        let moved = change(
            &fever(),
            r#"{"above": null, "below": 35.5, "recover_at": 36}"#,
        );
        assert_eq!(fields(&moved), [("above", L), ("below", T)]);
        assert_eq!(moved.direction(), M);
    }

    #[test]
    fn news2_and_anomaly_recover_below_their_level() {
        let news2 = rule("kind = \"news2\"\nabove = 4.5\nrecover_at = 3\npriority = \"high\"");
        assert_eq!(
            fields(&change(&news2, r#"{"recover_at": 4}"#)),
            [("recover_at", L)]
        );
        let anomaly = rule("kind = \"anomaly\"\nabove = 4.0\npriority = \"low\"");
        assert_eq!(
            fields(&change(&anomaly, r#"{"above": 3.5}"#)),
            [("above", T), ("recover_at", T)]
        );
    }
}
