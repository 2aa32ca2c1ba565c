//! The alert book: turns triage findings into alerts, at most one unresolved
//! alert per patient and rule, and carries each alert through its lifecycle
//! `open → claimed → resolved` (plus `snoozed` and `escalated`).
//!
//! Transitions are methods on [`Alert`] that refuse what is not allowed and
//! return the [`AlertEvent`] to record; the store writes the new state and the
//! event in one transaction (DESIGN §1, "alert book").
//!
//! Nurses resolve alerts with an [`Outcome`]. The system itself resolves only
//! when the alert's condition is gone by a fact it can see
//! ([`AutoResolution`]: the missed measurement arrived after all, the
//! battery was charged); such an alert has no outcome, `resolved_by` is
//! "system", and its event is `auto_resolved` with the reason, so the
//! alarm-burden figures, which count nurses' outcomes, are not skewed.
//!
//! A snooze ends at its time, when the values recover (the system resolves
//! the alert, reason `recovered`) or when new evidence makes the alert more
//! urgent, whichever comes first ([`snooze`]).

pub mod missed;
pub mod snooze;
pub mod stage;
pub mod technical;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Timestamp;
use crate::protocols::Priority;
use crate::triage::urgency::NtsLevel;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Claimed,
    Snoozed,
    Escalated,
    Resolved,
}

impl AlertStatus {
    pub const fn code(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Claimed => "claimed",
            AlertStatus::Snoozed => "snoozed",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn from_code(code: &str) -> Option<AlertStatus> {
        [
            AlertStatus::Open,
            AlertStatus::Claimed,
            AlertStatus::Snoozed,
            AlertStatus::Escalated,
            AlertStatus::Resolved,
        ]
        .into_iter()
        .find(|status| status.code() == code)
    }
}

/// How a nurse closed an alert. "No action needed" and "measurement error"
/// are the false-alarm outcomes that the alarm-burden figures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    ContactedPatient,
    HomeVisitPlanned,
    GpOrSpecialistInformed,
    MedicationChangedPerProtocol,
    NoActionNeeded,
    MeasurementError,
}

impl Outcome {
    pub const fn code(self) -> &'static str {
        match self {
            Outcome::ContactedPatient => "contacted_patient",
            Outcome::HomeVisitPlanned => "home_visit_planned",
            Outcome::GpOrSpecialistInformed => "gp_or_specialist_informed",
            Outcome::MedicationChangedPerProtocol => "medication_changed_per_protocol",
            Outcome::NoActionNeeded => "no_action_needed",
            Outcome::MeasurementError => "measurement_error",
        }
    }

    pub fn from_code(code: &str) -> Option<Outcome> {
        [
            Outcome::ContactedPatient,
            Outcome::HomeVisitPlanned,
            Outcome::GpOrSpecialistInformed,
            Outcome::MedicationChangedPerProtocol,
            Outcome::NoActionNeeded,
            Outcome::MeasurementError,
        ]
        .into_iter()
        .find(|outcome| outcome.code() == code)
    }

    /// Returns whether the outcome says care was needed (a true alarm).
    pub const fn is_clinical(self) -> bool {
        !matches!(self, Outcome::NoActionNeeded | Outcome::MeasurementError)
    }
}

/// Why the system resolved an alert on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoResolution {
    /// The missed measurement was taken in time but uploaded late.
    LateUpload,
    /// The missed measurement was taken after the alert was raised.
    MeasuredLate,
    /// The device's battery is back above its recovery level.
    BatteryRecovered,
    /// The values behind a snoozed alert recovered (the rule's condition
    /// ended, past its `recover_at`) before the snooze ran out.
    Recovered,
}

impl AutoResolution {
    pub const fn code(self) -> &'static str {
        match self {
            AutoResolution::LateUpload => "late_upload",
            AutoResolution::MeasuredLate => "measured_late",
            AutoResolution::BatteryRecovered => "battery_recovered",
            AutoResolution::Recovered => "recovered",
        }
    }
}

/// Why a snooze ended before a nurse acted on the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnoozeEnd {
    /// The snooze time passed.
    Expired,
    /// New evidence made the alert more urgent (a higher priority or a more
    /// urgent NTS level) than when it was snoozed: a worsening patient must
    /// not stay hidden.
    MoreUrgent,
}

