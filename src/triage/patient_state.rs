//! Per-patient triage state: a fixed-capacity, event-time-ordered history of
//! recent readings per metric, and the state of each rule the patient follows.
//!
//! In: readings one at a time ([`PatientState::record`]). Out: the ordered
//! history the rules, baselines and NEWS2 read. Owned by the
//! [`TriageEngine`](super::engine::TriageEngine); nothing to do on shutdown
//! (DESIGN §1 rebuilds it from the database at start-up).
//!
//! A metric's buffer is allocated on its first reading; after that recording
//! a reading allocates nothing. Each reading's trend level (the median of its
//! hour) is computed once, when it is recorded, and the NEWS2 of the newest
//! values is kept up to date, because the rules read both after every
//! reading. Late readings (older than the newest reading of
//! their metric, e.g. from a gateway that was offline) are inserted in order
//! and reported as late: they count for history, baselines and trends, but
//! "current" threshold evaluation keeps using the newest reading (DESIGN §1).

use super::rules::{is_news2_metric, CurrentNews2, News2Cache};
use super::sustained::SustainedNews2;
use super::urgency::Finding;
use crate::domain::{Metric, Timestamp};
use crate::protocols::Priority;

/// Readings kept per metric. 64 spot readings cover two weeks of a metric
/// measured four times a day, the personal-baseline window of
/// [`baseline`](super::baseline); a wearable sending every few minutes keeps
/// its last few hours, which is enough for pending durations and trends of
/// spot-measured metrics.
pub const HISTORY_CAPACITY: usize = 64;
const _: () = assert!(HISTORY_CAPACITY <= u8::MAX as usize, "positions fit a u8");

/// Raise times kept per rule for the "second contact" alarm signal.
pub const RAISE_HISTORY: usize = 4;

/// Returns the position of `metric` in [`Metric::ALL`], which lists the
/// metrics in declaration order (a test holds it to that).
pub fn metric_index(metric: Metric) -> usize {
    metric as usize
}

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// Values are kept in thousandths of their canonical unit (see [`quantize`]).
const VALUE_SCALE: f64 = 1_000.0;

/// The largest magnitude a value keeps; larger ones are held at it. No
/// metric's plausible range comes near (a day's steps are the largest).
pub const VALUE_LIMIT: f64 = 1_000_000.0;

/// Returns `value` as triage works with it: rounded to a thousandth of its
/// canonical unit and held within [`VALUE_LIMIT`]. A value with at most
/// three decimals, as every device and threshold states them, is returned
/// exactly as it came (`72.4` stays the `f64` nearest 72.4: a quotient of
/// two integers is correctly rounded); only a unit conversion's long tail
/// is cut, far below any device's resolution. Kept this way, a reading
/// takes 16 bytes of history instead of 24, and the levels of wearables'
/// readings are exact medians.
pub fn quantize(value: f64) -> f64 {
    from_thousandths(to_thousandths(value))
}

fn to_thousandths(value: f64) -> i32 {
    // Within the limit the product fits an i32 (and `as` saturates anyway).
    (value.clamp(-VALUE_LIMIT, VALUE_LIMIT) * VALUE_SCALE).round() as i32
}

fn from_thousandths(thousandths: i32) -> f64 {
    f64::from(thousandths) / VALUE_SCALE
}

/// A ring buffer of (event time, value) pairs kept in event-time order, with
/// each reading's trend level (see [`MetricHistory::level`]). Values are
/// held in thousandths ([`quantize`]), levels in two-thousandths (a median
/// of an even count is the mean of two values), both exactly.
#[derive(Debug, Clone)]
pub struct MetricHistory {
    times: [Timestamp; HISTORY_CAPACITY],
    values: [i32; HISTORY_CAPACITY],
    /// Kept beside the values because a trend rule reads the level of every
    /// reading in its window after each new reading: computing them once,
    /// when a reading is recorded, costs 0.25 KiB per history and saves a
    /// median of up to seven values per reading in the window.
    levels: [i32; HISTORY_CAPACITY],
    start: u8,
    len: u8,
    /// Whether levels are kept; off for a metric no rule of the patient
    /// smooths, in an engine that only counts ([`PatientState::smoothed`]).
    smooth: bool,
}

