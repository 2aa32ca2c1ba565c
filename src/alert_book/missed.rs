//! The missed-measurement sweep: a clock-driven task that raises an alert
//! when a patient's scheduled measurement is missing after its due time,
//! with the cause, and resolves it when the measurement turns up after all.
//!
//! Each sweep reads the registry and the unresolved alerts, and for every
//! `missed_measurement` rule of every patient asks [`schedule::wanted`]
//! which facts it needs, reads those from the store, and acts on
//! [`schedule::decide`] (all choices are documented there). The alert has
//! the rule's priority and is scored like a clinical finding of it, whatever
//! the cause: the protocol asked for the measurement. The alert's key
//! is the rule's (`{protocol}/{rule}`), so the protocol's response targets
//! apply and the one-open-alert index holds; the day it concerns is in its
//! explanation:
//!
//! ```json
//! {"factors": [{"factor": "missed_measurement", "metric": "body_weight", "due_by": "10:00",
//!   "day": "2026-11-23", "first_missed_day": "2026-11-23", "cause": "device_silent",
//!   "due_at": 1795424400000000, "heard_since": 1795338000000000, "last_heard": null,
//!   "devices": ["scale-0042"]}]}
//! ```
//!
//! Cost: a rule whose measurement was found (or whose day was dealt with)
//! is remembered for the rest of the local day, so after the first sweep past
//! a due time only the missing ones and the open alerts are looked up again.
//!
//! Shutdown: the loop ends on the shutdown token; a sweep in progress ends
//! first. Nothing is held in memory that the store does not also have.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Alert, AutoResolution, NewAlert};
use crate::domain::{DeviceId, Metric, Timestamp};
use crate::profiles::Profiles;
use crate::protocols::catalog::Catalog;
use crate::protocols::{Protocol, Rule};
use crate::store::RuleOverride;
use crate::store::{Patient, Store, StoreError};
use crate::triage::schedule::{
    self, local_date, Arrival, Facts, Missed, MissedDecision, OpenMissed, Schedule,
};
use crate::triage::urgency::{self, NtsLevel};
use crate::validate::DeviceRecord;

/// Patients checked between two yields of a sweep.
const SWEEP_YIELD_EVERY: usize = 64;
/// Readings measured this long before the liveness window still show, by
/// their arrival, that a device is alive; the bound keeps the lookup on the
/// readings key. A gateway that buffered for longer sends a status anyway.
const LATE_READING_DAYS: i64 = 7;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Alerts opened.
    pub raised: usize,
    /// Open alerts carried forward to a next missed day.
    pub carried: usize,
    /// Alerts resolved because the measurement arrived.
    pub resolved: usize,
}

/// The sweeper; see the module docs.
pub struct MissedMeasurementSweeper {
    store: Arc<dyn Store>,
    protocols: Arc<Catalog>,
    profiles: Arc<Profiles>,
    time_zone: Tz,
    /// (patient, rule key) → the local day whose check is settled
    /// (measured, or dealt with after the due time).
    settled: HashMap<(Uuid, String), NaiveDate>,
}

impl MissedMeasurementSweeper {
    pub fn new(
        store: Arc<dyn Store>,
        protocols: Arc<Catalog>,
        profiles: Arc<Profiles>,
        time_zone: Tz,
    ) -> Self {
        MissedMeasurementSweeper {
            store,
            protocols,
            profiles,
            time_zone,
            settled: HashMap::new(),
        }
    }

