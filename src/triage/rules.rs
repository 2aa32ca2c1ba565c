//! Evaluation of one protocol [`Rule`] for one patient after a new reading.
//!
//! In: the rule, the patient's state after the reading was recorded, and the
//! rule's [`RuleState`]. Out: a [`Hit`] (raised, ongoing or recovered, with
//! its evidence) or nothing; the rule state is updated in place. Pure; when
//! nothing fires nothing is allocated.
//!
//! # Choices
//!
//! - **threshold**: raises when the newest reading is above `above` (or below
//!   `below`), `repeat_count` of the last `repeat_of` readings meet that, and
//!   the condition has held on consecutive readings spanning `for_minutes`.
//!   Once active it recovers only past `recover_at` (hysteresis; without
//!   `recover_at`, at the threshold itself). A late reading (older than the
//!   newest of its metric) does not change the "current" value, so it is not
//!   evaluated against thresholds.
//! - **news2**: scores the newest value of each parameter measured within
//!   [`NEWS2_FRESHNESS_HOURS`] of the newest vital-sign reading (a home
//!   patient measures a few times a day; 12 h keeps one round of morning and
//!   evening measurements together without mixing in yesterday). Raises when
//!   the total exceeds `above`; recovers below `recover_at` (default: at or
//!   below `above`). Consciousness and air/oxygen are not measured at home and
//!   are reported missing, never assumed normal.
//! - **trend**: the newest value minus the *lowest* (for a rise, `delta > 0`)
//!   or *highest* (for a fall) reading of the window `window_hours` (plus
//!   [`TREND_GRACE_HOURS`] for daily-measurement jitter) before it. The
//!   extreme rather than the oldest reading catches a rise that started after
//!   a dip and is not fooled by one high reading at the window's start.
//!   Each reading's level is the median of the readings of the two hours
//!   ending at it (at most [`TREND_SMOOTHING_READINGS`]), so a wearable's
//!   noise, or one restless hour of hourly measurements, is no
//!   trend; a spot measurement is its own level.
//!   Fires when the change exceeds `delta` strictly ("more than 2 kg");
//!   recovers when the change is back within `recover_at` (as a change), by
//!   default half of `delta`, with the same hysteresis as a threshold: on
//!   hourly data a blood pressure that swings around a 30 mmHg fall would
//!   otherwise raise and clear a new alert every other hour. A paired trend
//!   recovers when either change is back within half of its delta. Late
//!   readings count.
//! - **baseline_deviation**: the newest value minus the personal baseline
//!   median, the baseline taken from readings older than `window_hours`
//!   (so a deterioration of the last day does not drag its own baseline; the
//!   baseline window itself is [`BASELINE_WINDOW_DAYS`] days). Fires at or
//!   past `delta` ("three points below"); recovers when the deviation is back
//!   within `recover_at` (as a deviation), by default half of `delta`. It
//!   fires only against a *personal* baseline: "below this person's usual"
//!   means nothing before their usual is known (fewer than
//!   [`MIN_PERSONAL_READINGS`] readings before the excluded stretch), and
//!   the population prior would turn it into a second, arbitrary absolute
//!   threshold beside the protocol's own. An active deviation still recovers.
//! - **missed_measurement**, **technical**: not evaluated per reading. A
//!   missed measurement is the absence of a reading, so a clock-driven sweep
//!   decides it ([`super::schedule`]); technical rules rank device signals
//!   ([`super::technical`]).
//!
//! [`BASELINE_WINDOW_DAYS`]: super::baseline::BASELINE_WINDOW_DAYS
//! [`MIN_PERSONAL_READINGS`]: super::baseline::MIN_PERSONAL_READINGS

use super::baseline::{personal_baseline, Baseline, BaselineSource};
use super::news2::{self, Parameter, ParameterSet, SpO2Scale, VitalSet};
use super::patient_state::{MaybeTime, MetricHistory, PatientState, RuleState};
use super::urgency::{Factor, Transition};
use crate::domain::{Metric, Timestamp};
use crate::protocols::{Rule, RuleKind};

/// Hours within which a vital sign counts as current for NEWS2.
pub const NEWS2_FRESHNESS_HOURS: i64 = 12;

/// Extra hours a trend window reaches back, so that "3 days" still finds the
/// weight measured at 08:20 three days before a weighing at 08:00.
pub const TREND_GRACE_HOURS: i64 = 2;

/// Readings and minutes a trend level is smoothed over: a wrist wearable
/// sends heart rate every minute, and without smoothing its ±6/min noise plus
/// the night-to-morning step fired "heart rate rising 15/min" several times a
/// day in the simulator. Two hours, not one: with hourly measurements (the
/// PhysioNet replay, a nurse's hourly checks) a one-hour window holds two
/// readings and their mean follows every artefact; two hours hold three and
/// their median does not. Spot checks hours apart are their own level.
pub const TREND_SMOOTHING_READINGS: usize = 7;
/// See [`TREND_SMOOTHING_READINGS`].
pub const TREND_SMOOTHING_MINUTES: i64 = 120;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_MINUTE: i64 = 60_000_000;

/// The reading that triggered an evaluation, after it was recorded.
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    pub metric: Metric,
    pub ts: Timestamp,
    /// Older than the newest reading of its metric.
    pub late: bool,
}

/// A rule that fired, recovered or is still active, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub transition: Transition,
    /// How far past the threshold, in baseline spreads (for ranking).
    pub excess_in_spreads: f64,
    pub factors: Vec<Factor>,
}

/// Whether a rule is evaluated by this module, after each reading.
pub fn is_supported(kind: RuleKind) -> bool {
    !matches!(kind, RuleKind::MissedMeasurement | RuleKind::Technical)
}

/// The NEWS2 metrics and their chart parameters. Consciousness and air or
/// oxygen are entered by a nurse (`POST /api/v1/patients/{id}/observations`);
/// no home device measures them.
const NEWS2_METRICS: [(Metric, Parameter); 7] = [
    (Metric::RespiratoryRate, Parameter::RespirationRate),
    (Metric::Spo2, Parameter::Spo2),
    (Metric::SupplementalOxygen, Parameter::AirOrOxygen),
    (Metric::BpSystolic, Parameter::Systolic),
    (Metric::HeartRate, Parameter::Pulse),
    (Metric::Consciousness, Parameter::Consciousness),
    (Metric::BodyTemperature, Parameter::Temperature),
];