/// What recording one reading did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The reading is the newest of its metric.
    Newest,
    /// Older than the newest reading of its metric: inserted in order.
    Late,
    /// Same event time as a stored reading (a redelivery): value replaced.
    Duplicate,
    /// Older than everything in a full buffer: not kept.
    TooOld,
}

impl Default for MetricHistory {
    fn default() -> MetricHistory {
        MetricHistory::EMPTY
    }
}

impl MetricHistory {
    /// A history with no readings.
    pub const EMPTY: MetricHistory = MetricHistory {
        times: [Timestamp(0); HISTORY_CAPACITY],
        values: [0; HISTORY_CAPACITY],
        levels: [0; HISTORY_CAPACITY],
        start: 0,
        len: 0,
        smooth: true,
    };
}

/// What `history` returns for a metric the patient has never sent.
static NO_HISTORY: MetricHistory = MetricHistory::EMPTY;

impl MetricHistory {
    /// Returns the number of readings held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Returns true when no reading is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, index: usize) -> usize {
        (usize::from(self.start) + index) % HISTORY_CAPACITY
    }

    /// Returns the `index`-th reading, oldest first.
    pub fn get(&self, index: usize) -> (Timestamp, f64) {
        debug_assert!(index < self.len(), "index within the history");
        let slot = self.slot(index);
        (self.times[slot], from_thousandths(self.values[slot]))
    }

    /// Returns the event time of the `index`-th reading, oldest first.
    pub fn time(&self, index: usize) -> Timestamp {
        debug_assert!(index < self.len(), "index within the history");
        self.times[self.slot(index)]
    }

    /// Returns the trend level of the `index`-th reading: the median of up to
    /// [`TREND_SMOOTHING_READINGS`] readings within
    /// [`TREND_SMOOTHING_MINUTES`] ending at it, as they stood when it was
    /// recorded (a late reading of that hour updates it). A spot
    /// measurement has no neighbours that close and is its own level.
    ///
    /// [`TREND_SMOOTHING_READINGS`]: super::rules::TREND_SMOOTHING_READINGS
    /// [`TREND_SMOOTHING_MINUTES`]: super::rules::TREND_SMOOTHING_MINUTES
    pub fn level(&self, index: usize) -> f64 {
        debug_assert!(index < self.len(), "index within the history");
        f64::from(self.levels[self.slot(index)]) / (2.0 * VALUE_SCALE)
    }

    /// Returns the newest reading.
    pub fn newest(&self) -> Option<(Timestamp, f64)> {
        (self.len > 0).then(|| self.get(self.len() - 1))
    }

    /// Returns the readings oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Timestamp, f64)> + '_ {
        (0..self.len()).map(|index| self.get(index))
    }

    fn set(&mut self, index: usize, ts: Timestamp, thousandths: i32) {
        let slot = self.slot(index);
        self.times[slot] = ts;
        self.values[slot] = thousandths;
    }

    /// Computes the level of the `index`-th reading from the readings held,
    /// in two-thousandths.
    fn compute_level(&self, index: usize) -> i32 {
        use super::rules::{TREND_SMOOTHING_MINUTES, TREND_SMOOTHING_READINGS};
        let slot = self.slot(index);
        let (at, value) = (self.times[slot], self.values[slot]);
        let window_micros = TREND_SMOOTHING_MINUTES * MICROS_PER_MINUTE;
        if index == 0 || at.micros() - self.time(index - 1).micros() > window_micros {
            return 2 * value;
        }
        let mut window = [0; TREND_SMOOTHING_READINGS];
        let mut count = 0;
        for earlier in (0..=index).rev().take(TREND_SMOOTHING_READINGS) {
            let slot = self.slot(earlier);
            if at.micros() - self.times[slot].micros() > window_micros {
                break;
            }
            window[count] = self.values[slot];
            count += 1;
        }
        let window = &mut window[..count];
        window.sort_unstable();
        let middle = count / 2;
        if count % 2 == 1 {
            2 * window[middle]
        } else {
            window[middle - 1] + window[middle]
        }
    }

    /// Recomputes the levels from the `from`-th reading on, as far as a
    /// change at `from` can reach.
    fn update_levels(&mut self, from: usize) {
        use super::rules::{TREND_SMOOTHING_MINUTES, TREND_SMOOTHING_READINGS};
        if !self.smooth {
            return;
        }
        let changed_at = self.time(from).micros();
        let end = (from + TREND_SMOOTHING_READINGS).min(self.len());
        for index in from..end {
            if self.time(index).micros() - changed_at > TREND_SMOOTHING_MINUTES * MICROS_PER_MINUTE
            {
                break;
            }
            let level = self.compute_level(index);
            let slot = self.slot(index);
            self.levels[slot] = level;
        }
    }

    /// Starts keeping levels, computing those of the readings held.
    pub fn start_smoothing(&mut self) {
        if !self.smooth {
            self.smooth = true;
            for index in 0..self.len() {
                let level = self.compute_level(index);
                let slot = self.slot(index);
                self.levels[slot] = level;
            }
        }
    }

    /// Inserts a reading at its event time, dropping the oldest when full.
    /// The value is kept as [`quantize`] returns it.
    pub fn insert(&mut self, ts: Timestamp, value: f64) -> Recorded {
        const FULL: u8 = HISTORY_CAPACITY as u8;
        let value = to_thousandths(value);
        let newest = self.newest().map(|(newest_ts, _)| newest_ts);
        if newest.is_none_or(|newest_ts| ts > newest_ts) {
            if self.len < FULL {
                self.len += 1;
            } else {
                self.start = (self.start + 1) % FULL;
            }
            let last = self.len() - 1;
            self.set(last, ts, value);
            if self.smooth {
                let level = self.compute_level(last);
                let slot = self.slot(last);
                self.levels[slot] = level;
            }
            return Recorded::Newest;
        }
        // First position whose time is not before `ts`.
        let mut position = (0..self.len())
            .take_while(|&index| self.time(index) < ts)
            .count();
        if position < self.len() && self.time(position) == ts {
            self.set(position, ts, value);
            self.update_levels(position);
            return Recorded::Duplicate;
        }
        if self.len == FULL {
            if position == 0 {
                return Recorded::TooOld;
            }
            self.start = (self.start + 1) % FULL;
            self.len -= 1;
            position -= 1;
        }
        self.len += 1;
        for index in (position + 1..self.len()).rev() {
            let from = self.slot(index - 1);
            let to = self.slot(index);
            self.times[to] = self.times[from];
            self.values[to] = self.values[from];
            self.levels[to] = self.levels[from];
        }
        self.set(position, ts, value);
        self.update_levels(position);
        Recorded::Late
    }
}

