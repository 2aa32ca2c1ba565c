//! Device status: what a device or its gateway says about itself on
//! `{root}/devices/{device_id}/status` (battery, fault code), and the latest
//! status per device as the store keeps it.
//!
//! Every status message is a heartbeat: it shows that the device (or the
//! gateway speaking for it) is alive, even when the patient measured
//! nothing. The exception is a message with `"online": false`, which a
//! gateway publishes as its MQTT last will: it is recorded, but it is the
//! opposite of a sign of life.

use serde::Serialize;
use uuid::Uuid;

use super::{DeviceId, Timestamp};

/// A status message after decoding: not yet linked to a patient.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedStatus {
    pub device_id: DeviceId,
    /// The device's own time of the status; the receive time when it sent none.
    pub ts: Timestamp,
    /// `false` only for a gateway's last will ("I am gone").
    pub online: bool,
    /// Remaining battery, 0–100 %, when the device reports it.
    pub battery_pct: Option<f64>,
    /// A fault code, when the device reports one; `None` means no fault.
    pub fault: Option<String>,
    /// The message bytes, kept for the quarantine should the device be unknown.
    pub raw: bytes::Bytes,
}

/// A status message from a registered device, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub device_id: DeviceId,
    pub patient_id: Uuid,
    pub received_at: Timestamp,
    pub ts: Timestamp,
    pub online: bool,
    pub battery_pct: Option<f64>,
    pub fault: Option<String>,
}

/// The latest status of a device, as stored (one row per device).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceStatus {
    pub device_id: DeviceId,
    pub patient_id: Uuid,
    /// When the last heartbeat arrived (any status message but a last will);
    /// `None` when the device has only ever sent a last will.
    pub last_seen_at: Option<Timestamp>,
    /// The device's time of the newest status; it decides which status is newest.
    pub status_ts: Timestamp,
    pub online: bool,
    /// The last battery level reported (a status without one keeps it).
    pub battery_pct: Option<f64>,
    /// The fault of the newest heartbeat; `None`: no fault.
    pub fault: Option<String>,
}

impl DeviceStatus {
    /// Returns the stored status after `report`, and whether `report` is now
    /// the device's newest status (to be evaluated for technical findings).
    ///
    /// A redelivery (the same device time as stored) changes nothing, so
    /// processing a message twice is harmless. An older status, buffered and
    /// uploaded late, does not replace the newer one, but its arrival still
    /// shows the gateway is alive now. A last will never counts as a
    /// heartbeat and leaves the fault as it was.
    pub fn merge(previous: Option<&DeviceStatus>, report: &StatusReport) -> (DeviceStatus, bool) {
        let heartbeat = report.online.then_some(report.received_at);
        let Some(previous) = previous else {
            return (
                DeviceStatus {
                    device_id: report.device_id.clone(),
                    patient_id: report.patient_id,
                    last_seen_at: heartbeat,
                    status_ts: report.ts,
                    online: report.online,
                    battery_pct: report.battery_pct,
                    fault: report.fault.clone(),
                },
                true,
            );
        };
        if report.ts == previous.status_ts {
            return (previous.clone(), false);
        }
        let last_seen_at = match (previous.last_seen_at, heartbeat) {
            (Some(seen), Some(now)) => Some(seen.max(now)),
            (seen, now) => seen.or(now),
        };
        if report.ts < previous.status_ts {
            return (
                DeviceStatus {
                    last_seen_at,
                    ..previous.clone()
                },
                false,
            );
        }
        let merged = DeviceStatus {
            device_id: report.device_id.clone(),
            patient_id: report.patient_id,
            last_seen_at,
            status_ts: report.ts,
            online: report.online,
            battery_pct: report.battery_pct.or(previous.battery_pct),
            fault: if report.online {
                report.fault.clone()
            } else {
                previous.fault.clone()
            },
        };
        (merged, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn report(ts_minutes: i64, received_minutes: i64) -> StatusReport {
        StatusReport {
            device_id: DeviceId::parse("scale-1").unwrap(),
            patient_id: Uuid::nil(),
            received_at: Timestamp(received_minutes * MINUTE),
            ts: Timestamp(ts_minutes * MINUTE),
            online: true,
            battery_pct: Some(80.0),
            fault: None,
        }
    }

    #[test]
    fn a_redelivered_status_changes_nothing_and_is_not_new() {
        let (stored, new) = DeviceStatus::merge(None, &report(10, 11));
        assert!(new);
        let (again, new_again) = DeviceStatus::merge(Some(&stored), &report(10, 30));
        assert!(!new_again);
        assert_eq!(again, stored, "a redelivery is not a fresh heartbeat");
    }

    #[test]
    fn a_late_old_status_counts_as_a_heartbeat_but_keeps_the_newer_state() {
        let mut newer = report(60, 61);
        newer.battery_pct = Some(15.0);
        let (stored, _) = DeviceStatus::merge(None, &newer);
        let (merged, new) = DeviceStatus::merge(Some(&stored), &report(30, 90));
        assert!(!new);
        assert_eq!(merged.battery_pct, Some(15.0));
        assert_eq!(merged.status_ts, Timestamp(60 * MINUTE));
        assert_eq!(merged.last_seen_at, Some(Timestamp(90 * MINUTE)));
    }

    #[test]
    fn a_newer_status_replaces_fault_and_keeps_an_unreported_battery() {
        let mut faulty = report(10, 10);
        faulty.fault = Some("E3".to_owned());
        let (stored, _) = DeviceStatus::merge(None, &faulty);
        let mut quiet = report(20, 21);
        quiet.battery_pct = None;
        let (merged, new) = DeviceStatus::merge(Some(&stored), &quiet);
        assert!(new);
        assert_eq!(merged.fault, None);
        assert_eq!(merged.battery_pct, Some(80.0));
        assert_eq!(merged.last_seen_at, Some(Timestamp(21 * MINUTE)));
    }

    #[test]
    fn a_last_will_is_recorded_but_is_no_heartbeat() {
        let mut faulty = report(10, 10);
        faulty.fault = Some("E3".to_owned());
        let (stored, _) = DeviceStatus::merge(None, &faulty);
        let mut will = report(50, 50);
        will.online = false;
        will.battery_pct = None;
        let (merged, new) = DeviceStatus::merge(Some(&stored), &will);
        assert!(new);
        assert!(!merged.online);
        assert_eq!(merged.last_seen_at, Some(Timestamp(10 * MINUTE)));
        assert_eq!(merged.fault.as_deref(), Some("E3"));
        let (first_ever, _) = DeviceStatus::merge(None, &will);
        assert_eq!(first_ever.last_seen_at, None);
    }
}