impl SnoozeEnd {
    pub const fn code(self) -> &'static str {
        match self {
            SnoozeEnd::Expired => "expired",
            SnoozeEnd::MoreUrgent => "more_urgent",
        }
    }
}

/// What an alert was when it was last snoozed, read back from its history
/// ([`snooze_origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnoozeOrigin {
    /// The status the alert returns to when the snooze ends.
    pub status: AlertStatus,
    /// The priority when snoozed.
    pub priority: Option<Priority>,
    /// The NTS level when snoozed.
    pub nts: Option<NtsLevel>,
}

/// Returns what the alert was before its current snooze, from its history
/// (oldest event first): the status before the first of a run of snoozes
/// (a snooze extended stays a snooze of the same status), and the urgency
/// at the latest snooze (what the nurse saw when she put it aside). Without
/// a recorded status (a history from before it was recorded) the alert
/// returns to `claimed` when someone holds it, else to `open`.
pub fn snooze_origin(alert: &Alert, events: &[AlertEvent]) -> SnoozeOrigin {
    let mut snoozes = events.iter().rev().filter(|event| event.kind == "snoozed");
    let latest = snoozes.clone().next();
    let code = |event: &AlertEvent, key: &str| {
        event
            .detail
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let status = snoozes
        .find_map(|event| {
            code(event, "from")
                .and_then(|from| AlertStatus::from_code(&from))
                .filter(|from| *from != AlertStatus::Snoozed)
        })
        .filter(|from| *from != AlertStatus::Resolved)
        .unwrap_or(if alert.claimed_by.is_some() {
            AlertStatus::Claimed
        } else {
            AlertStatus::Open
        });
    SnoozeOrigin {
        status,
        priority: latest
            .and_then(|event| code(event, "priority"))
            .and_then(|priority| priority_from_code(&priority)),
        nts: latest
            .and_then(|event| code(event, "nts"))
            .and_then(|nts| nts_from_code(&nts)),
    }
}

/// Who an alert is escalated to, in the stepped care of DESIGN §0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationTarget {
    /// Elderly-care physician / treatment network (SO / behandelnetwerk).
    ElderlyCarePhysician,
    GeneralPractitioner,
    /// Out-of-hours GP post (huisartsenpost).
    OutOfHoursGp,
    MobileGeriatricTeam,
}

impl EscalationTarget {
    pub const fn code(self) -> &'static str {
        match self {
            EscalationTarget::ElderlyCarePhysician => "elderly_care_physician",
            EscalationTarget::GeneralPractitioner => "general_practitioner",
            EscalationTarget::OutOfHoursGp => "out_of_hours_gp",
            EscalationTarget::MobileGeriatricTeam => "mobile_geriatric_team",
        }
    }
}

/// Returns the stable name of a priority.
pub const fn priority_code(priority: Priority) -> &'static str {
    match priority {
        Priority::Informational => "informational",
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
    }
}

/// Parses a priority name.
pub fn priority_from_code(code: &str) -> Option<Priority> {
    [
        Priority::Informational,
        Priority::Low,
        Priority::Medium,
        Priority::High,
    ]
    .into_iter()
    .find(|priority| priority_code(*priority) == code)
}

/// Returns the NTS level's name ("U1"…"U5").
pub const fn nts_code(level: NtsLevel) -> &'static str {
    match level {
        NtsLevel::U1 => "U1",
        NtsLevel::U2 => "U2",
        NtsLevel::U3 => "U3",
        NtsLevel::U4 => "U4",
        NtsLevel::U5 => "U5",
    }
}

/// Parses an NTS level name.
pub fn nts_from_code(code: &str) -> Option<NtsLevel> {
    [
        NtsLevel::U1,
        NtsLevel::U2,
        NtsLevel::U3,
        NtsLevel::U4,
        NtsLevel::U5,
    ]
    .into_iter()
    .find(|level| nts_code(*level) == code)
}

