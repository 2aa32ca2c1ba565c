//! Validation of decoded readings against the device registry and the
//! device's profile: known and active device, metric allowed, unit
//! convertible, value plausible, event time not in the future. Device
//! statuses are checked for a known, active device and their time.
//!
//! Pure functions; the store writer calls them with the registry entries it
//! looked up and the current time.

use bytes::Bytes;
use uuid::Uuid;

use crate::domain::{
    DecodedReading, DecodedStatus, DeviceId, Reading, RejectReason, Rejection, StatusReport,
    Timestamp,
};
use crate::profiles::Profiles;

/// A registered device: which profile it follows and whose readings it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub device_id: DeviceId,
    pub profile_id: String,
    pub patient_id: Uuid,
    pub team_id: Uuid,
    pub active: bool,
}

/// The moment against which readings are judged.
#[derive(Debug, Clone, Copy)]
pub struct ValidationClock {
    /// When the message carrying the reading arrived.
    pub received_at: Timestamp,
    /// The latest acceptable event time (now plus the allowed clock skew).
    pub latest_acceptable: Timestamp,
}

/// Checks one decoded reading and, if it passes, returns it in its metric's
/// canonical unit, linked to the device's patient.
///
/// # Errors
/// Returns the [`Rejection`] bound for the quarantine.
pub fn validate(
    decoded: &DecodedReading,
    device: Option<&DeviceRecord>,
    profiles: &Profiles,
    clock: ValidationClock,
) -> Result<Reading, Rejection> {
    let reject = |reason: RejectReason, detail: String| {
        Rejection::new(
            reason,
            detail,
            Some(decoded.device_id.as_str()),
            raw_reading(decoded),
        )
    };
    let device = match device {
        Some(device) if device.active => device,
        Some(_) => {
            return Err(reject(
                RejectReason::UnknownDevice,
                format!("device {} is not active", decoded.device_id),
            ))
        }
        None => {
            return Err(reject(
                RejectReason::UnknownDevice,
                format!("unknown device {}", decoded.device_id),
            ))
        }
    };
    let Some(profile) = profiles.get(&device.profile_id) else {
        return Err(reject(
            RejectReason::UnknownDevice,
            format!(
                "device {} has profile {} which is not in devices/",
                decoded.device_id, device.profile_id
            ),
        ));
    };
    let Some(spec) = profile.metrics.get(&decoded.metric) else {
        return Err(reject(
            RejectReason::UnknownMetric,
            format!("profile {} does not send {}", profile.id, decoded.metric),
        ));
    };
    if !spec.units.contains(&decoded.unit) {
        return Err(reject(
            RejectReason::UnknownUnit,
            format!(
                "profile {} does not send {} in {}",
                profile.id, decoded.metric, decoded.unit
            ),
        ));
    }
    let Some(value) = decoded.unit.convert(decoded.value, decoded.metric.unit()) else {
        return Err(reject(
            RejectReason::UnknownUnit,
            format!(
                "{} cannot be converted to {}",
                decoded.unit,
                decoded.metric.unit()
            ),
        ));
    };
    if !value.is_finite() || value < spec.min || value > spec.max {
        return Err(reject(
            RejectReason::ImplausibleValue,
            format!(
                "{} {value} {} is outside the plausible range {}–{} of profile {}",
                decoded.metric,
                decoded.metric.unit(),
                spec.min,
                spec.max,
                profile.id
            ),
        ));
    }
    if decoded.ts > clock.latest_acceptable {
        return Err(reject(
            RejectReason::FutureTimestamp,
            format!(
                "event time {} is {:.0} s after it was received",
                decoded.ts,
                decoded.ts.seconds_since(clock.received_at)
            ),
        ));
    }
    Ok(Reading {
        device_id: decoded.device_id.clone(),
        patient_id: device.patient_id,
        metric: decoded.metric,
        value,
        ts: decoded.ts,
        received_at: clock.received_at,
    })
}

/// Checks one decoded device status: the device must be registered and
/// active, and the status not stamped beyond the allowed clock skew.
///
/// # Errors
/// Returns the [`Rejection`] bound for the quarantine, with the message bytes.
pub fn validate_status(
    decoded: &DecodedStatus,
    device: Option<&DeviceRecord>,
    clock: ValidationClock,
) -> Result<StatusReport, Rejection> {
    let reject = |reason: RejectReason, detail: String| {
        Rejection::new(
            reason,
            detail,
            Some(decoded.device_id.as_str()),
            decoded.raw.clone(),
        )
    };
    let device = match device {
        Some(device) if device.active => device,
        Some(_) => {
            return Err(reject(
                RejectReason::UnknownDevice,
                format!(
                    "status from device {} which is not active",
                    decoded.device_id
                ),
            ))
        }
        None => {
            return Err(reject(
                RejectReason::UnknownDevice,
                format!("status from unknown device {}", decoded.device_id),
            ))
        }
    };
    if decoded.ts > clock.latest_acceptable {
        return Err(reject(
            RejectReason::FutureTimestamp,
            format!(
                "status time {} is {:.0} s after it was received",
                decoded.ts,
                decoded.ts.seconds_since(clock.received_at)
            ),
        ));
    }
    Ok(StatusReport {
        device_id: decoded.device_id.clone(),
        patient_id: device.patient_id,
        received_at: clock.received_at,
        ts: decoded.ts,
        online: decoded.online,
        battery_pct: decoded.battery_pct,
        fault: decoded.fault.clone(),
    })
}