/// Returns whether a reading of `metric` can change a NEWS2 score.
pub fn is_news2_metric(metric: Metric) -> bool {
    NEWS2_METRICS
        .iter()
        .any(|(candidate, _)| *candidate == metric)
}

/// The NEWS2 score from the newest values, and which measured parameters were
/// too old to count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurrentNews2 {
    pub score: news2::Score,
    pub stale: ParameterSet,
    /// Event time of the newest vital-sign reading, `None` when there is none.
    pub as_of: Option<Timestamp>,
}

/// Returns the NEWS2 score from the newest value of each parameter measured
/// within [`NEWS2_FRESHNESS_HOURS`] of the newest vital-sign reading. The
/// patient state keeps it up to date as readings are recorded, so this
/// costs nothing; [`news2_from_histories`] computes it.
pub fn current_news2(patient: &PatientState) -> CurrentNews2 {
    patient.news2()
}

/// Scores NEWS2 from the newest value of each parameter measured within
/// [`NEWS2_FRESHNESS_HOURS`] of the newest vital-sign reading.
pub fn news2_from_histories(patient: &PatientState) -> CurrentNews2 {
    news2_cache_from_histories(patient).current
}

fn news2_cache_from_histories(patient: &PatientState) -> News2Cache {
    let newest: [Option<(Timestamp, f64)>; NEWS2_METRICS.len()] =
        std::array::from_fn(|index| patient.history(NEWS2_METRICS[index].0).newest());
    let as_of = newest.iter().flatten().map(|(ts, _)| *ts).max();
    let mut vitals = VitalSet {
        scale: if patient.spo2_scale_two {
            SpO2Scale::Two
        } else {
            SpO2Scale::One
        },
        ..VitalSet::default()
    };
    let mut stale = ParameterSet::EMPTY;
    let mut fresh_until = i64::MAX;
    if let Some(as_of) = as_of {
        let fresh_from = as_of.micros() - NEWS2_FRESHNESS_HOURS * MICROS_PER_HOUR;
        for ((_, parameter), newest) in NEWS2_METRICS.into_iter().zip(newest) {
            let Some((ts, value)) = newest else {
                continue;
            };
            if ts.micros() < fresh_from {
                stale.insert(parameter);
                continue;
            }
            fresh_until = fresh_until.min(ts.micros() + NEWS2_FRESHNESS_HOURS * MICROS_PER_HOUR);
            let slot = match parameter {
                Parameter::RespirationRate => &mut vitals.respiration_rate,
                Parameter::Spo2 => &mut vitals.spo2,
                Parameter::Systolic => &mut vitals.systolic,
                Parameter::Pulse => &mut vitals.pulse,
                Parameter::AirOrOxygen => {
                    vitals.on_oxygen = Some(value >= 0.5);
                    continue;
                }
                Parameter::Consciousness => {
                    vitals.consciousness = news2::Consciousness::from_level(value);
                    continue;
                }
                Parameter::Temperature => &mut vitals.temperature,
            };
            *slot = Some(value);
        }
    }
    News2Cache {
        current: CurrentNews2 {
            score: news2::score(&vitals),
            stale,
            as_of,
        },
        fresh_until,
    }
}

/// [`CurrentNews2`] with what keeping it up to date needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct News2Cache {
    pub current: CurrentNews2,
    /// Until when every parameter in the score stays fresh: the oldest
    /// scored reading plus [`NEWS2_FRESHNESS_HOURS`] (microseconds).
    fresh_until: i64,
}

impl News2Cache {
    /// Returns the cache of a patient with no vital signs yet.
    pub fn empty() -> News2Cache {
        News2Cache {
            current: CurrentNews2 {
                score: news2::score(&VitalSet::default()),
                stale: ParameterSet::EMPTY,
                as_of: None,
            },
            fresh_until: i64::MAX,
        }
    }

    /// Returns the cache after the newest reading of `metric` became
    /// (`ts`, `value`) in `patient`. A reading whose sub-score equals the
    /// one it replaces, and which leaves every scored parameter fresh,
    /// changes nothing but the time of the score (a wearable's heart rate,
    /// each minute); anything else is scored again from the histories.
    pub fn after(
        self,
        patient: &PatientState,
        metric: Metric,
        ts: Timestamp,
        value: f64,
    ) -> News2Cache {
        let same_subscore = |parameter: Parameter, subscore: u8| {
            self.current.score.subscores.get(parameter) == Some(subscore)
        };
        // SpO2, air or oxygen and consciousness depend on each other or on
        // the scale; those few readings are always scored again.
        let unchanged = match metric {
            Metric::HeartRate => same_subscore(Parameter::Pulse, news2::pulse_score(value)),
            Metric::BpSystolic => same_subscore(Parameter::Systolic, news2::systolic_score(value)),
            Metric::BodyTemperature => {
                same_subscore(Parameter::Temperature, news2::temperature_score(value))
            }
            Metric::RespiratoryRate => same_subscore(
                Parameter::RespirationRate,
                news2::respiration_rate_score(value),
            ),
            _ => false,
        };
        if unchanged && ts.micros() <= self.fresh_until {
            let mut cache = self;
            cache.current.as_of = cache.current.as_of.max(Some(ts));
            return cache;
        }
        news2_cache_from_histories(patient)
    }
}

/// Returns whether a reading of `metric` can change what `rule` finds; the
/// engine evaluates only those rules (the others would return nothing).
pub fn concerns(rule: &Rule, metric: Metric) -> bool {
    match rule.kind {
        RuleKind::News2 => is_news2_metric(metric),
        RuleKind::Anomaly => super::anomaly::dimension_of(metric).is_some(),
        RuleKind::Trend => rule.metric == Some(metric) || rule.with_metric == Some(metric),
        RuleKind::Threshold | RuleKind::BaselineDeviation => rule.metric == Some(metric),
        RuleKind::MissedMeasurement | RuleKind::Technical => false,
    }
}

