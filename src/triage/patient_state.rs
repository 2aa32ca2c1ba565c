//! Per-patient triage state: a fixed-capacity, event-time-ordered history of
//! recent readings per metric, and the state of each rule the patient follows.
//!
//! In: readings one at a time ([`PatientState::record`]). Out: the ordered
//! history the rules, baselines and NEWS2 read. Owned by the
//! [`TriageEngine`](super::engine::TriageEngine); nothing to do on shutdown
//! (DESIGN §1 rebuilds it from the database at start-up).
//!
//! Every buffer is preallocated when the patient is registered, so recording a
//! reading allocates nothing. Late readings (older than the newest reading of
//! their metric, e.g. from a gateway that was offline) are inserted in order
//! and reported as late: they count for history, baselines and trends, but
//! "current" threshold evaluation keeps using the newest reading (DESIGN §1).

use crate::domain::{Metric, Timestamp};

/// Readings kept per metric. 64 spot readings cover two weeks of a metric
/// measured four times a day, the personal-baseline window of
/// [`baseline`](super::baseline); a wearable sending every few minutes keeps
/// its last few hours, which is enough for pending durations and trends of
/// spot-measured metrics.
pub const HISTORY_CAPACITY: usize = 64;

/// Raise times kept per rule for the "second contact" alarm signal.
pub const RAISE_HISTORY: usize = 4;

/// Returns the position of `metric` in [`Metric::ALL`].
pub fn metric_index(metric: Metric) -> usize {
    Metric::ALL
        .iter()
        .position(|candidate| *candidate == metric)
        .unwrap_or(0)
}

/// A ring buffer of (event time, value) pairs kept in event-time order.
#[derive(Debug, Clone)]
pub struct MetricHistory {
    times: [Timestamp; HISTORY_CAPACITY],
    values: [f64; HISTORY_CAPACITY],
    start: usize,
    len: usize,
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
        values: [0.0; HISTORY_CAPACITY],
        start: 0,
        len: 0,
    };
}

/// What `history` returns for a metric the patient has never sent.
static NO_HISTORY: MetricHistory = MetricHistory::EMPTY;

impl MetricHistory {
    /// Returns the number of readings held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns true when no reading is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, index: usize) -> usize {
        (self.start + index) % HISTORY_CAPACITY
    }

    /// Returns the `index`-th reading, oldest first.
    pub fn get(&self, index: usize) -> (Timestamp, f64) {
        debug_assert!(index < self.len, "index within the history");
        let slot = self.slot(index);
        (self.times[slot], self.values[slot])
    }

    /// Returns the newest reading.
    pub fn newest(&self) -> Option<(Timestamp, f64)> {
        (self.len > 0).then(|| self.get(self.len - 1))
    }

    /// Returns the readings oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Timestamp, f64)> + '_ {
        (0..self.len).map(|index| self.get(index))
    }

    fn set(&mut self, index: usize, ts: Timestamp, value: f64) {
        let slot = self.slot(index);
        self.times[slot] = ts;
        self.values[slot] = value;
    }

    /// Inserts a reading at its event time, dropping the oldest when full.
    pub fn insert(&mut self, ts: Timestamp, value: f64) -> Recorded {
        let newest = self.newest().map(|(newest_ts, _)| newest_ts);
        if newest.is_none_or(|newest_ts| ts > newest_ts) {
            if self.len < HISTORY_CAPACITY {
                self.len += 1;
            } else {
                self.start = (self.start + 1) % HISTORY_CAPACITY;
            }
            self.set(self.len - 1, ts, value);
            return Recorded::Newest;
        }
        // First position whose time is not before `ts`.
        let mut position = self.iter().take_while(|(other, _)| *other < ts).count();
        if position < self.len && self.get(position).0 == ts {
            self.set(position, ts, value);
            return Recorded::Duplicate;
        }
        if self.len == HISTORY_CAPACITY {
            if position == 0 {
                return Recorded::TooOld;
            }
            self.start = (self.start + 1) % HISTORY_CAPACITY;
            self.len -= 1;
            position -= 1;
        }
        self.len += 1;
        for index in (position + 1..self.len).rev() {
            let (moved_ts, moved_value) = self.get(index - 1);
            self.set(index, moved_ts, moved_value);
        }
        self.set(position, ts, value);
        Recorded::Late
    }
}

/// Per-(patient, rule) state: whether the rule's alert is active, since when
/// its condition has held, and when it was last raised.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleState {
    pub active: bool,
    /// Event time of the first reading of the current run meeting the condition.
    pub pending_since: Option<Timestamp>,
    /// The most recent raise times, newest last (unused slots are `None`).
    pub raised_at: [Option<Timestamp>; RAISE_HISTORY],
    /// Score of the last finding while active, for ranking snapshots.
    pub last_score: f64,
    /// The current episode was raised as a second contact.
    pub second_contact: bool,
}

impl RuleState {
    /// Records a raise and returns whether it is a second contact: an earlier
    /// raise of the same rule within `window_micros` before `ts`.
    pub fn record_raise(&mut self, ts: Timestamp, window_micros: i64) -> bool {
        let second_contact = self
            .raised_at
            .iter()
            .flatten()
            .any(|earlier| *earlier < ts && ts.micros() - earlier.micros() <= window_micros);
        self.raised_at.rotate_left(1);
        self.raised_at[RAISE_HISTORY - 1] = Some(ts);
        second_contact
    }
}

use super::anomaly::AnomalyState;

/// One rule a patient follows: indices into the engine's protocol table,
/// and into its table of personal settings ([`NO_PERSONAL`] when the
/// patient has none for this rule).
#[derive(Debug, Clone, Copy)]
pub struct PatientRule {
    pub protocol: usize,
    pub rule: usize,
    pub personal: u32,
    pub state: RuleState,
}

/// [`PatientRule::personal`] of a rule the patient follows as the protocol says.
pub const NO_PERSONAL: u32 = u32::MAX;

/// Everything triage remembers about one patient.
#[derive(Debug, Clone)]
pub struct PatientState {
    /// Allocated on a metric's first reading: most patients send four to six
    /// of the ten metrics, and a history is about 1 KiB.
    histories: [Option<Box<MetricHistory>>; Metric::ALL.len()],
    pub rules: Vec<PatientRule>,
    /// NEWS2 SpO2 scale 2 applies when any protocol of the patient prescribes it.
    pub spo2_scale_two: bool,
    /// Running multivariate statistics, allocated on the first vital sign
    /// of a patient whose protocols have an anomaly rule.
    pub anomaly: Option<Box<AnomalyState>>,
    pub wants_anomaly: bool,
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
        }
    }

    /// Records one reading in its metric's history.
    pub fn record(&mut self, metric: Metric, ts: Timestamp, value: f64) -> Recorded {
        self.histories[metric_index(metric)]
            .get_or_insert_with(Box::default)
            .insert(ts, value)
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
}
