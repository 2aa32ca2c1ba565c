//! Missed measurements: the decision behind the missed-measurement sweep, for
//! a `missed_measurement` rule (`metric` due each local day by `due_by`).
//!
//! In: one patient's rule as a [`Schedule`], the clock (`now`, passed in),
//! the care teams' time zone, the rule's open alert if any, and the
//! [`Facts`] the sweep read from the store for the windows [`wanted`] named.
//! Out: a [`MissedDecision`]. Pure: no IO and no clock of its own, so every
//! case is tested with chosen times.
//!
//! # Choices
//!
//! - **Local days.** A day is a calendar day in the time zone (Drenthe's
//!   teams: Europe/Amsterdam). A due time that does not exist (the spring
//!   DST gap) falls due at the first instant after the gap; one that
//!   happens twice (autumn) is due at the first.
//! - **Missing.** After the due time, the patient has no reading of the
//!   metric with an event time from the local day's start up to now.
//!   Event time, not arrival: a weight taken at 08:00 and uploaded at 11:00
//!   counts for its morning.
//! - **Cause.** `no_device` when the patient has no device whose profile
//!   measures the metric; `device_silent` when none of those devices was
//!   heard from (a status heartbeat, or the arrival of any reading) since the
//!   previous day's due time; otherwise `not_measured`: a device is alive
//!   and the patient did not measure. "Since the previous due time" spans a
//!   whole day of a device's rhythm (a scale used each morning, a gateway
//!   heartbeat every few hours) without blaming today on last week. The
//!   cause is the one when the alert is raised.
//! - **One alert.** While a missed alert is open, a next missed day carries
//!   it forward (its `day` moves on, `first_missed_day` stays) rather than
//!   opening a second alert for the same rule.
//! - **Late upload.** When readings of the metric with event times in the
//!   open alert's day arrive, the system resolves the alert: `late_upload`
//!   when the earliest of them was taken before the alert was raised (it
//!   existed but had not reached us), `measured_late` when the patient
//!   measured after the alert.
//! - **Restart safety.** The day is in the alert's explanation, so an open
//!   alert for today is never raised again; and an alert resolved after
//!   today's due time means today was dealt with (by a nurse or by a late
//!   upload), so the sweep leaves today alone.

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::{Metric, Timestamp};
use crate::protocols::{parse_hhmm, Rule, RuleKind};

/// The time zone of the care teams in Drenthe.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Europe::Amsterdam;

/// Returns the local calendar date of `ts` in `tz`.
pub fn local_date(ts: Timestamp, tz: Tz) -> NaiveDate {
    ts.to_datetime().with_timezone(&tz).date_naive()
}

/// Returns the instant `minutes` after local midnight on `date` in `tz`. A
/// local time in a DST gap moves forward to the first instant after it; an
/// ambiguous one (autumn) is the earlier instant.
pub fn local_instant(date: NaiveDate, minutes: u32, tz: Tz) -> Timestamp {
    let time =
        NaiveTime::from_hms_opt(minutes / 60 % 24, minutes % 60, 0).unwrap_or(NaiveTime::MIN);
    let mut local = date.and_time(time);
    // DST gaps are at most an hour (two in a few historical zones); step
    // forward in quarter hours until the local time exists.
    for _ in 0..12 {
        if let Some(instant) = tz.from_local_datetime(&local).earliest() {
            return Timestamp::from_datetime(instant.to_utc());
        }
        local += Duration::minutes(15);
    }
    Timestamp::from_datetime(tz.from_utc_datetime(&local).to_utc())
}

/// A missed-measurement rule, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub metric: Metric,
    /// Minutes after local midnight by which the metric is due.
    pub due_minutes: u32,
}

impl Schedule {
    /// Returns the schedule of a missed-measurement rule (`None` for other kinds).
    pub fn of(rule: &Rule) -> Option<Schedule> {
        if rule.kind != RuleKind::MissedMeasurement {
            return None;
        }
        Some(Schedule {
            metric: rule.metric?,
            due_minutes: parse_hhmm(rule.due_by.as_deref()?)?,
        })
    }

    /// Returns when the metric is due on `date`.
    pub fn due_at(&self, date: NaiveDate, tz: Tz) -> Timestamp {
        local_instant(date, self.due_minutes, tz)
    }
}

/// Why a scheduled measurement is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedCause {
    /// The patient has no device that measures the metric.
    NoDevice,
    /// No status or reading from any such device since the previous due time.
    DeviceSilent,
    /// A device is alive, but no reading of the metric was taken.
    NotMeasured,
}

impl MissedCause {
    pub const fn code(self) -> &'static str {
        match self {
            MissedCause::NoDevice => "no_device",
            MissedCause::DeviceSilent => "device_silent",
            MissedCause::NotMeasured => "not_measured",
        }
    }
}