/// Evaluates `rule` after `trigger` was recorded in `patient`, updating `state`.
pub fn evaluate(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
) -> Option<Hit> {
    evaluate_transition(rule, patient, trigger, state, false)
}

/// As [`evaluate`]; with `bare`, an ongoing hit comes without its evidence
/// (no factors, no excess): for counting raises and recoveries, where
/// working out the evidence at each of a wearable's readings while a rule
/// stays active is most of the cost.
pub fn evaluate_transition(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
    bare: bool,
) -> Option<Hit> {
    match rule.kind {
        RuleKind::Threshold => threshold(rule, patient, trigger, state, bare),
        RuleKind::News2 => news2_rule(rule, patient, trigger, state, bare),
        RuleKind::Trend => trend(rule, patient, trigger, state, bare),
        RuleKind::BaselineDeviation => baseline_deviation(rule, patient, trigger, state, bare),
        RuleKind::Anomaly => anomaly(rule, patient, trigger, state, bare),
        RuleKind::MissedMeasurement | RuleKind::Technical => None,
    }
}

/// An ongoing hit without evidence; see [`evaluate_transition`].
const BARE_ONGOING: Hit = Hit {
    transition: Transition::Ongoing,
    excess_in_spreads: 0.0,
    factors: Vec::new(),
};

/// Returns the history of the rule's metric when the trigger concerns it.
fn own_history<'a>(
    rule: &Rule,
    patient: &'a PatientState,
    trigger: Trigger,
) -> Option<(Metric, &'a MetricHistory)> {
    let metric = rule.metric?;
    (metric == trigger.metric).then(|| (metric, patient.history(metric)))
}

fn meets(rule: &Rule, value: f64) -> bool {
    rule.above.is_some_and(|above| value > above) || rule.below.is_some_and(|below| value < below)
}

fn recovered(rule: &Rule, value: f64) -> bool {
    let single_bound = rule.above.is_some() != rule.below.is_some();
    let recover_at = rule.recover_at.filter(|_| single_bound);
    let still_above = rule
        .above
        .is_some_and(|above| value >= recover_at.unwrap_or(above));
    let still_below = rule
        .below
        .is_some_and(|below| value <= recover_at.unwrap_or(below));
    !still_above && !still_below
}

fn transition_for(state: &mut RuleState, condition: bool) -> Option<Transition> {
    match (state.active, condition) {
        (false, false) => None,
        (false, true) => {
            state.active = true;
            Some(Transition::Raised)
        }
        (true, true) => Some(Transition::Ongoing),
        (true, false) => {
            state.active = false;
            state.pending_since = MaybeTime::NONE;
            Some(Transition::Recovered)
        }
    }
}

/// The anomaly rule: the patient's multivariate distance (see
/// [`anomaly`](super::anomaly)) past `above`, recovering below `recover_at`
/// (default: at or below `above`), held for `for_minutes`.
fn anomaly(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
    bare: bool,
) -> Option<Hit> {
    if trigger.late || super::anomaly::dimension_of(trigger.metric).is_none() {
        return None;
    }
    let above = rule.above?;
    let score = patient.anomaly.as_deref()?.score?;
    if score.ts != trigger.ts {
        return None;
    }
    let condition = if state.active {
        score.distance > rule.recover_at.unwrap_or(above)
    } else {
        if score.distance > above {
            state.pending_since.get_or_insert(score.ts);
        } else {
            state.pending_since = MaybeTime::NONE;
        }
        state.pending_since.get().is_some_and(|since| {
            score.ts.micros() - since.micros() >= i64::from(rule.for_minutes) * MICROS_PER_MINUTE
        })
    };
    let since = state.pending_since.get();
    let transition = transition_for(state, condition)?;
    if bare && transition == Transition::Ongoing {
        return Some(BARE_ONGOING);
    }
    Some(Hit {
        transition,
        excess_in_spreads: (score.distance - above).max(0.0),
        factors: vec![Factor::Anomaly {
            distance: score.distance,
            threshold: above,
            dimensions: score.dimensions,
            contributions: score.top.iter().flatten().copied().collect(),
            since,
            held_minutes: since.map(|since| score.ts.seconds_since(since) / 60.0),
        }],
    })
}

fn threshold(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
    bare: bool,
) -> Option<Hit> {
    let (metric, history) = own_history(rule, patient, trigger)?;
    if trigger.late {
        return None;
    }
    let (ts, value) = history.newest()?;
    let repeat_of = rule.repeat_of.max(1) as usize;
    let meeting = history
        .iter()
        .rev()
        .take(repeat_of)
        .filter(|(_, value)| meets(rule, *value))
        .count() as u32;
    let condition = if state.active {
        !recovered(rule, value)
    } else {
        if meets(rule, value) {
            state.pending_since.get_or_insert(ts);
        } else {
            state.pending_since = MaybeTime::NONE;
        }
        let held_micros = state
            .pending_since
            .get()
            .map_or(-1, |since| ts.micros() - since.micros());
        meeting >= rule.repeat_count
            && held_micros >= i64::from(rule.for_minutes) * MICROS_PER_MINUTE
    };
    let transition = transition_for(state, condition)?;
    if bare && transition == Transition::Ongoing {
        return Some(BARE_ONGOING);
    }
    let baseline = personal_baseline(history, metric, ts, patient.spo2_scale_two);
    let (threshold, direction) = match (rule.above, rule.below) {
        (Some(above), _) if rule.below.is_none() || value > above => (above, "above"),
        (_, Some(below)) => (below, "below"),
        (Some(above), None) => (above, "above"),
        (None, None) => return None,
    };
    let held_minutes = state
        .pending_since
        .get()
        .map(|since| ts.seconds_since(since) / 60.0);
    Some(Hit {
        transition,
        excess_in_spreads: (value - threshold).abs() / baseline.mad,
        factors: vec![
            Factor::Threshold {
                metric,
                value,
                threshold,
                direction,
                recover_at: rule.recover_at,
                repeat: (rule.repeat_of > 1).then_some((meeting, rule.repeat_of)),
                held_minutes: held_minutes.filter(|_| rule.for_minutes > 0),
            },
            Factor::Baseline { metric, baseline },
        ],
    })
}