/// An optional event time in 8 bytes, where `Option<Timestamp>` takes 16:
/// no reading has the event time `i64::MIN`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MaybeTime(i64);

impl MaybeTime {
    /// No time.
    pub const NONE: MaybeTime = MaybeTime(i64::MIN);

    /// Returns the time, if any.
    pub fn get(self) -> Option<Timestamp> {
        (self != MaybeTime::NONE).then_some(Timestamp(self.0))
    }

    /// Returns true when a time is held.
    pub fn is_some(self) -> bool {
        self != MaybeTime::NONE
    }

    /// Returns the time held, first holding `ts` when there is none.
    pub fn get_or_insert(&mut self, ts: Timestamp) -> Timestamp {
        if *self == MaybeTime::NONE {
            *self = MaybeTime::from(Some(ts));
        }
        Timestamp(self.0)
    }
}

impl From<Option<Timestamp>> for MaybeTime {
    fn from(ts: Option<Timestamp>) -> MaybeTime {
        debug_assert!(
            ts != Some(Timestamp(i64::MIN)),
            "an event time, not the sentinel"
        );
        ts.map_or(MaybeTime::NONE, |ts| MaybeTime(ts.micros()))
    }
}

impl Default for MaybeTime {
    fn default() -> MaybeTime {
        MaybeTime::NONE
    }
}

impl std::fmt::Debug for MaybeTime {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(formatter)
    }
}

/// Per-(patient, rule) state: whether the rule's alert is active, since when
/// its condition has held, and when it was last raised (64 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleState {
    pub active: bool,
    /// Event time of the first reading of the current run meeting the condition.
    pub pending_since: MaybeTime,
    /// The most recent raise times, newest last (unused slots are empty).
    pub raised_at: [MaybeTime; RAISE_HISTORY],
    /// Score of the last finding while active, for ranking snapshots.
    pub last_score: f64,
    /// The current episode was raised as a second contact.
    pub second_contact: bool,
    /// Event time from which a raise (or, while active, a recovery) has
    /// waited for confirmation by a reading of a later time
    /// (`confirm_within_minutes`).
    pub unconfirmed_since: MaybeTime,
    /// The priority of the alert this episode raised in the alert book;
    /// `None` while inactive or held.
    pub shown: Option<Priority>,
    /// The episode's raise is held back while another alert of the patient
    /// covers it (see [`HeldFinding`]).
    pub held: bool,
}