    /// Sweeps every `interval` until `shutdown` fires.
    pub async fn run(mut self, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
            match self.sweep(Timestamp::now()).await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(
                        raised = report.raised,
                        carried = report.carried,
                        resolved = report.resolved,
                        "missed-measurement sweep"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "missed-measurement sweep failed"),
            }
        }
    }

    /// Checks every missed-measurement rule of every patient as of `now`.
    ///
    /// Yields to other tasks every [`SWEEP_YIELD_EVERY`] patients.
    ///
    /// # Errors
    /// Returns a store error when the registry or the alerts cannot be read;
    /// what was done before it stays done, and the next sweep goes on.
    pub async fn sweep(&mut self, now: Timestamp) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let today = local_date(now, self.time_zone);
        self.settled
            .retain(|_, day| day.succ_opt().is_some_and(|next| next >= today));
        let patients = self.store.list_patients().await?;
        if !patients.iter().any(|patient| self.has_schedule(patient)) {
            return Ok(report);
        }
        let mut devices_of: HashMap<Uuid, Vec<DeviceRecord>> = HashMap::new();
        for device in self.store.list_devices().await? {
            devices_of
                .entry(device.patient_id)
                .or_default()
                .push(device);
        }
        let mut open_alerts: HashMap<(Uuid, String), Alert> = HashMap::new();
        for alert in self.store.unresolved_alerts().await? {
            open_alerts.insert((alert.patient_id, alert.rule_key.clone()), alert);
        }
        // Personal schedules ("weight by 08:30 for her"): the version valid now.
        let mut personal: HashMap<(Uuid, String), RuleOverride> = HashMap::new();
        for version in self.store.rule_overrides_after(0).await? {
            let valid_now =
                version.valid_from <= now && version.valid_until.is_none_or(|until| now < until);
            if valid_now {
                personal.insert((version.patient_id, version.rule_key.clone()), version);
            }
        }
        let protocols = self.protocols.current();
        for (index, patient) in patients.iter().enumerate() {
            // Thousands of patients without a due measurement pass without
            // an await; let the requests on this worker thread go first now
            // and then.
            if index % SWEEP_YIELD_EVERY == SWEEP_YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
            let devices = devices_of.get(&patient.id).map_or(&[][..], Vec::as_slice);
            for protocol_id in &patient.protocols {
                let Some(protocol) = protocols.get(protocol_id) else {
                    continue;
                };
                for protocol_rule in &protocol.rules {
                    let rule_key = format!("{protocol_id}/{}", protocol_rule.id);
                    let rule = match personal.get(&(patient.id, rule_key.clone())) {
                        Some(version) if !version.settings.enabled => continue,
                        Some(version) => Cow::Owned(protocol_rule.with_settings(&version.settings)),
                        None => Cow::Borrowed(protocol_rule),
                    };
                    let rule = rule.as_ref();
                    let Some(schedule) = Schedule::of(rule) else {
                        continue;
                    };
                    let open_alert = open_alerts.get(&(patient.id, rule_key.clone()));
                    let check = RuleCheck {
                        patient_id: patient.id,
                        protocol,
                        rule,
                        rule_key,
                        schedule,
                        devices,
                    };
                    self.check(&check, open_alert, now, &mut report).await?;
                }
            }
        }
        Ok(report)
    }

    fn has_schedule(&self, patient: &Patient) -> bool {
        patient.protocols.iter().any(|id| {
            self.protocols
                .current()
                .get(id)
                .is_some_and(|protocol| protocol.rules.iter().any(|r| Schedule::of(r).is_some()))
        })
    }

    /// Checks one rule of one patient and acts on the decision.
    async fn check(
        &mut self,
        check: &RuleCheck<'_>,
        open_alert: Option<&Alert>,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let open = open_alert.and_then(open_missed);
        let settled_key = (check.patient_id, check.rule_key.clone());
        let mut wanted = schedule::wanted(&check.schedule, now, self.time_zone, open.as_ref());
        if let Some(today) = wanted.today {
            if self.settled.get(&settled_key) == Some(&today.day) {
                wanted.today = None;
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let metric = check.schedule.metric;
        let all_devices: Vec<DeviceId> =
            check.devices.iter().map(|d| d.device_id.clone()).collect();
        let mut facts = Facts::default();
        if let Some(window) = wanted.alert_day {
            facts.first_on_alert_day = self
                .store
                .first_reading_between(
                    check.patient_id,
                    &all_devices,
                    metric,
                    window.from,
                    window.to,
                )
                .await?;
        }
        if let Some(today) = wanted.today {
            facts.first_today = self
                .store
                .first_reading_between(
                    check.patient_id,
                    &all_devices,
                    metric,
                    today.readings.from,
                    today.readings.to,
                )
                .await?;
            if facts.first_today.is_none() {
                if open.is_none() {
                    facts.resolved_at = self
                        .store
                        .last_resolution(check.patient_id, &check.rule_key)
                        .await?;
                }
                facts.devices_last_heard = self
                    .last_heard(check.devices, metric, today.heard_since)
                    .await?;
            }
        }
        match schedule::decide(&wanted, open.as_ref(), &facts) {
            MissedDecision::Nothing => {
                if let Some(today) = wanted.today {
                    self.settled.insert(settled_key, today.day);
                }
            }
            MissedDecision::Resolve {
                arrival,
                reading_ts,
            } => {
                if let (Some(alert), Some(open)) = (open_alert, open) {
                    if resolve(&self.store, alert, arrival, reading_ts, open.day, now).await? {
                        report.resolved += 1;
                    }
                }
            }
            MissedDecision::Raise(missed) => {
                let heard_since = wanted.today.map_or(now, |today| today.heard_since);
                let alert = new_alert(check, &missed, heard_since, now);
                let (stored, created) = self.store.raise_alert(&alert).await?;
                if created {
                    report.raised += 1;
                    tracing::info!(alert_id = %stored.id, patient_id = %check.patient_id, rule = %check.rule_key, cause = missed.cause.code(), "missed measurement");
                } else {
                    report.carried += 1;
                }
            }
        }
        Ok(())
    }

    /// Returns, per active device of the patient able to measure `metric`,
    /// when it was last heard from at or after `since` (`None`: not since).
    async fn last_heard(
        &self,
        devices: &[DeviceRecord],
        metric: Metric,
        since: Timestamp,
    ) -> Result<Vec<Option<Timestamp>>, StoreError> {
        let mut capable = Vec::new();
        let mut metrics: Vec<Metric> = Vec::new();
        for device in devices.iter().filter(|device| device.active) {
            let Some(profile) = self.profiles.get(&device.profile_id) else {
                continue;
            };
            if profile.metrics.contains_key(&metric) {
                capable.push(device.device_id.clone());
                for sent in profile.metrics.keys() {
                    if !metrics.contains(sent) {
                        metrics.push(*sent);
                    }
                }
            }
        }
        if capable.is_empty() {
            return Ok(Vec::new());
        }
        let heard = self
            .store
            .last_heard(
                &capable,
                &metrics,
                since,
                since.plus_micros(-LATE_READING_DAYS * MICROS_PER_DAY),
            )
            .await?;
        Ok(capable
            .iter()
            .map(|device_id| {
                heard
                    .iter()
                    .find(|(heard_id, _)| heard_id == device_id)
                    .map(|(_, at)| *at)
            })
            .collect())
    }
}

/// One rule of one patient, as a sweep checks it.
struct RuleCheck<'a> {
    patient_id: Uuid,
    protocol: &'a Protocol,
    rule: &'a Rule,
    rule_key: String,
    schedule: Schedule,
    devices: &'a [DeviceRecord],
}