fn news2_rule(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
    bare: bool,
) -> Option<Hit> {
    if trigger.late || !is_news2_metric(trigger.metric) {
        return None;
    }
    let above = rule.above?;
    let current = current_news2(patient);
    let total = f64::from(current.score.total);
    let condition = if state.active {
        rule.recover_at
            .map_or(total > above, |recover_at| total >= recover_at)
    } else {
        total > above
    };
    let transition = transition_for(state, condition)?;
    if bare && transition == Transition::Ongoing {
        return Some(BARE_ONGOING);
    }
    let mut factors = vec![Factor::News2 {
        score: current.score,
        threshold: above,
        stale: current.stale,
        freshness_hours: NEWS2_FRESHNESS_HOURS,
    }];
    if !current.stale.is_empty() {
        factors.push(Factor::DataQuality {
            flag: "stale_news2_parameters",
        });
    }
    Some(Hit {
        transition,
        excess_in_spreads: 0.0,
        factors,
    })
}

fn trend(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
    bare: bool,
) -> Option<Hit> {
    let metric = rule.metric?;
    if trigger.metric != metric && rule.with_metric != Some(trigger.metric) {
        return None;
    }
    let delta = rule.delta?;
    let window_hours = rule.window_hours?;
    let history = patient.history(metric);
    let primary = window_change(history, delta, window_hours);
    // While active, the change need only stay past the recovery level.
    let active = state.active;
    let limit = |delta: f64, recover_at: Option<f64>| {
        if active {
            recover_at.unwrap_or(delta / 2.0)
        } else {
            delta
        }
    };
    let mut condition = primary.is_some_and(|change| change.meets(limit(delta, rule.recover_at)));
    // The companion metric: its own change over the same window, ending
    // within that window of the primary's newest reading.
    let companion = match (rule.with_metric, rule.with_delta) {
        (Some(with_metric), Some(with_delta)) => {
            let change = window_change(patient.history(with_metric), with_delta, window_hours);
            let together = match (primary, change) {
                (Some(primary), Some(change)) => {
                    (primary.to_ts.micros() - change.to_ts.micros()).abs()
                        <= i64::from(window_hours) * MICROS_PER_HOUR
                }
                _ => false,
            };
            condition &=
                together && change.is_some_and(|change| change.meets(limit(with_delta, None)));
            Some((with_metric, with_delta, change))
        }
        _ => None,
    };
    if condition && rule.beyond_own_variation {
        // Only now, when the change is past its delta: a baseline costs a
        // median over the history.
        condition &= primary
            .is_some_and(|change| beyond_own_variation(patient, metric, change, delta))
            && companion.is_none_or(|(with_metric, with_delta, change)| {
                change.is_some_and(|change| {
                    beyond_own_variation(patient, with_metric, change, with_delta)
                })
            });
    }
    let transition = transition_for(state, condition)?;
    if bare && transition == Transition::Ongoing {
        return Some(BARE_ONGOING);
    }
    let (to_ts, _) = history.newest()?;
    let primary = primary.unwrap_or(WindowChange {
        from_ts: to_ts,
        from_value: level(history, history.len() - 1),
        to_ts,
        to_value: level(history, history.len() - 1),
        change: 0.0,
    });
    let baseline = personal_baseline(history, metric, to_ts, patient.spo2_scale_two);
    let mut factors = vec![primary.factor(metric, delta, window_hours)];
    if let Some((with_metric, with_delta, Some(change))) = companion {
        factors.push(change.factor(with_metric, with_delta, window_hours));
    }
    Some(Hit {
        transition,
        excess_in_spreads: (primary.change - delta).abs() / baseline.mad,
        factors,
    })
}

/// A change that the person's own variation explains with less than 5 %
/// probability, in baseline spreads (MADs): the reference change value of
/// laboratory medicine, `√2 × 1.96 × σ`, with `σ ≈ 1.4826 × MAD` the robust
/// standard deviation of their readings.
pub const REFERENCE_CHANGE_SPREADS: f64 = std::f64::consts::SQRT_2 * 1.96 * 1.4826;

/// Whether `change` goes beyond the patient's own variation of `metric`
/// (see [`Rule::beyond_own_variation`]): larger than
/// [`REFERENCE_CHANGE_SPREADS`] spreads of their personal baseline (from
/// the readings before the change's newest), and its newest level beyond
/// the baseline median in the direction of `delta`. Without a personal
/// baseline yet (a population prior describes other people's variation,
/// not theirs) the change counts as it is.
fn beyond_own_variation(
    patient: &PatientState,
    metric: Metric,
    change: WindowChange,
    delta: f64,
) -> bool {
    let baseline = personal_baseline(
        patient.history(metric),
        metric,
        change.to_ts,
        patient.spo2_scale_two,
    );
    if baseline.source != BaselineSource::Personal {
        // Too few readings to know their variation: the delta alone decides.
        return true;
    }
    let significant = change.change.abs() > REFERENCE_CHANGE_SPREADS * baseline.mad;
    let away = if delta > 0.0 {
        change.to_value > baseline.median
    } else {
        change.to_value < baseline.median
    };
    significant && away
}

/// A change of a metric's level over a window ending at its newest reading.
#[derive(Debug, Clone, Copy)]
struct WindowChange {
    from_ts: Timestamp,
    from_value: f64,
    to_ts: Timestamp,
    to_value: f64,
    change: f64,
}

impl WindowChange {
    /// Whether the change exceeds `delta` strictly in its direction.
    /// (`delta` is the rule's delta or, while active, its recovery level,
    /// which has the same sign.)
    fn meets(self, delta: f64) -> bool {
        if delta > 0.0 {
            self.change > delta
        } else {
            self.change < delta
        }
    }

    fn factor(self, metric: Metric, delta: f64, window_hours: u32) -> Factor {
        Factor::Trend {
            metric,
            from_value: self.from_value,
            from_ts: self.from_ts,
            to_value: self.to_value,
            change: self.change,
            delta,
            window_hours,
        }
    }
}