impl RuleState {
    /// Records a raise and returns whether it is a second contact: an earlier
    /// raise of the same rule within `window_micros` before `ts`.
    pub fn record_raise(&mut self, ts: Timestamp, window_micros: i64) -> bool {
        let second_contact = self
            .raised_at
            .iter()
            .filter_map(|earlier| earlier.get())
            .any(|earlier| earlier < ts && ts.micros() - earlier.micros() <= window_micros);
        self.raised_at.rotate_left(1);
        self.raised_at[RAISE_HISTORY - 1] = MaybeTime::from(Some(ts));
        second_contact
    }
}

use super::anomaly::AnomalyState;

/// A raise held back because another alert of the same patient already
/// covers it: an alert in the alert book (shown, not itself held) of at
/// least the same priority whose rule reads a metric this rule reads. The
/// nurse working that alert is already looking at this part of the
/// patient, so a second alert would only add to the list; the held
/// finding is named on the covering alert instead, and raised on its own
/// when no alert covers it any more while its condition still holds.
#[derive(Debug, Clone)]
pub struct HeldFinding {
    /// Index into [`PatientState::rules`] of the held rule.
    pub rule: usize,
    /// Index into [`PatientState::rules`] of the covering rule.
    pub holder: usize,
    /// The held rule's newest finding, as a raise.
    pub finding: Finding,
}

/// One rule a patient follows: indices into the engine's protocol table,
/// and into its table of personal settings ([`NO_PERSONAL`] when the
/// patient has none for this rule).
#[derive(Debug, Clone, Copy)]
pub struct PatientRule {
    // u16 each: a patient follows some twenty rules, so their state is
    // kept small (72 bytes a rule).
    protocol: u16,
    rule: u16,
    pub personal: u32,
    pub state: RuleState,
}

impl PatientRule {
    /// Returns the rule `rule` of protocol `protocol`, followed as the
    /// protocol says, with fresh state.
    ///
    /// # Panics
    /// When an index exceeds `u16::MAX`: more than 65,535 protocols, or
    /// rules in one protocol.
    pub fn new(protocol: usize, rule: usize) -> PatientRule {
        PatientRule {
            protocol: u16::try_from(protocol).expect("protocol index within u16"),
            rule: u16::try_from(rule).expect("rule index within u16"),
            personal: NO_PERSONAL,
            state: RuleState::default(),
        }
    }

    /// Returns the index of the protocol in the engine's table.
    pub fn protocol(&self) -> usize {
        usize::from(self.protocol)
    }

    /// Returns the index of the rule in its protocol's table.
    pub fn rule(&self) -> usize {
        usize::from(self.rule)
    }
}

/// [`PatientRule::personal`] of a rule the patient follows as the protocol says.
pub const NO_PERSONAL: u32 = u32::MAX;

/// Everything triage remembers about one patient.
#[derive(Debug, Clone)]
pub struct PatientState {
    /// Allocated on a metric's first reading: most patients send four to six
    /// of the twelve metrics, and a history is about 1 KiB.
    histories: [Option<Box<MetricHistory>>; Metric::ALL.len()],
    pub rules: Vec<PatientRule>,
    /// NEWS2 SpO2 scale 2 applies when any protocol of the patient prescribes it.
    pub spo2_scale_two: bool,
    /// Running multivariate statistics, allocated on the first vital sign
    /// of a patient whose protocols have an anomaly rule.
    pub anomaly: Option<Box<AnomalyState>>,
    pub wants_anomaly: bool,
    /// Whether NEWS2 is kept up to date (below): always, except in an
    /// engine that only counts raises ([`TriageEngine::count_only`]) for a
    /// patient without a NEWS2 rule.
    ///
    /// [`TriageEngine::count_only`]: super::engine::TriageEngine::count_only
    pub tracks_news2: bool,
    /// A bit per metric ([`metric_index`]) whose trend levels are kept
    /// (see [`MetricHistory::level`]): every metric, except in an engine
    /// that only counts, where only the metrics a trend, baseline-deviation
    /// or anomaly rule of the patient reads.
    pub smoothed: u32,
    /// NEWS2 from the newest values, updated when a reading that can change
    /// it is recorded: every NEWS2 rule and every finding's score read it,
    /// and a wearable's heart rate arrives each minute.
    news2: News2Cache,
    /// The mean hourly NEWS2 of the last twelve hours, kept with it.
    sustained_news2: SustainedNews2,
    /// Raises held back by a covering alert (empty, unallocated, for
    /// nearly every patient).
    pub held: Vec<HeldFinding>,
    /// The newest finding of each rule with an alert (an index into
    /// `rules`), without the covered findings named on it: what a covering
    /// alert says when only what it covers changed.
    pub alerts: Vec<(usize, Finding)>,
}