/// How the measurement of an open missed alert's day turned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Taken before the alert was raised, uploaded after.
    LateUpload,
    /// Taken after the alert was raised.
    MeasuredLate,
}

/// The rule's unresolved missed-measurement alert, as the sweep reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenMissed {
    /// The (latest) day it says was missed.
    pub day: NaiveDate,
    pub first_missed_day: NaiveDate,
    /// When it was raised.
    pub opened_at: Timestamp,
}

/// A half-open window of event time, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    pub fn contains(&self, ts: Timestamp) -> bool {
        self.from <= ts && ts < self.to
    }
}

/// Today's check of a rule whose due time has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TodayCheck {
    pub day: NaiveDate,
    pub due_at: Timestamp,
    /// Readings of the metric in here count for today (the day's start up to now).
    pub readings: Window,
    /// A device heard from at or after this (the previous due time) is alive.
    pub heard_since: Timestamp,
}

/// What the sweep must read from the store for one rule of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// Readings of the metric in the open alert's day, which resolve it.
    pub alert_day: Option<Window>,
    /// Today's check: due, and not raised for today yet.
    pub today: Option<TodayCheck>,
}

impl Wanted {
    /// Returns whether the store need not be asked anything.
    pub fn is_empty(&self) -> bool {
        self.alert_day.is_none() && self.today.is_none()
    }
}

/// Returns what the sweep must look up for `schedule` at `now`.
pub fn wanted(schedule: &Schedule, now: Timestamp, tz: Tz, open: Option<&OpenMissed>) -> Wanted {
    let day_window = |day: NaiveDate| Window {
        from: local_instant(day, 0, tz),
        to: local_instant(day.succ_opt().unwrap_or(day), 0, tz),
    };
    let today = local_date(now, tz);
    let due_at = schedule.due_at(today, tz);
    let raised_today = open.is_some_and(|open| open.day >= today);
    let check = (now >= due_at && !raised_today).then(|| TodayCheck {
        day: today,
        due_at,
        readings: Window {
            from: local_instant(today, 0, tz),
            to: now.plus_micros(1),
        },
        heard_since: schedule.due_at(today.pred_opt().unwrap_or(today), tz),
    });
    Wanted {
        alert_day: open.map(|open| day_window(open.day)),
        today: check,
    }
}

/// What the store knows, read by the sweep for the windows of a [`Wanted`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Event time of the earliest reading of the metric in `Wanted::alert_day`.
    pub first_on_alert_day: Option<Timestamp>,
    /// Event time of the earliest reading of the metric in today's window.
    pub first_today: Option<Timestamp>,
    /// For each of the patient's devices able to measure the metric: when it
    /// was last heard from (a heartbeat or a reading's arrival), if ever.
    pub devices_last_heard: Vec<Option<Timestamp>>,
    /// When the rule's latest alert was resolved, if none is unresolved.
    pub resolved_at: Option<Timestamp>,
}

/// A measurement found missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    pub day: NaiveDate,
    pub first_missed_day: NaiveDate,
    pub due_at: Timestamp,
    pub cause: MissedCause,
    /// The last time any device able to measure the metric was heard from.
    pub last_heard: Option<Timestamp>,
}

/// What the sweep does for one rule of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedDecision {
    Nothing,
    /// Resolve the open alert: its day's measurement arrived.
    Resolve {
        arrival: Arrival,
        reading_ts: Timestamp,
    },
    /// Raise a missed-measurement alert, or carry the open one forward.
    Raise(Missed),
}