/// Re-encodes one decoded reading as Thuiswacht JSON v1, for the quarantine.
fn raw_reading(decoded: &DecodedReading) -> Bytes {
    let value = serde_json::json!({
        "device_id": decoded.device_id.as_str(),
        "metric": decoded.metric.code(),
        "value": decoded.value,
        "unit": decoded.unit.ucum(),
        "ts": decoded.ts.to_string(),
    });
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Metric, Unit};

    fn profiles() -> Profiles {
        Profiles::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("devices"))
            .unwrap()
    }

    fn device(profile: &str) -> DeviceRecord {
        DeviceRecord {
            device_id: DeviceId::parse("dev-1").unwrap(),
            profile_id: profile.to_owned(),
            patient_id: Uuid::nil(),
            team_id: Uuid::nil(),
            active: true,
        }
    }

    fn reading(metric: Metric, value: f64, unit: Unit, ts: i64) -> DecodedReading {
        DecodedReading {
            device_id: DeviceId::parse("dev-1").unwrap(),
            metric,
            value,
            unit,
            ts: Timestamp(ts),
        }
    }

    const CLOCK: ValidationClock = ValidationClock {
        received_at: Timestamp(1_000_000_000),
        latest_acceptable: Timestamp(1_300_000_000),
    };

    #[test]
    fn valid_reading_is_converted_to_the_canonical_unit() {
        let decoded = reading(Metric::BodyTemperature, 98.6, Unit::Fahrenheit, 0);
        let stored = validate(&decoded, Some(&device("thermometer")), &profiles(), CLOCK).unwrap();
        assert!((stored.value - 37.0).abs() < 1e-9);
        assert_eq!(stored.received_at, CLOCK.received_at);
    }

    #[test]
    fn each_problem_has_its_reason() {
        let profiles = profiles();
        let cases = [
            (
                None,
                reading(Metric::Spo2, 97.0, Unit::Percent, 0),
                RejectReason::UnknownDevice,
            ),
            (
                Some(device("weight-scale")),
                reading(Metric::Spo2, 97.0, Unit::Percent, 0),
                RejectReason::UnknownMetric,
            ),
            (
                Some(device("weight-scale")),
                reading(Metric::BodyWeight, 80.0, Unit::Pascal, 0),
                RejectReason::UnknownUnit,
            ),
            (
                Some(device("pulse-oximeter")),
                reading(Metric::Spo2, 101.0, Unit::Percent, 0),
                RejectReason::ImplausibleValue,
            ),
            (
                Some(device("pulse-oximeter")),
                reading(Metric::Spo2, f64::NAN, Unit::Percent, 0),
                RejectReason::ImplausibleValue,
            ),
            (
                Some(device("pulse-oximeter")),
                reading(Metric::Spo2, 97.0, Unit::Percent, 1_300_000_001),
                RejectReason::FutureTimestamp,
            ),
            (
                Some(device("no-such-profile")),
                reading(Metric::Spo2, 97.0, Unit::Percent, 0),
                RejectReason::UnknownDevice,
            ),
        ];
        for (device, decoded, expected) in cases {
            let rejection = validate(&decoded, device.as_ref(), &profiles, CLOCK).unwrap_err();
            assert_eq!(rejection.reason, expected, "{}", rejection.detail);
            assert!(std::str::from_utf8(&rejection.raw)
                .unwrap()
                .contains(decoded.metric.code()));
        }
    }

    #[test]
    fn inactive_device_is_unknown() {
        let mut inactive = device("pulse-oximeter");
        inactive.active = false;
        let decoded = reading(Metric::Spo2, 97.0, Unit::Percent, 0);
        let rejection = validate(&decoded, Some(&inactive), &profiles(), CLOCK).unwrap_err();
        assert_eq!(rejection.reason, RejectReason::UnknownDevice);
    }

    #[test]
    fn statuses_need_a_known_active_device_and_a_sane_time() {
        let status = |ts: i64| DecodedStatus {
            device_id: DeviceId::parse("dev-1").unwrap(),
            ts: Timestamp(ts),
            online: true,
            battery_pct: Some(12.0),
            fault: None,
            raw: Bytes::from_static(b"{\"battery_pct\":12}"),
        };
        let scale = device("weight-scale");
        let report = validate_status(&status(0), Some(&scale), CLOCK).unwrap();
        assert_eq!(report.patient_id, scale.patient_id);
        assert_eq!(report.received_at, CLOCK.received_at);
        let mut inactive = scale.clone();
        inactive.active = false;
        for (device, ts, reason) in [
            (None, 0, RejectReason::UnknownDevice),
            (Some(&inactive), 0, RejectReason::UnknownDevice),
            (Some(&scale), 1_300_000_001, RejectReason::FutureTimestamp),
        ] {
            let rejection = validate_status(&status(ts), device, CLOCK).unwrap_err();
            assert_eq!(rejection.reason, reason, "{}", rejection.detail);
            assert_eq!(&rejection.raw[..], b"{\"battery_pct\":12}");
        }
    }

    #[test]
    fn a_reading_hours_late_is_accepted_under_its_event_time() {
        let decoded = reading(Metric::Spo2, 0.95, Unit::Ratio, -3_600_000_000 * 5);
        let stored = validate(
            &decoded,
            Some(&device("pulse-oximeter")),
            &profiles(),
            CLOCK,
        )
        .unwrap();
        assert_eq!(stored.ts, Timestamp(-18_000_000_000));
        assert!((stored.value - 95.0).abs() < 1e-9);
    }
}