/// The longest snooze per priority: a high-priority alert may not disappear
/// from the list for long.
pub const fn max_snooze_minutes(priority: Priority) -> i64 {
    match priority {
        Priority::High => 60,
        Priority::Medium => 4 * 60,
        Priority::Low => 24 * 60,
        Priority::Informational => 72 * 60,
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub rule_key: String,
    pub status: AlertStatus,
    pub priority: Priority,
    pub nts: NtsLevel,
    pub score: f64,
    pub explanation: serde_json::Value,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub respond_by: Timestamp,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<Timestamp>,
    pub snoozed_until: Option<Timestamp>,
    pub escalated_to: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub outcome: Option<Outcome>,
}

/// One entry of an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertEvent {
    pub at: Timestamp,
    /// A user name, or "system".
    pub actor: String,
    /// raised, updated, claimed, snoozed, escalated, auto_escalated, resolved,
    /// auto_resolved, note.
    pub kind: String,
    pub detail: serde_json::Value,
}

/// A transition that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("alert is already resolved")]
    AlreadyResolved,
    #[error("alert is already claimed by {0}")]
    ClaimedByOther(String),
    #[error("alert is already {0}")]
    AlreadyInState(&'static str),
    #[error("snooze must end in the future and at most {max_minutes} minutes from now for this priority")]
    SnoozeOutOfRange { max_minutes: i64 },
    #[error("a note needs text")]
    EmptyNote,
    #[error("alert is not snoozed")]
    NotSnoozed,
}

const SYSTEM: &str = "system";

