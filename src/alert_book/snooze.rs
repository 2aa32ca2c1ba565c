//! How a snooze ends on its own: at its time, when the values recover, or
//! when the alert becomes more urgent, whichever comes first.
//!
//! - **Time**: the sweeper ([`end_expired_snoozes`], every escalation sweep)
//!   returns an alert whose snooze ran out to the status it had before
//!   (open, claimed by the same nurse, escalated), event `snooze_ended`
//!   with reason `expired`.
//! - **Recovery**: when the triage engine reports that the condition behind
//!   a snoozed alert ended ([`Transition::Recovered`]), the system resolves
//!   it ([`resolve_recovered`]): `auto_resolved` with reason `recovered`,
//!   `resolved_by` "system", no outcome (outcomes are the nurses').
//!   Alerts that are not snoozed stay for the nurse, as before.
//! - **Worse**: new evidence that leaves a snoozed alert with a higher
//!   priority or a more urgent NTS level than when it was snoozed ends the
//!   snooze at once ([`wake_if_more_urgent`]), reason `more_urgent`.
//!
//! Each change goes through [`Store::save_transition`], which refuses it
//! when a nurse changed the alert meanwhile (then the nurse's change
//! stands).
//!
//! [`Transition::Recovered`]: crate::triage::urgency::Transition::Recovered

use std::sync::Arc;

use uuid::Uuid;

use super::{snooze_origin, Alert, AlertStatus, AutoResolution, SnoozeEnd};
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// Resolves the snoozed alert of `patient_id` and `rule_key` because its
/// values recovered at `ts`; returns whether it did. An alert that is not
/// snoozed is left alone.
///
/// # Errors
/// Returns a store error when the alert cannot be read or saved (a change
/// made meanwhile is not an error: the alert is left as it now is).
pub async fn resolve_recovered(
    store: &dyn Store,
    patient_id: Uuid,
    rule_key: &str,
    ts: Timestamp,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(mut alert) = store.unresolved_alert(patient_id, rule_key).await? else {
        return Ok(false);
    };
    if alert.status != AlertStatus::Snoozed {
        return Ok(false);
    }
    let detail = serde_json::json!({
        "recovered_at": ts.to_string(),
        "snoozed_until": alert.snoozed_until.map(|until| until.to_string()),
    });
    let Ok(event) = alert.resolve_by_system(AutoResolution::Recovered, detail, now) else {
        return Ok(false);
    };
    saved(
        store
            .save_transition(&alert, AlertStatus::Snoozed, &event)
            .await,
    )
}

/// Ends the snooze of `alert` (as the alert book returned it after new
/// evidence) when the alert is now more urgent than when it was snoozed;
/// returns whether it did.
///
/// # Errors
/// Returns a store error when the history cannot be read or the change
/// cannot be saved.
pub async fn wake_if_more_urgent(
    store: &dyn Store,
    mut alert: Alert,
    now: Timestamp,
) -> Result<bool, StoreError> {
    if alert.status != AlertStatus::Snoozed {
        return Ok(false);
    }
    let events = store.alert_events(alert.id).await?;
    let origin = snooze_origin(&alert, &events);
    if !alert.more_urgent_than(&origin) {
        return Ok(false);
    }
    let Ok(event) = alert.end_snooze(SnoozeEnd::MoreUrgent, origin.status, now) else {
        return Ok(false);
    };
    saved(
        store
            .save_transition(&alert, AlertStatus::Snoozed, &event)
            .await,
    )
}

/// Returns every alert whose snooze has run out by `now` to the status it
/// had before; returns how many.
///
/// # Errors
/// Returns a store error when the alerts cannot be read or saved.
pub async fn end_expired_snoozes(
    store: &Arc<dyn Store>,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut ended = 0;
    for mut alert in store.unresolved_alerts().await? {
        let expired = alert.status == AlertStatus::Snoozed
            && alert.snoozed_until.is_none_or(|until| until <= now);
        if !expired {
            continue;
        }
        let events = store.alert_events(alert.id).await?;
        let origin = snooze_origin(&alert, &events);
        let Ok(event) = alert.end_snooze(SnoozeEnd::Expired, origin.status, now) else {
            continue;
        };
        if saved(
            store
                .save_transition(&alert, AlertStatus::Snoozed, &event)
                .await,
        )? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// A conflict means someone changed the alert meanwhile: not saved, no error.
fn saved(result: Result<(), StoreError>) -> Result<bool, StoreError> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}