/// Decides, from what [`wanted`] asked for and the store answered.
pub fn decide(wanted: &Wanted, open: Option<&OpenMissed>, facts: &Facts) -> MissedDecision {
    if let (Some(open), Some(reading_ts)) = (open, facts.first_on_alert_day) {
        let arrival = if reading_ts < open.opened_at {
            Arrival::LateUpload
        } else {
            Arrival::MeasuredLate
        };
        return MissedDecision::Resolve {
            arrival,
            reading_ts,
        };
    }
    let Some(today) = wanted.today else {
        return MissedDecision::Nothing;
    };
    if facts.first_today.is_some() {
        return MissedDecision::Nothing;
    }
    if open.is_none() && facts.resolved_at.is_some_and(|at| at >= today.due_at) {
        return MissedDecision::Nothing;
    }
    let last_heard = facts.devices_last_heard.iter().flatten().max().copied();
    let cause = if facts.devices_last_heard.is_empty() {
        MissedCause::NoDevice
    } else if last_heard.is_some_and(|heard| heard >= today.heard_since) {
        MissedCause::NotMeasured
    } else {
        MissedCause::DeviceSilent
    };
    MissedDecision::Raise(Missed {
        day: today.day,
        first_missed_day: open.map_or(today.day, |open| open.first_missed_day),
        due_at: today.due_at,
        cause,
        last_heard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("test time parses")
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("test date parses")
    }

    /// Weight due by 10:00 local (09:00 UTC in November, CET).
    const WEIGHT: Schedule = Schedule {
        metric: Metric::BodyWeight,
        due_minutes: 600,
    };

    /// One patient with one scale, as the store would see it at any moment.
    #[derive(Default)]
    struct World {
        /// (event time, arrival time) of weight readings.
        readings: Vec<(Timestamp, Timestamp)>,
        /// Arrival times of the scale's status heartbeats.
        heartbeats: Vec<Timestamp>,
        no_scale: bool,
        resolved_at: Option<Timestamp>,
    }

    impl World {
        /// Answers what the sweep asks at `now`, seeing only what arrived by then.
        fn facts(&self, wanted: &Wanted, now: Timestamp) -> Facts {
            let arrived = || self.readings.iter().filter(|(_, got)| *got <= now);
            let first_in = |window: Option<Window>| {
                let window = window?;
                arrived()
                    .map(|(ts, _)| *ts)
                    .filter(|ts| window.contains(*ts))
                    .min()
            };
            let heard = arrived()
                .map(|(_, got)| *got)
                .chain(self.heartbeats.iter().copied().filter(|got| *got <= now))
                .max();
            Facts {
                first_on_alert_day: first_in(wanted.alert_day),
                first_today: first_in(wanted.today.map(|check| check.readings)),
                devices_last_heard: if self.no_scale { vec![] } else { vec![heard] },
                resolved_at: self.resolved_at,
            }
        }

        fn sweep(&self, now: Timestamp, open: Option<&OpenMissed>) -> MissedDecision {
            let wanted = wanted(&WEIGHT, now, DEFAULT_TIME_ZONE, open);
            decide(&wanted, open, &self.facts(&wanted, now))
        }
    }

    fn raised(decision: MissedDecision) -> Missed {
        match decision {
            MissedDecision::Raise(missed) => missed,
            other => panic!("expected a raise, got {other:?}"),
        }
    }

    #[test]
    fn missed_measurement_the_three_causes_are_told_apart() {
        // Arrange: yesterday morning's weight arrived normally.
        let mut silent = World::default();
        silent
            .readings
            .push((at("2026-11-22T07:10:00Z"), at("2026-11-22T07:11:00Z")));
        let mut alive = World {
            heartbeats: vec![at("2026-11-23T06:00:00Z")],
            ..World::default()
        };
        alive.readings = silent.readings.clone();
        let sweep_at = at("2026-11-23T09:05:00Z");

        // Act + Assert 1: nothing heard since yesterday's due time: the device is silent.
        let missed = raised(silent.sweep(sweep_at, None));
        assert_eq!(missed.cause, MissedCause::DeviceSilent);
        assert_eq!(missed.day, date("2026-11-23"));
        assert_eq!(missed.due_at, at("2026-11-23T09:00:00Z"));
        assert_eq!(missed.last_heard, Some(at("2026-11-22T07:11:00Z")));

        // 2: a heartbeat this morning but no weight: the patient did not measure.
        let missed = raised(alive.sweep(sweep_at, None));
        assert_eq!(missed.cause, MissedCause::NotMeasured);
        assert_eq!(missed.last_heard, Some(at("2026-11-23T06:00:00Z")));

        // 3: the silent scale's gateway uploads this morning's 08:30 weight at
        // 11:00: the open alert is resolved as a late upload.
        let open = OpenMissed {
            day: missed.day,
            first_missed_day: missed.day,
            opened_at: sweep_at,
        };
        silent
            .readings
            .push((at("2026-11-23T07:30:00Z"), at("2026-11-23T10:00:00Z")));
        assert_eq!(
            silent.sweep(at("2026-11-23T09:59:00Z"), Some(&open)),
            MissedDecision::Nothing,
            "not yet arrived"
        );
        assert_eq!(
            silent.sweep(at("2026-11-23T10:01:00Z"), Some(&open)),
            MissedDecision::Resolve {
                arrival: Arrival::LateUpload,
                reading_ts: at("2026-11-23T07:30:00Z")
            }
        );
        // …whereas the live scale's patient weighing after the alert measured late.
        alive
            .readings
            .push((at("2026-11-23T10:30:00Z"), at("2026-11-23T10:30:05Z")));
        assert_eq!(
            alive.sweep(at("2026-11-23T10:31:00Z"), Some(&open)),
            MissedDecision::Resolve {
                arrival: Arrival::MeasuredLate,
                reading_ts: at("2026-11-23T10:30:00Z")
            }
        );
    }

    #[test]
    fn nothing_is_raised_before_the_due_time_or_when_measured_in_time() {
        let mut world = World::default();
        assert_eq!(
            world.sweep(at("2026-11-23T08:59:00Z"), None),
            MissedDecision::Nothing
        );
        // Measured at 07:00 local, which is still "today" though yesterday in UTC.
        world
            .readings
            .push((at("2026-11-22T23:30:00Z"), at("2026-11-22T23:30:01Z")));
        assert_eq!(
            world.sweep(at("2026-11-23T09:30:00Z"), None),
            MissedDecision::Nothing
        );
    }

    #[test]
    fn a_patient_without_a_device_for_the_metric_is_told_so() {
        let world = World {
            no_scale: true,
            ..World::default()
        };
        let missed = raised(world.sweep(at("2026-11-23T12:00:00Z"), None));
        assert_eq!(missed.cause, MissedCause::NoDevice);
        assert_eq!(missed.last_heard, None);
    }

    #[test]
    fn the_same_day_is_never_raised_twice() {
        // Arrange: raised today at 09:05.
        let world = World::default();
        let open = OpenMissed {
            day: date("2026-11-23"),
            first_missed_day: date("2026-11-23"),
            opened_at: at("2026-11-23T09:05:00Z"),
        };
        // Act + Assert: after a restart the open alert for today stands.
        let wanted = wanted(
            &WEIGHT,
            at("2026-11-23T15:00:00Z"),
            DEFAULT_TIME_ZONE,
            Some(&open),
        );
        assert!(wanted.today.is_none());
        assert_eq!(
            world.sweep(at("2026-11-23T15:00:00Z"), Some(&open)),
            MissedDecision::Nothing
        );
        // A nurse resolved it at 11:00: today stays dealt with.
        let resolved = World {
            resolved_at: Some(at("2026-11-23T10:00:00Z")),
            ..World::default()
        };
        assert_eq!(
            resolved.sweep(at("2026-11-23T15:00:00Z"), None),
            MissedDecision::Nothing
        );
        // An alert resolved before today's due time does not cover today.
        let earlier = World {
            resolved_at: Some(at("2026-11-23T08:00:00Z")),
            ..World::default()
        };
        assert_eq!(
            raised(earlier.sweep(at("2026-11-23T15:00:00Z"), None)).day,
            date("2026-11-23")
        );
    }

    #[test]
    fn an_open_alert_is_carried_to_the_next_missed_day() {
        let world = World::default();
        let open = OpenMissed {
            day: date("2026-11-22"),
            first_missed_day: date("2026-11-21"),
            opened_at: at("2026-11-21T09:05:00Z"),
        };
        // Before today's due time nothing changes; after it, the alert moves on.
        assert_eq!(
            world.sweep(at("2026-11-23T08:00:00Z"), Some(&open)),
            MissedDecision::Nothing
        );
        let missed = raised(world.sweep(at("2026-11-23T09:01:00Z"), Some(&open)));
        assert_eq!(missed.day, date("2026-11-23"));
        assert_eq!(missed.first_missed_day, date("2026-11-21"));
    }

    #[test]
    fn due_times_follow_daylight_saving_time() {
        // Summer (CEST, UTC+2) and winter (CET, UTC+1).
        assert_eq!(
            WEIGHT.due_at(date("2026-07-01"), DEFAULT_TIME_ZONE),
            at("2026-07-01T08:00:00Z")
        );
        assert_eq!(
            WEIGHT.due_at(date("2026-12-01"), DEFAULT_TIME_ZONE),
            at("2026-12-01T09:00:00Z")
        );
        // 29 March 2026: 02:00–03:00 does not exist; 02:30 falls due at 03:00 CEST.
        assert_eq!(
            local_instant(date("2026-03-29"), 150, DEFAULT_TIME_ZONE),
            at("2026-03-29T01:00:00Z")
        );
        // 25 October 2026: 02:30 happens twice; due at the first (CEST).
        assert_eq!(
            local_instant(date("2026-10-25"), 150, DEFAULT_TIME_ZONE),
            at("2026-10-25T00:30:00Z")
        );
        // The day of the change has 23 hours: the window of "today" knows it.
        let spring = wanted(&WEIGHT, at("2026-03-29T12:00:00Z"), DEFAULT_TIME_ZONE, None)
            .today
            .unwrap();
        assert_eq!(spring.readings.from, at("2026-03-28T23:00:00Z"));
        assert_eq!(spring.heard_since, at("2026-03-28T09:00:00Z"));
        assert_eq!(spring.due_at, at("2026-03-29T08:00:00Z"));
    }
}