impl Alert {
    fn event(
        &mut self,
        actor: &str,
        kind: &str,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> AlertEvent {
        self.updated_at = now;
        AlertEvent {
            at: now,
            actor: actor.to_owned(),
            kind: kind.to_owned(),
            detail,
        }
    }

    fn refuse_resolved(&self) -> Result<(), TransitionError> {
        if self.status == AlertStatus::Resolved {
            Err(TransitionError::AlreadyResolved)
        } else {
            Ok(())
        }
    }

    /// A nurse takes the alert. A second nurse is refused and told who has it.
    ///
    /// # Errors
    /// Refuses a resolved alert, or one claimed by someone else.
    pub fn claim(&mut self, by: &str, now: Timestamp) -> Result<AlertEvent, TransitionError> {
        self.refuse_resolved()?;
        if let Some(holder) = &self.claimed_by {
            if self.status == AlertStatus::Claimed {
                return Err(if holder == by {
                    TransitionError::AlreadyInState("claimed")
                } else {
                    TransitionError::ClaimedByOther(holder.clone())
                });
            }
        }
        self.status = AlertStatus::Claimed;
        self.claimed_by = Some(by.to_owned());
        self.claimed_at = Some(now);
        self.snoozed_until = None;
        Ok(self.event(by, "claimed", serde_json::json!({}), now))
    }

    /// Closes the alert with an outcome.
    ///
    /// # Errors
    /// Refuses an alert that is already resolved.
    pub fn resolve(
        &mut self,
        by: &str,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<AlertEvent, TransitionError> {
        self.refuse_resolved()?;
        self.status = AlertStatus::Resolved;
        self.resolved_at = Some(now);
        self.resolved_by = Some(by.to_owned());
        self.outcome = Some(outcome);
        Ok(self.event(
            by,
            "resolved",
            serde_json::json!({"outcome": outcome.code()}),
            now,
        ))
    }

    /// The system closes the alert because its condition is gone
    /// ([`AutoResolution`]); `detail` adds the evidence to the event. No
    /// outcome is set: outcomes are the nurses'.
    ///
    /// # Errors
    /// Refuses an alert that is already resolved.
    pub fn resolve_by_system(
        &mut self,
        reason: AutoResolution,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<AlertEvent, TransitionError> {
        self.refuse_resolved()?;
        self.status = AlertStatus::Resolved;
        self.resolved_at = Some(now);
        self.resolved_by = Some(SYSTEM.to_owned());
        self.outcome = None;
        let mut event_detail = serde_json::json!({"reason": reason.code()});
        if let (Some(event_map), serde_json::Value::Object(extra)) =
            (event_detail.as_object_mut(), detail)
        {
            event_map.extend(extra);
        }
        Ok(self.event(SYSTEM, "auto_resolved", event_detail, now))
    }

    /// Hides the alert until `until` (capped per priority), or until its
    /// values recover or it becomes more urgent, whichever comes first (the
    /// triage stage ends the snooze then). The event records the status,
    /// priority and NTS level the alert had, so that the snooze can end by
    /// returning the alert as it was ([`snooze_origin`]).
    ///
    /// # Errors
    /// Refuses a resolved alert, a snooze into the past, or one longer than the cap.
    pub fn snooze(
        &mut self,
        by: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<AlertEvent, TransitionError> {
        self.refuse_resolved()?;
        let max_minutes = max_snooze_minutes(self.priority);
        if until <= now || until > now.plus_micros(max_minutes * 60_000_000) {
            return Err(TransitionError::SnoozeOutOfRange { max_minutes });
        }
        let from = self.status;
        self.status = AlertStatus::Snoozed;
        self.snoozed_until = Some(until);
        Ok(self.event(
            by,
            "snoozed",
            serde_json::json!({"until": until.to_string(), "from": from.code(),
                               "priority": priority_code(self.priority), "nts": nts_code(self.nts)}),
            now,
        ))
    }

    /// The system ends a snooze: the alert returns to `back_to` (the status
    /// it had before the snooze, see [`snooze_origin`]) and shows on the
    /// worklist as it was, with who holds it.
    ///
    /// # Errors
    /// Refuses an alert that is not snoozed.
    pub fn end_snooze(
        &mut self,
        reason: SnoozeEnd,
        back_to: AlertStatus,
        now: Timestamp,
    ) -> Result<AlertEvent, TransitionError> {
        if self.status != AlertStatus::Snoozed {
            return Err(TransitionError::NotSnoozed);
        }
        self.status = match back_to {
            AlertStatus::Snoozed | AlertStatus::Resolved => AlertStatus::Open,
            other => other,
        };
        let until = self.snoozed_until.take();
        Ok(self.event(
            SYSTEM,
            "snooze_ended",
            serde_json::json!({"reason": reason.code(), "to": self.status.code(),
                               "until": until.map(|until| until.to_string()),
                               "priority": priority_code(self.priority), "nts": nts_code(self.nts)}),
            now,
        ))
    }

    /// Returns whether the alert is now more urgent than `origin` says it
    /// was when snoozed: a higher priority or a more urgent NTS level.
    pub fn more_urgent_than(&self, origin: &SnoozeOrigin) -> bool {
        origin
            .priority
            .is_some_and(|priority| self.priority > priority)
            || origin.nts.is_some_and(|nts| self.nts < nts)
    }

    /// Hands the alert to another level of care.
    ///
    /// # Errors
    /// Refuses a resolved or already escalated alert.
    pub fn escalate(
        &mut self,
        by: &str,
        target: EscalationTarget,
        now: Timestamp,
    ) -> Result<AlertEvent, TransitionError> {
        self.refuse_resolved()?;
        if self.status == AlertStatus::Escalated {
            return Err(TransitionError::AlreadyInState("escalated"));
        }
        self.status = AlertStatus::Escalated;
        self.escalated_to = Some(target.code().to_owned());
        Ok(self.event(
            by,
            "escalated",
            serde_json::json!({"to": target.code()}),
            now,
        ))
    }

    /// Adds a note; the status does not change.
    ///
    /// # Errors
    /// Refuses an empty note.
    pub fn note(
        &mut self,
        by: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<AlertEvent, TransitionError> {
        if text.trim().is_empty() {
            return Err(TransitionError::EmptyNote);
        }
        Ok(self.event(by, "note", serde_json::json!({"text": text.trim()}), now))
    }

    /// When the response target has lapsed and nobody claimed the alert, raises
    /// its priority one step (and its NTS level) and records it. Returns
    /// `None` when nothing is due.
    pub fn escalate_if_overdue(&mut self, now: Timestamp) -> Option<AlertEvent> {
        let unclaimed = matches!(self.status, AlertStatus::Open)
            || (self.status == AlertStatus::Snoozed
                && self.snoozed_until.is_some_and(|until| until <= now));
        if !unclaimed || now <= self.respond_by {
            return None;
        }
        let from = self.priority;
        self.priority = match from {
            Priority::Informational => Priority::Low,
            Priority::Low => Priority::Medium,
            Priority::Medium | Priority::High => Priority::High,
        };
        self.nts = self.nts.raised();
        self.status = AlertStatus::Escalated;
        self.escalated_to = Some("priority_raised".to_owned());
        Some(self.event(
            SYSTEM,
            "auto_escalated",
            serde_json::json!({"from": priority_code(from), "to": priority_code(self.priority),
                               "respond_by": self.respond_by.to_string()}),
            now,
        ))
    }
}

/// A finding as the alert book receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub patient_id: Uuid,
    pub rule_key: String,
    pub priority: Priority,
    pub nts: NtsLevel,
    pub score: f64,
    pub explanation: serde_json::Value,
    /// Event time of the evidence.
    pub at: Timestamp,
    /// When Thuiswacht raises it: the response target runs from here, not
    /// from the evidence's event time, so a gateway's late upload still gives
    /// the nurse the full response time.
    pub raised_at: Timestamp,
    /// Minutes within which it should be claimed (the protocol's response target).
    pub response_minutes: i64,
}

impl NewAlert {
    /// Returns the alert this finding opens when no alert is open for its
    /// patient and rule.
    pub fn open(&self, id: Uuid) -> Alert {
        Alert {
            id,
            patient_id: self.patient_id,
            rule_key: self.rule_key.clone(),
            status: AlertStatus::Open,
            priority: self.priority,
            nts: self.nts,
            score: self.score,
            explanation: self.explanation.clone(),
            opened_at: self.raised_at,
            updated_at: self.at,
            respond_by: self
                .raised_at
                .plus_micros(self.response_minutes * 60_000_000),
            claimed_by: None,
            claimed_at: None,
            snoozed_until: None,
            escalated_to: None,
            resolved_at: None,
            resolved_by: None,
            outcome: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn alert(priority: Priority) -> Alert {
        NewAlert {
            patient_id: Uuid::nil(),
            rule_key: "default/fever".to_owned(),
            priority,
            nts: NtsLevel::for_priority(priority),
            score: 2000.0,
            explanation: serde_json::json!({}),
            at: Timestamp(0),
            raised_at: Timestamp(0),
            response_minutes: 60,
        }
        .open(Uuid::nil())
    }

    #[test]
    fn lifecycle_runs_open_claimed_resolved() {
        let mut alert = alert(Priority::Medium);
        let claimed = alert.claim("anouk", Timestamp(MINUTE)).unwrap();
        assert_eq!(claimed.kind, "claimed");
        assert_eq!(alert.status, AlertStatus::Claimed);
        let resolved = alert
            .resolve("anouk", Outcome::ContactedPatient, Timestamp(2 * MINUTE))
            .unwrap();
        assert_eq!(resolved.detail["outcome"], "contacted_patient");
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert_eq!(alert.resolved_by.as_deref(), Some("anouk"));
    }

    #[test]
    fn every_invalid_transition_is_refused() {
        let mut alert = alert(Priority::High);
        alert.claim("anouk", Timestamp(MINUTE)).unwrap();
        assert_eq!(
            alert.claim("bram", Timestamp(MINUTE)),
            Err(TransitionError::ClaimedByOther("anouk".to_owned()))
        );
        assert_eq!(
            alert.claim("anouk", Timestamp(MINUTE)),
            Err(TransitionError::AlreadyInState("claimed"))
        );
        assert!(matches!(
            alert.snooze("anouk", Timestamp(MINUTE + 61 * MINUTE), Timestamp(MINUTE)),
            Err(TransitionError::SnoozeOutOfRange { max_minutes: 60 })
        ));
        assert!(matches!(
            alert.snooze("anouk", Timestamp(0), Timestamp(MINUTE)),
            Err(TransitionError::SnoozeOutOfRange { .. })
        ));
        assert_eq!(
            alert.note("anouk", "  ", Timestamp(MINUTE)),
            Err(TransitionError::EmptyNote)
        );
        alert
            .escalate(
                "anouk",
                EscalationTarget::GeneralPractitioner,
                Timestamp(MINUTE),
            )
            .unwrap();
        assert_eq!(
            alert.escalate("anouk", EscalationTarget::OutOfHoursGp, Timestamp(MINUTE)),
            Err(TransitionError::AlreadyInState("escalated"))
        );
        alert
            .resolve(
                "anouk",
                Outcome::GpOrSpecialistInformed,
                Timestamp(2 * MINUTE),
            )
            .unwrap();
        for refused in [
            alert.claim("bram", Timestamp(3 * MINUTE)),
            alert.resolve("bram", Outcome::NoActionNeeded, Timestamp(3 * MINUTE)),
            alert.snooze("bram", Timestamp(4 * MINUTE), Timestamp(3 * MINUTE)),
            alert.escalate(
                "bram",
                EscalationTarget::OutOfHoursGp,
                Timestamp(3 * MINUTE),
            ),
        ] {
            assert_eq!(refused, Err(TransitionError::AlreadyResolved));
        }
    }

    #[test]
    fn unclaimed_alert_escalates_after_its_response_target() {
        let mut alert = alert(Priority::Medium);
        assert_eq!(
            alert.escalate_if_overdue(Timestamp(60 * MINUTE)),
            None,
            "not yet overdue"
        );
        let event = alert.escalate_if_overdue(Timestamp(61 * MINUTE)).unwrap();
        assert_eq!(event.actor, "system");
        assert_eq!(event.kind, "auto_escalated");
        assert_eq!(alert.priority, Priority::High);
        assert_eq!(alert.nts, NtsLevel::U2);
        assert_eq!(alert.status, AlertStatus::Escalated);
        assert_eq!(
            alert.escalate_if_overdue(Timestamp(120 * MINUTE)),
            None,
            "escalates once"
        );
        let mut claimed = self::alert(Priority::Low);
        claimed.claim("anouk", Timestamp(MINUTE)).unwrap();
        assert_eq!(
            claimed.escalate_if_overdue(Timestamp(600 * MINUTE)),
            None,
            "a claimed alert is being handled"
        );
    }

    #[test]
    fn the_system_resolves_without_a_nurses_outcome_and_says_why() {
        // Arrange: a claimed alert (the nurse was about to call).
        let mut alert = alert(Priority::Low);
        alert.claim("anouk", Timestamp(MINUTE)).unwrap();
        // Act
        let event = alert
            .resolve_by_system(
                AutoResolution::LateUpload,
                serde_json::json!({"reading_ts": 42}),
                Timestamp(2 * MINUTE),
            )
            .unwrap();
        // Assert
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert_eq!(alert.outcome, None);
        assert_eq!(alert.resolved_by.as_deref(), Some("system"));
        assert_eq!(event.kind, "auto_resolved");
        assert_eq!(event.actor, "system");
        assert_eq!(event.detail["reason"], "late_upload");
        assert_eq!(event.detail["reading_ts"], 42);
        assert_eq!(
            alert.resolve_by_system(
                AutoResolution::BatteryRecovered,
                serde_json::json!({}),
                Timestamp(3 * MINUTE)
            ),
            Err(TransitionError::AlreadyResolved)
        );
    }

    /// Snoozes `alert` and returns its history so far (the snooze event).
    fn snoozed(alert: &mut Alert, by: &str, minutes: i64, now: i64) -> AlertEvent {
        alert
            .snooze(
                by,
                Timestamp((now + minutes) * MINUTE),
                Timestamp(now * MINUTE),
            )
            .unwrap()
    }

    #[test]
    fn a_snooze_that_runs_out_returns_the_alert_as_it_was() {
        // Arrange: a claimed alert, snoozed by the nurse who holds it.
        let mut alert = alert(Priority::Medium);
        let claimed = alert.claim("anouk", Timestamp(MINUTE)).unwrap();
        let snooze = snoozed(&mut alert, "anouk", 30, 2);
        assert_eq!(snooze.detail["from"], "claimed");
        assert_eq!(snooze.detail["priority"], "medium");
        assert_eq!(snooze.detail["nts"], "U3");
        // Act
        let origin = snooze_origin(&alert, &[claimed, snooze]);
        let ended = alert
            .end_snooze(SnoozeEnd::Expired, origin.status, Timestamp(32 * MINUTE))
            .unwrap();
        // Assert
        assert_eq!(alert.status, AlertStatus::Claimed);
        assert_eq!(alert.claimed_by.as_deref(), Some("anouk"));
        assert_eq!(alert.snoozed_until, None);
        assert_eq!(ended.kind, "snooze_ended");
        assert_eq!(ended.actor, "system");
        assert_eq!(ended.detail["reason"], "expired");
        assert_eq!(ended.detail["to"], "claimed");
        assert_eq!(
            alert.end_snooze(
                SnoozeEnd::Expired,
                AlertStatus::Open,
                Timestamp(33 * MINUTE)
            ),
            Err(TransitionError::NotSnoozed),
            "only a snoozed alert wakes"
        );
    }

    #[test]
    fn an_extended_snooze_returns_to_the_status_before_the_first() {
        let mut alert = alert(Priority::Low);
        let first = snoozed(&mut alert, "anouk", 60, 1);
        let second = snoozed(&mut alert, "bram", 120, 30);
        assert_eq!(second.detail["from"], "snoozed");
        let origin = snooze_origin(&alert, &[first, second]);
        assert_eq!(origin.status, AlertStatus::Open);
        assert_eq!(origin.priority, Some(Priority::Low));
        assert_eq!(origin.nts, Some(NtsLevel::U4));
        // A history without the recorded status: back to open, or claimed
        // when someone holds the alert.
        let bare = AlertEvent {
            at: Timestamp(0),
            actor: "anouk".to_owned(),
            kind: "snoozed".to_owned(),
            detail: serde_json::json!({"until": "2026-12-07T10:00:00Z"}),
        };
        assert_eq!(
            snooze_origin(&alert, std::slice::from_ref(&bare)).status,
            AlertStatus::Open
        );
        alert.claimed_by = Some("anouk".to_owned());
        assert_eq!(snooze_origin(&alert, &[bare]).status, AlertStatus::Claimed);
    }

    #[test]
    fn a_snoozed_alert_is_more_urgent_only_when_priority_or_nts_rose() {
        let mut alert = alert(Priority::Medium);
        let snooze = snoozed(&mut alert, "anouk", 60, 1);
        let origin = snooze_origin(&alert, &[snooze]);
        assert!(!alert.more_urgent_than(&origin), "unchanged");
        alert.score += 500.0;
        assert!(
            !alert.more_urgent_than(&origin),
            "a higher score alone is not"
        );
        alert.nts = NtsLevel::U2;
        assert!(alert.more_urgent_than(&origin), "a more urgent NTS level");
        alert.nts = NtsLevel::U3;
        alert.priority = Priority::High;
        assert!(alert.more_urgent_than(&origin), "a higher priority");
        let event = alert
            .end_snooze(SnoozeEnd::MoreUrgent, origin.status, Timestamp(5 * MINUTE))
            .unwrap();
        assert_eq!(alert.status, AlertStatus::Open);
        assert_eq!(event.detail["reason"], "more_urgent");
        assert_eq!(event.detail["priority"], "high");
    }

    #[test]
    fn recovered_values_resolve_a_snoozed_alert_without_an_outcome() {
        let mut alert = alert(Priority::Medium);
        snoozed(&mut alert, "anouk", 60, 1);
        let event = alert
            .resolve_by_system(
                AutoResolution::Recovered,
                serde_json::json!({"ts": 42}),
                Timestamp(10 * MINUTE),
            )
            .unwrap();
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert_eq!(alert.outcome, None);
        assert_eq!(alert.resolved_by.as_deref(), Some("system"));
        assert_eq!(event.kind, "auto_resolved");
        assert_eq!(event.detail["reason"], "recovered");
    }

    #[test]
    fn outcomes_and_codes_round_trip() {
        for outcome in [
            Outcome::ContactedPatient,
            Outcome::NoActionNeeded,
            Outcome::MeasurementError,
        ] {
            assert_eq!(Outcome::from_code(outcome.code()), Some(outcome));
        }
        assert!(!Outcome::MeasurementError.is_clinical());
        assert!(Outcome::HomeVisitPlanned.is_clinical());
        assert_eq!(nts_from_code("U3"), Some(NtsLevel::U3));
        assert_eq!(priority_from_code("high"), Some(Priority::High));
        assert_eq!(
            AlertStatus::from_code("snoozed"),
            Some(AlertStatus::Snoozed)
        );
    }
}