/// Reads the day and first missed day of an open missed-measurement alert.
fn open_missed(alert: &Alert) -> Option<OpenMissed> {
    let factor = alert
        .explanation
        .get("factors")?
        .as_array()?
        .iter()
        .find(|factor| {
            factor.get("factor").and_then(|f| f.as_str()) == Some("missed_measurement")
        })?;
    let day = |name: &str| -> Option<NaiveDate> { factor.get(name)?.as_str()?.parse().ok() };
    let missed_day = day("day")?;
    Some(OpenMissed {
        day: missed_day,
        first_missed_day: day("first_missed_day").unwrap_or(missed_day),
        opened_at: alert.opened_at,
    })
}

fn new_alert(
    check: &RuleCheck<'_>,
    missed: &Missed,
    heard_since: Timestamp,
    now: Timestamp,
) -> NewAlert {
    let priority = check.rule.priority;
    let devices: Vec<&str> = check
        .devices
        .iter()
        .filter(|device| device.active)
        .map(|device| device.device_id.as_str())
        .collect();
    let explanation = serde_json::json!({"factors": [{
        "factor": "missed_measurement",
        "metric": check.schedule.metric,
        "due_by": check.rule.due_by,
        "day": missed.day.to_string(),
        "first_missed_day": missed.first_missed_day.to_string(),
        "cause": missed.cause,
        "due_at": missed.due_at,
        "heard_since": heard_since,
        "last_heard": missed.last_heard,
        "devices": devices,
    }]});
    NewAlert {
        patient_id: check.patient_id,
        rule_key: check.rule_key.clone(),
        priority,
        nts: NtsLevel::for_priority(priority),
        score: urgency::score(priority, urgency::Evidence::default(), 0.0),
        explanation,
        at: now,
        raised_at: now,
        response_minutes: check
            .protocol
            .response_targets
            .get(&priority)
            .map_or(24 * 60, |minutes| i64::from(*minutes)),
    }
}

/// Resolves an open missed-measurement alert by the system; returns whether
/// it did (`false`: someone changed the alert meanwhile).
async fn resolve(
    store: &Arc<dyn Store>,
    alert: &Alert,
    arrival: Arrival,
    reading_ts: Timestamp,
    day: NaiveDate,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let reason = match arrival {
        Arrival::LateUpload => AutoResolution::LateUpload,
        Arrival::MeasuredLate => AutoResolution::MeasuredLate,
    };
    let mut alert = alert.clone();
    let from = alert.status;
    let detail = serde_json::json!({"day": day.to_string(), "reading_ts": reading_ts});
    let Ok(event) = alert.resolve_by_system(reason, detail, now) else {
        return Ok(false);
    };
    match store.save_transition(&alert, from, &event).await {
        Ok(()) => {
            tracing::info!(alert_id = %alert.id, reason = reason.code(), "missed measurement resolved");
            Ok(true)
        }
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}