/// Returns the newest level minus the extreme level (lowest for a rise,
/// highest for a fall) of the window before it; `None` without a newest
/// reading or an earlier one in the window.
fn window_change(history: &MetricHistory, delta: f64, window_hours: u32) -> Option<WindowChange> {
    let (to_ts, _) = history.newest()?;
    let newest_index = history.len() - 1;
    let to_value = level(history, newest_index);
    let from = to_ts.micros() - (i64::from(window_hours) + TREND_GRACE_HOURS) * MICROS_PER_HOUR;
    let rising = delta > 0.0;
    let mut extreme: Option<(Timestamp, f64)> = None;
    for index in (0..newest_index).rev() {
        let (ts, _) = history.get(index);
        if ts.micros() < from {
            break;
        }
        let value = level(history, index);
        let better = extreme.is_none_or(|(_, current)| {
            if rising {
                value < current
            } else {
                value > current
            }
        });
        if better {
            extreme = Some((ts, value));
        }
    }
    let (from_ts, from_value) = extreme?;
    Some(WindowChange {
        from_ts,
        from_value,
        to_ts,
        to_value,
        change: to_value - from_value,
    })
}

/// Returns the trend level of the `index`-th reading; see
/// [`MetricHistory::level`].
pub fn level(history: &MetricHistory, index: usize) -> f64 {
    history.level(index)
}