impl PatientState {
    /// Notes `finding` of rule `rule` as the newest of its alert.
    pub fn note_alert(&mut self, rule: usize, finding: &Finding) {
        match self.alerts.iter_mut().find(|(index, _)| *index == rule) {
            Some((_, newest)) => newest.clone_from(finding),
            None => self.alerts.push((rule, finding.clone())),
        }
    }

    /// Forgets the alert of rule `rule`.
    pub fn forget_alert(&mut self, rule: usize) {
        self.alerts.retain(|(index, _)| *index != rule);
    }
}

impl PatientState {
    /// Returns an empty state for a patient following `rules`.
    pub fn new(rules: Vec<PatientRule>, spo2_scale_two: bool) -> PatientState {
        PatientState {
            histories: std::array::from_fn(|_| None),
            rules,
            spo2_scale_two,
            anomaly: None,
            wants_anomaly: false,
            tracks_news2: true,
            smoothed: u32::MAX,
            news2: News2Cache::empty(),
            sustained_news2: SustainedNews2::default(),
            held: Vec::new(),
            alerts: Vec::new(),
        }
    }

    /// Keeps the trend levels of every metric from now on, computing those
    /// of the readings held.
    pub fn smooth_all(&mut self) {
        self.smoothed = u32::MAX;
        for history in self.histories.iter_mut().flatten() {
            history.start_smoothing();
        }
    }

    /// Records one reading in its metric's history.
    /// The value is kept, and NEWS2 scored, as [`quantize`] returns it.
    pub fn record(&mut self, metric: Metric, ts: Timestamp, value: f64) -> Recorded {
        let value = quantize(value);
        let smooth = self.smoothed & (1 << metric_index(metric)) != 0;
        let recorded = self.histories[metric_index(metric)]
            .get_or_insert_with(|| {
                let mut history = Box::<MetricHistory>::default();
                history.smooth = smooth;
                history
            })
            .insert(ts, value);
        // A late reading changes no newest value, so no NEWS2 parameter.
        if self.tracks_news2
            && is_news2_metric(metric)
            && matches!(recorded, Recorded::Newest | Recorded::Duplicate)
        {
            let cache = self.news2;
            self.news2 = cache.after(self, metric, ts, value);
            let current = self.news2.current;
            if let Some(as_of) = current.as_of {
                self.sustained_news2
                    .record(as_of.micros(), current.score.total);
            }
        }
        recorded
    }

    /// Returns NEWS2 from the newest values; see
    /// [`current_news2`](super::rules::current_news2).
    pub fn news2(&self) -> CurrentNews2 {
        self.news2.current
    }

    /// Returns the mean hourly NEWS2 total of the last twelve hours; see
    /// [`sustained`](super::sustained).
    pub fn sustained_news2(&self) -> f64 {
        self.sustained_news2.mean()
    }

    /// Returns the history of `metric`.
    pub fn history(&self, metric: Metric) -> &MetricHistory {
        self.histories[metric_index(metric)]
            .as_deref()
            .unwrap_or(&NO_HISTORY)
    }

    /// Returns the approximate heap and inline size of this state in bytes.
    pub fn approximate_bytes(&self) -> usize {
        let histories =
            self.histories.iter().flatten().count() * std::mem::size_of::<MetricHistory>();
        std::mem::size_of::<PatientState>()
            + histories
            + self.rules.capacity() * std::mem::size_of::<PatientRule>()
            + self.held.capacity() * std::mem::size_of::<HeldFinding>()
            + self.alerts.capacity() * std::mem::size_of::<(usize, Finding)>()
            + self.anomaly.as_ref().map_or(0, |_| {
                std::mem::size_of::<AnomalyState>() + AnomalyState::heap_bytes()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(count: i64) -> Timestamp {
        Timestamp(count * 60_000_000)
    }

    #[test]
    fn readings_stay_in_event_time_order_when_late() {
        // Arrange
        let mut history = MetricHistory::default();
        history.insert(minutes(10), 1.0);
        history.insert(minutes(30), 3.0);

        // Act
        let recorded = history.insert(minutes(20), 2.0);

        // Assert
        assert_eq!(recorded, Recorded::Late);
        let values: Vec<f64> = history.iter().map(|(_, value)| value).collect();
        assert_eq!(values, vec![1.0, 2.0, 3.0]);
        assert_eq!(history.newest(), Some((minutes(30), 3.0)));
    }

    #[test]
    fn full_history_drops_the_oldest_and_refuses_older_readings() {
        // Arrange
        let mut history = MetricHistory::default();
        for index in 0..HISTORY_CAPACITY as i64 + 10 {
            history.insert(minutes(index * 10), index as f64);
        }

        // Act
        let too_old = history.insert(minutes(0), -1.0);
        let late = history.insert(minutes(105), 99.0);

        // Assert
        assert_eq!(too_old, Recorded::TooOld);
        assert_eq!(late, Recorded::Late);
        assert_eq!(history.len(), HISTORY_CAPACITY);
        let times: Vec<i64> = history.iter().map(|(ts, _)| ts.micros()).collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(history.newest().unwrap().1, (HISTORY_CAPACITY + 9) as f64);
    }

    #[test]
    fn values_with_three_decimals_are_kept_exactly_and_longer_ones_rounded() {
        // Arrange
        let stated: [&str; 6] = ["72.4", "36.85", "0.001", "-5.125", "97", "12345.678"];

        // Act
        let mut history = MetricHistory::default();
        for (minute, text) in (0..).zip(stated) {
            history.insert(minutes(minute * 120), text.parse().unwrap());
        }
        // 16 kPa in mmHg, as a unit conversion gives it.
        let converted = history.insert(minutes(2_000), 16.0 * 7.500_615_75);

        // Assert
        let kept: Vec<f64> = history.iter().map(|(_, value)| value).collect();
        let expected: Vec<f64> = stated.iter().map(|text| text.parse().unwrap()).collect();
        assert_eq!(kept[..stated.len()], expected[..]);
        assert_eq!(converted, Recorded::Newest);
        assert_eq!(history.newest().unwrap().1, 120.01);
        assert_eq!(
            history.level(history.len() - 1),
            120.01,
            "a spot reading is its own level"
        );
        assert_eq!(quantize(3.0e9), VALUE_LIMIT);
        assert_eq!(quantize(-3.0e9), -VALUE_LIMIT);
    }

    #[test]
    fn level_of_an_even_count_is_the_exact_mean_of_the_middle_two() {
        // Arrange: four readings within the smoothing window.
        let mut history = MetricHistory::default();

        // Act
        for (minute, value) in [(0, 70.1), (10, 70.2), (20, 90.0), (30, 60.0)] {
            history.insert(minutes(minute), value);
        }

        // Assert: the middle two of 60.0, 70.1, 70.2, 90.0.
        assert_eq!(history.level(3), 70.15);
        assert_eq!(history.level(1), 70.15, "the median of 70.1 and 70.2");
    }

    #[test]
    fn a_missing_time_takes_no_more_than_a_time() {
        // Arrange
        let mut time = MaybeTime::default();

        // Act
        let first = time.get_or_insert(minutes(5));
        let second = time.get_or_insert(minutes(9));

        // Assert
        assert_eq!(MaybeTime::default().get(), None);
        assert_eq!((first, second), (minutes(5), minutes(5)));
        assert_eq!(time.get(), Some(minutes(5)));
        assert_eq!(std::mem::size_of::<MaybeTime>(), 8);
        assert_eq!(std::mem::size_of::<RuleState>(), 64);
        assert_eq!(std::mem::size_of::<PatientRule>(), 72);
    }

    #[test]
    fn redelivered_reading_replaces_instead_of_duplicating() {
        // Arrange
        let mut history = MetricHistory::default();
        history.insert(minutes(10), 1.0);

        // Act
        let recorded = history.insert(minutes(10), 1.5);

        // Assert
        assert_eq!(recorded, Recorded::Duplicate);
        assert_eq!(history.len(), 1);
    }

    #[test]
    fn second_raise_within_the_window_is_a_second_contact() {
        // Arrange
        let mut state = RuleState::default();
        let day = 24 * 60 * 60_000_000;

        // Act
        let first = state.record_raise(Timestamp(0), 7 * day);
        let second = state.record_raise(Timestamp(2 * day), 7 * day);
        let much_later = state.record_raise(Timestamp(30 * day), 7 * day);

        // Assert
        assert!(!first);
        assert!(second);
        assert!(!much_later);
    }

    #[test]
    fn metric_index_is_the_position_in_all() {
        for (position, metric) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(metric_index(metric), position, "{metric:?}");
        }
    }

    /// The level as the trend rules define it, from the readings held.
    fn level_by_definition(history: &MetricHistory, index: usize) -> f64 {
        use super::super::rules::{TREND_SMOOTHING_MINUTES, TREND_SMOOTHING_READINGS};
        let (at, _) = history.get(index);
        let mut window: Vec<f64> = (0..=index)
            .rev()
            .take(TREND_SMOOTHING_READINGS)
            .map(|earlier| history.get(earlier))
            .take_while(|(ts, _)| at.micros() - ts.micros() <= TREND_SMOOTHING_MINUTES * 60_000_000)
            .map(|(_, value)| value)
            .collect();
        window.sort_by(f64::total_cmp);
        let middle = window.len() / 2;
        if window.len() % 2 == 1 {
            window[middle]
        } else {
            (window[middle - 1] + window[middle]) / 2.0
        }
    }

    proptest::proptest! {
        /// Any value stated with at most three decimals, as devices and
        /// thresholds state them, is the same `f64` after [`quantize`].
        #[test]
        fn any_value_of_at_most_three_decimals_is_kept_exactly(
            thousandths in -1_000_000_000i64..=1_000_000_000
        ) {
            let sign = if thousandths < 0 { "-" } else { "" };
            let text = format!("{sign}{}.{:03}", thousandths.abs() / 1000, thousandths.abs() % 1000);
            let value: f64 = text.parse().unwrap();
            proptest::prop_assert_eq!(quantize(value), value, "{}", text);
        }

        /// Minute-rate and spot readings, some late, some redelivered: the
        /// stored levels equal the definition (below capacity, where no
        /// reading has been dropped).
        #[test]
        fn stored_levels_equal_the_median_of_the_hour_after_any_insert_order(
            readings in proptest::collection::vec((0i64..600, 60.0f64..120.0), 1..HISTORY_CAPACITY)
        ) {
            let mut history = MetricHistory::default();
            for (minute, value) in readings {
                history.insert(minutes(minute), value);
                for index in 0..history.len() {
                    // The stored level is the exact median of the
                    // thousandths; the definition's mean of two `f64`s may
                    // round its last bit the other way.
                    let (stored, defined) = (history.level(index), level_by_definition(&history, index));
                    proptest::prop_assert!((stored - defined).abs() < 1e-9, "{stored} against {defined}");
                }
            }
        }

        /// Whatever order and mix of vital signs arrives, the NEWS2 kept up
        /// to date equals NEWS2 scored afresh from the histories.
        #[test]
        fn kept_news2_equals_news2_scored_from_the_histories(
            scale_two in proptest::bool::ANY,
            readings in proptest::collection::vec((0usize..7, 0i64..4_000, 0.0f64..1.0), 1..120)
        ) {
            let metrics = [
                (Metric::HeartRate, 30.0, 150.0),
                (Metric::BpSystolic, 70.0, 230.0),
                (Metric::BodyTemperature, 34.5, 40.5),
                (Metric::RespiratoryRate, 6.0, 30.0),
                (Metric::Spo2, 80.0, 100.0),
                (Metric::SupplementalOxygen, 0.0, 1.0),
                (Metric::Consciousness, 0.0, 4.0),
            ];
            let mut patient = PatientState::new(Vec::new(), scale_two);
            for (which, minute, share) in readings {
                let (metric, low, high) = metrics[which];
                let value = (low + share * (high - low)).round();
                patient.record(metric, minutes(minute * 5), value);
                proptest::prop_assert_eq!(
                    patient.news2(),
                    super::super::rules::news2_from_histories(&patient)
                );
            }
        }
    }
}