fn baseline_deviation(
    rule: &Rule,
    patient: &PatientState,
    trigger: Trigger,
    state: &mut RuleState,
    bare: bool,
) -> Option<Hit> {
    let (metric, history) = own_history(rule, patient, trigger)?;
    if trigger.late {
        return None;
    }
    let delta = rule.delta?;
    let (ts, value) = history.newest()?;
    let excluded_micros = i64::from(rule.window_hours.unwrap_or(0)) * MICROS_PER_HOUR;
    let baseline: Baseline = personal_baseline(
        history,
        metric,
        ts.plus_micros(-excluded_micros),
        patient.spo2_scale_two,
    );
    if !state.active && baseline.source != BaselineSource::Personal {
        return None;
    }
    let deviation = value - baseline.median;
    let past = |limit: f64| {
        if delta < 0.0 {
            deviation <= limit
        } else {
            deviation >= limit
        }
    };
    let condition = if state.active {
        let recover_at = rule.recover_at.unwrap_or(delta / 2.0);
        past(recover_at)
    } else {
        past(delta)
    };
    let transition = transition_for(state, condition)?;
    if bare && transition == Transition::Ongoing {
        return Some(BARE_ONGOING);
    }
    Some(Hit {
        transition,
        excess_in_spreads: (deviation - delta).abs() / baseline.mad,
        factors: vec![
            Factor::Deviation {
                metric,
                value,
                deviation,
                delta,
            },
            Factor::Baseline { metric, baseline },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::{Priority, Protocol};

    const MINUTE: i64 = 60_000_000;
    const HOUR: i64 = 60 * MINUTE;

    fn rule(toml: &str) -> Rule {
        let text = format!(
            "name = \"t\"\n[response_targets]\nhigh = 60\nmedium = 240\nlow = 1440\n[[rule]]\nid = \"r\"\npriority = \"high\"\n{toml}"
        );
        let protocol = Protocol::parse(&text).expect("test protocol parses");
        protocol.rules[0].clone()
    }

    /// Records `values` of `metric` at the given minute offsets and evaluates
    /// the rule after each; returns the transitions.
    fn run(
        rule: &Rule,
        patient: &mut PatientState,
        state: &mut RuleState,
        metric: Metric,
        readings: &[(i64, f64)],
    ) -> Vec<Option<Transition>> {
        readings
            .iter()
            .map(|&(minute, value)| {
                let ts = Timestamp(minute * MINUTE);
                let late = patient.record(metric, ts, value)
                    == super::super::patient_state::Recorded::Late;
                let trigger = Trigger { metric, ts, late };
                evaluate(rule, patient, trigger, state).map(|hit| hit.transition)
            })
            .collect()
    }

    fn patient() -> PatientState {
        PatientState::new(Vec::new(), false)
    }

    #[test]
    fn threshold_fires_above_and_not_below_it() {
        // Arrange
        let fever = rule(
            "kind = \"threshold\"\nmetric = \"body_temperature\"\nabove = 38.0\nrecover_at = 37.8",
        );
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act
        let transitions = run(
            &fever,
            &mut patient,
            &mut state,
            Metric::BodyTemperature,
            &[(0, 37.5), (60, 38.0), (120, 38.4)],
        );

        // Assert
        assert_eq!(transitions, vec![None, None, Some(Transition::Raised)]);
        assert!(state.active);
    }

    #[test]
    fn threshold_recovers_only_past_recover_at() {
        // Arrange
        let fever = rule(
            "kind = \"threshold\"\nmetric = \"body_temperature\"\nabove = 38.0\nrecover_at = 37.8",
        );
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act: 37.9 lies between recover_at and the threshold.
        let transitions = run(
            &fever,
            &mut patient,
            &mut state,
            Metric::BodyTemperature,
            &[(0, 38.5), (60, 37.9), (120, 37.7)],
        );

        // Assert
        assert_eq!(
            transitions,
            vec![
                Some(Transition::Raised),
                Some(Transition::Ongoing),
                Some(Transition::Recovered)
            ]
        );
    }

    #[test]
    fn threshold_below_recovers_only_above_recover_at() {
        // Arrange
        let hypotension =
            rule("kind = \"threshold\"\nmetric = \"bp_systolic\"\nbelow = 91\nrecover_at = 100");
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act
        let transitions = run(
            &hypotension,
            &mut patient,
            &mut state,
            Metric::BpSystolic,
            &[(0, 85.0), (60, 95.0), (120, 101.0)],
        );

        // Assert
        assert_eq!(
            transitions,
            vec![
                Some(Transition::Raised),
                Some(Transition::Ongoing),
                Some(Transition::Recovered)
            ]
        );
    }

    #[test]
    fn threshold_waits_for_minutes_of_sustained_condition() {
        // Arrange
        let tachycardia = rule("kind = \"threshold\"\nmetric = \"heart_rate\"\nabove = 110\nrecover_at = 100\nfor_minutes = 15");
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act: the run is broken at minute 10, then holds from 20 to 35.
        let transitions = run(
            &tachycardia,
            &mut patient,
            &mut state,
            Metric::HeartRate,
            &[
                (0, 120.0),
                (5, 118.0),
                (10, 95.0),
                (20, 121.0),
                (30, 119.0),
                (35, 122.0),
            ],
        );

        // Assert
        assert_eq!(
            transitions,
            vec![None, None, None, None, None, Some(Transition::Raised)]
        );
    }

    #[test]
    fn threshold_needs_repeat_count_of_repeat_of_readings() {
        // Arrange
        let hypotension = rule("kind = \"threshold\"\nmetric = \"bp_systolic\"\nbelow = 91\nrecover_at = 100\nrepeat_count = 2\nrepeat_of = 3");
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act
        let transitions = run(
            &hypotension,
            &mut patient,
            &mut state,
            Metric::BpSystolic,
            &[(0, 88.0), (60, 110.0), (120, 89.0)],
        );

        // Assert: one of three is not enough; the second low reading is.
        assert_eq!(transitions, vec![None, None, Some(Transition::Raised)]);
    }

    #[test]
    fn late_reading_does_not_raise_current_threshold_alert() {
        // Arrange
        let fever = rule("kind = \"threshold\"\nmetric = \"body_temperature\"\nabove = 38.0");
        let (mut patient, mut state) = (patient(), RuleState::default());
        run(
            &fever,
            &mut patient,
            &mut state,
            Metric::BodyTemperature,
            &[(600, 36.9)],
        );

        // Act: a fever from before the newest (normal) reading arrives late.
        let transitions = run(
            &fever,
            &mut patient,
            &mut state,
            Metric::BodyTemperature,
            &[(300, 39.2)],
        );

        // Assert
        assert_eq!(transitions, vec![None]);
        assert!(!state.active);
        assert_eq!(
            patient.history(Metric::BodyTemperature).len(),
            2,
            "kept for history"
        );
    }

    #[test]
    fn news2_fires_above_its_threshold_and_names_missing_parameters() {
        // Arrange
        let news2 = rule("kind = \"news2\"\nabove = 4.5");
        let mut patient = patient();
        let mut state = RuleState::default();
        patient.record(Metric::Spo2, Timestamp(0), 91.0); // 3
        patient.record(Metric::HeartRate, Timestamp(MINUTE), 100.0); // 1

        // Act
        let quiet = evaluate(
            &news2,
            &patient,
            Trigger {
                metric: Metric::HeartRate,
                ts: Timestamp(MINUTE),
                late: false,
            },
            &mut state,
        );
        patient.record(Metric::BodyTemperature, Timestamp(2 * MINUTE), 38.5); // 1
        let hit = evaluate(
            &news2,
            &patient,
            Trigger {
                metric: Metric::BodyTemperature,
                ts: Timestamp(2 * MINUTE),
                late: false,
            },
            &mut state,
        )
        .unwrap();

        // Assert
        assert!(quiet.is_none());
        assert_eq!(hit.transition, Transition::Raised);
        let Factor::News2 { score, .. } = &hit.factors[0] else {
            panic!("news2 factor first")
        };
        assert_eq!(score.total, 5);
        assert!(score.missing.contains(Parameter::Consciousness));
        assert!(score.missing.contains(Parameter::RespirationRate));
    }

    #[test]
    fn news2_leaves_out_stale_parameters_and_recovers() {
        // Arrange
        let news2 = rule("kind = \"news2\"\nabove = 4.5");
        let mut patient = patient();
        let mut state = RuleState::default();
        patient.record(Metric::Spo2, Timestamp(0), 90.0); // 3
        patient.record(Metric::BpSystolic, Timestamp(0), 95.0); // 2
        let trigger = Trigger {
            metric: Metric::BpSystolic,
            ts: Timestamp(0),
            late: false,
        };
        assert_eq!(
            evaluate(&news2, &patient, trigger, &mut state)
                .unwrap()
                .transition,
            Transition::Raised
        );

        // Act: 13 hours later only a normal pulse arrives.
        let later = Timestamp(13 * HOUR);
        patient.record(Metric::HeartRate, later, 70.0);
        let hit = evaluate(
            &news2,
            &patient,
            Trigger {
                metric: Metric::HeartRate,
                ts: later,
                late: false,
            },
            &mut state,
        )
        .unwrap();

        // Assert
        assert_eq!(hit.transition, Transition::Recovered);
        let Factor::News2 { stale, .. } = &hit.factors[0] else {
            panic!("news2 factor first")
        };
        assert!(stale.contains(Parameter::Spo2) && stale.contains(Parameter::Systolic));
    }

    fn weight_rule() -> Rule {
        rule("kind = \"trend\"\nmetric = \"body_weight\"\ndelta = 2.0\nwindow_hours = 72")
    }

    fn daily_weights(weights: &[f64]) -> Vec<(i64, f64)> {
        weights
            .iter()
            .enumerate()
            .map(|(day, weight)| (day as i64 * 24 * 60 + (day as i64 % 2) * 15, *weight))
            .collect()
    }

    #[test]
    fn weight_gain_of_2_1_kg_in_3_days_fires() {
        // Arrange
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act
        let transitions = run(
            &weight_rule(),
            &mut patient,
            &mut state,
            Metric::BodyWeight,
            &daily_weights(&[80.0, 80.2, 79.9, 80.6, 81.3, 82.0]),
        );

        // Assert: 82.0 − 79.9 = 2.1 kg within 3 days.
        assert_eq!(transitions.last(), Some(&Some(Transition::Raised)));
    }

    #[test]
    fn weight_gain_of_1_5_kg_in_3_days_does_not_fire() {
        // Arrange
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act
        let transitions = run(
            &weight_rule(),
            &mut patient,
            &mut state,
            Metric::BodyWeight,
            &daily_weights(&[80.0, 80.2, 80.0, 80.6, 81.0, 81.5]),
        );

        // Assert
        assert!(transitions.iter().all(Option::is_none));
    }

    #[test]
    fn weight_gain_older_than_the_window_does_not_count() {
        // Arrange
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act: 78 → 80.5 took five days.
        let transitions = run(
            &weight_rule(),
            &mut patient,
            &mut state,
            Metric::BodyWeight,
            &daily_weights(&[78.0, 78.5, 79.0, 79.5, 80.0, 80.5]),
        );

        // Assert
        assert!(transitions.iter().all(Option::is_none));
    }

    #[test]
    fn falling_trend_fires_on_a_negative_delta_and_recovers() {
        // Arrange
        let falling = rule("kind = \"trend\"\nmetric = \"spo2\"\ndelta = -3\nwindow_hours = 48");
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act
        let transitions = run(
            &falling,
            &mut patient,
            &mut state,
            Metric::Spo2,
            &[(0, 95.0), (600, 94.0), (1200, 91.0), (1800, 94.0)],
        );

        // Assert
        assert_eq!(
            transitions,
            vec![
                None,
                None,
                Some(Transition::Raised),
                Some(Transition::Recovered)
            ]
        );
    }

    /// Transitions of a systolic 30 mmHg-in-6-hours fall rule, with and
    /// without `beyond_own_variation`, over hourly `values`.
    fn systolic_fall(values: &[f64]) -> (Vec<Option<Transition>>, Vec<Option<Transition>>) {
        let plain = "kind = \"trend\"\nmetric = \"bp_systolic\"\ndelta = -30\nwindow_hours = 6";
        let mut results = Vec::new();
        for toml in [
            plain.to_owned(),
            format!("{plain}\nbeyond_own_variation = true"),
        ] {
            let rule = rule(&toml);
            let (mut patient, mut state) = (patient(), RuleState::default());
            let readings: Vec<(i64, f64)> = values
                .iter()
                .enumerate()
                .map(|(hour, value)| (hour as i64 * 60, *value))
                .collect();
            results.push(run(
                &rule,
                &mut patient,
                &mut state,
                Metric::BpSystolic,
                &readings,
            ));
        }
        (results.remove(0), results.remove(0))
    }

    #[test]
    fn a_fall_beyond_own_variation_fires_for_a_steady_patient() {
        // Arrange: steady around 140 for a day, then down to 100.
        let mut values: Vec<f64> = (0..24)
            .map(|hour| 140.0 + f64::from(hour % 3) - 1.0)
            .collect();
        values.extend([130.0, 118.0, 108.0, 100.0]);

        // Act
        let (plain, personal) = systolic_fall(&values);

        // Assert: both fire, at the same reading.
        assert!(personal.contains(&Some(Transition::Raised)), "{personal:?}");
        assert_eq!(plain, personal);
    }

    #[test]
    fn a_fall_within_own_variation_or_back_to_usual_does_not_fire() {
        // Arrange: a patient whose pressure swings ±15 mmHg from hour to
        // hour (spread 15, so a change needs 4.1 × 15 ≈ 62 mmHg), falling
        // by about 35.
        let swinging: Vec<f64> = (0..24)
            .map(|hour| [125.0, 155.0, 140.0][hour % 3])
            .chain([150.0, 150.0, 118.0, 115.0])
            .collect();
        // A patient usually at 130, high for a few hours, falling back to 138.
        let mut back: Vec<f64> = (0..24).map(|hour| 130.0 + f64::from(hour % 2)).collect();
        back.extend([170.0, 175.0, 174.0, 150.0, 140.0, 138.0]);

        // Act
        let (swinging_plain, swinging_personal) = systolic_fall(&swinging);
        let (back_plain, back_personal) = systolic_fall(&back);

        // Assert: the plain delta fires on both; the personal one on neither.
        assert!(
            swinging_plain.contains(&Some(Transition::Raised)),
            "{swinging_plain:?}"
        );
        assert!(
            swinging_personal.iter().all(Option::is_none),
            "{swinging_personal:?}"
        );
        assert!(
            back_plain.contains(&Some(Transition::Raised)),
            "{back_plain:?}"
        );
        assert!(
            back_personal.iter().all(Option::is_none),
            "{back_personal:?}"
        );
    }

    #[test]
    fn beyond_own_variation_is_only_for_trend_rules() {
        let text = "name = \"t\"\n[response_targets]\nhigh = 60\nmedium = 240\nlow = 1440\n[[rule]]\nid = \"r\"\npriority = \"high\"\nkind = \"threshold\"\nmetric = \"spo2\"\nbelow = 92\nbeyond_own_variation = true\n";
        let problems = Protocol::parse(text).unwrap_err();
        assert_eq!(
            problems,
            vec!["rule r: only a trend rule takes beyond_own_variation".to_owned()]
        );
    }

    #[test]
    fn pulse_rising_fires_only_while_spo2_falls_in_the_same_window() {
        // Arrange
        let combined = rule(
            "kind = \"trend\"\nmetric = \"heart_rate\"\ndelta = 12\nwith_metric = \"spo2\"\nwith_delta = -3\nwindow_hours = 24",
        );
        let (mut patient, mut state) = (patient(), RuleState::default());

        // Act: the pulse rises 15 with SpO2 steady; then SpO2 falls 4.
        let pulse = run(
            &combined,
            &mut patient,
            &mut state,
            Metric::HeartRate,
            &[(0, 70.0), (600, 85.0)],
        );
        let spo2 = run(
            &combined,
            &mut patient,
            &mut state,
            Metric::Spo2,
            &[(0, 96.0), (300, 95.0), (610, 92.0)],
        );
        let explanation = evaluate(
            &combined,
            &patient,
            Trigger {
                metric: Metric::Spo2,
                ts: Timestamp(610 * MINUTE),
                late: false,
            },
            &mut state.clone(),
        )
        .unwrap()
        .factors;
        // The SpO2 recovers: the pattern is over once the two-hour level
        // (the median with the 92 of 90 minutes before, 94) is back within
        // half the delta; at 800 the level is 96.
        let recovered = run(
            &combined,
            &mut patient,
            &mut state,
            Metric::Spo2,
            &[(700, 96.0), (800, 96.0)],
        );

        // Assert
        assert_eq!(
            pulse,
            vec![None, None],
            "a rising pulse alone is not the pattern"
        );
        assert_eq!(spo2, vec![None, None, Some(Transition::Raised)]);
        let metrics: Vec<Metric> = explanation
            .iter()
            .filter_map(|factor| match factor {
                Factor::Trend { metric, .. } => Some(*metric),
                _ => None,
            })
            .collect();
        assert_eq!(metrics, vec![Metric::HeartRate, Metric::Spo2]);
        assert_eq!(
            recovered,
            vec![Some(Transition::Ongoing), Some(Transition::Recovered)]
        );
    }

    #[test]
    fn a_companion_metric_needs_its_delta_and_a_trend_rule() {
        let text = |extra: &str| {
            format!("name = \"t\"\n[response_targets]\nhigh = 60\nmedium = 240\nlow = 1440\n[[rule]]\nid = \"r\"\npriority = \"high\"\n{extra}")
        };
        assert!(Protocol::parse(&text(
            "kind = \"trend\"\nmetric = \"heart_rate\"\ndelta = 12\nwith_metric = \"spo2\"\nwindow_hours = 24"
        ))
        .is_err());
        assert!(Protocol::parse(&text(
            "kind = \"threshold\"\nmetric = \"heart_rate\"\nabove = 100\nwith_metric = \"spo2\"\nwith_delta = -3"
        ))
        .is_err());
        assert!(Protocol::parse(&text(
            "kind = \"trend\"\nmetric = \"heart_rate\"\ndelta = 12\nwith_metric = \"heart_rate\"\nwith_delta = 3\nwindow_hours = 24"
        ))
        .is_err());
    }

    fn spo2_deviation_rule() -> Rule {
        rule("kind = \"baseline_deviation\"\nmetric = \"spo2\"\ndelta = -3\nwindow_hours = 24")
    }

    #[test]
    fn spo2_three_points_below_personal_baseline_fires() {
        // Arrange: a personal baseline of 93 %, below the population prior of 96 %.
        let deviation = spo2_deviation_rule();
        let (mut patient, mut state) = (patient(), RuleState::default());
        for i in 0..8 {
            let value = if i == 3 { 94.0 } else { 93.0 };
            patient.record(Metric::Spo2, Timestamp(i * 12 * HOUR), value);
        }
        let ts = Timestamp(8 * 12 * HOUR);
        patient.record(Metric::Spo2, ts, 90.0);

        // Act
        let hit = evaluate(
            &deviation,
            &patient,
            Trigger {
                metric: Metric::Spo2,
                ts,
                late: false,
            },
            &mut state,
        )
        .unwrap();

        // Assert
        assert_eq!(hit.transition, Transition::Raised);
        let Factor::Baseline { baseline, .. } = &hit.factors[1] else {
            panic!("baseline factor second")
        };
        assert_eq!(
            baseline.source,
            super::super::baseline::BaselineSource::Personal
        );
        assert_eq!(baseline.median, 93.0);
    }

    #[test]
    fn spo2_deviation_waits_for_a_personal_baseline() {
        // Arrange: two readings of 94 are too few for a personal baseline;
        // the prior's median is 96.
        let deviation = spo2_deviation_rule();
        let (mut patient, mut state) = (patient(), RuleState::default());
        patient.record(Metric::Spo2, Timestamp(0), 94.0);
        patient.record(Metric::Spo2, Timestamp(12 * HOUR), 94.0);
        let ts = Timestamp(2 * 24 * HOUR);
        patient.record(Metric::Spo2, ts, 93.0);
        let prior = personal_baseline(patient.history(Metric::Spo2), Metric::Spo2, ts, false);

        // Act
        let hit = evaluate(
            &deviation,
            &patient,
            Trigger {
                metric: Metric::Spo2,
                ts,
                late: false,
            },
            &mut state,
        );

        // Assert: 93 is three below the prior, but "below this person's
        // usual" needs their usual.
        assert_eq!(prior.source, BaselineSource::Prior);
        assert_eq!(prior.median - 93.0, 3.0);
        assert_eq!(hit, None);
        assert!(!state.active);
    }

    #[test]
    fn baseline_deviation_does_not_fire_within_delta_and_recovers_at_half() {
        // Arrange
        let deviation = spo2_deviation_rule();
        let (mut patient, mut state) = (patient(), RuleState::default());
        let history: Vec<(i64, f64)> = (0..8).map(|i| (i * 12 * 60, 96.0)).collect();
        run(&deviation, &mut patient, &mut state, Metric::Spo2, &history);

        // Act: −2 (quiet), −4 (raise), −2 (still active: past −1.5), −1 (recovered).
        let transitions = run(
            &deviation,
            &mut patient,
            &mut state,
            Metric::Spo2,
            &[(6000, 94.0), (6060, 92.0), (6120, 94.0), (6180, 95.0)],
        );

        // Assert
        assert_eq!(
            transitions,
            vec![
                None,
                Some(Transition::Raised),
                Some(Transition::Ongoing),
                Some(Transition::Recovered)
            ]
        );
    }

    #[test]
    fn missed_measurement_and_technical_rules_are_recognised_but_unsupported() {
        // Arrange
        let missed =
            rule("kind = \"missed_measurement\"\nmetric = \"body_weight\"\ndue_by = \"10:00\"");
        let mut state = RuleState::default();
        let mut patient = patient();
        patient.record(Metric::BodyWeight, Timestamp(0), 80.0);

        // Act
        let hit = evaluate(
            &missed,
            &patient,
            Trigger {
                metric: Metric::BodyWeight,
                ts: Timestamp(0),
                late: false,
            },
            &mut state,
        );

        // Assert
        assert!(hit.is_none());
        assert!(!is_supported(missed.kind));
        assert_eq!(missed.priority, Priority::High);
    }
}
