//! Readings as they move through the pipeline, and the rejections that go to
//! the quarantine instead.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Metric, Unit};

/// An instant in UTC with microsecond resolution, stored as microseconds since
/// the Unix epoch. Both stores keep exactly this resolution, so the
/// idempotency key `(device_id, metric, ts)` compares equal on either.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Before every instant: "in force from the beginning".
    pub const MIN: Timestamp = Timestamp(i64::MIN);

    /// Returns the timestamp of a chrono instant, truncated to microseconds.
    pub fn from_datetime(instant: DateTime<Utc>) -> Timestamp {
        Timestamp(instant.timestamp_micros())
    }

    /// Returns the current time.
    pub fn now() -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }

    /// Returns the timestamp `seconds` (fractional) after the epoch, or `None`
    /// when that is not a representable instant.
    pub fn from_unix_seconds(seconds: f64) -> Option<Timestamp> {
        if !seconds.is_finite() {
            return None;
        }
        let micros = (seconds * 1_000_000.0).round();
        // chrono's range is about ±262,000 years; keep well inside it.
        if micros.abs() > 8.0e18 {
            return None;
        }
        let micros = micros as i64;
        Utc.timestamp_micros(micros).single()?;
        Some(Timestamp(micros))
    }

    /// Parses an RFC 3339 date-time (with offset); other forms are refused.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|instant| Timestamp(instant.timestamp_micros()))
    }

    /// Returns the instant as a chrono value.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Returns microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Returns this instant moved by `micros` microseconds.
    pub const fn plus_micros(self, micros: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(micros))
    }

    /// Returns seconds from `earlier` to `self` (negative when `self` is earlier).
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1_000_000.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )
    }
}

/// A device identifier as printed on the device and used in MQTT topics:
/// 1–64 characters from `A–Z a–z 0–9 . _ : -`. The restriction keeps topic
/// wildcards, control characters and NUL bytes out of topics and SQL text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Why a text is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("device id is empty")]
    Empty,
    #[error("device id is longer than 64 characters")]
    TooLong,
    #[error("device id contains a character other than A-Z a-z 0-9 . _ : -")]
    BadCharacter,
}

impl DeviceId {
    /// Parses a device id.
    ///
    /// # Errors
    /// Returns why the text is not a valid device id.
    pub fn parse(text: &str) -> Result<DeviceId, DeviceIdError> {
        if text.is_empty() {
            return Err(DeviceIdError::Empty);
        }
        if text.len() > 64 {
            return Err(DeviceIdError::TooLong);
        }
        let allowed =
            |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-');
        if !text.bytes().all(allowed) {
            return Err(DeviceIdError::BadCharacter);
        }
        Ok(DeviceId(text.to_owned()))
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        DeviceId::parse(&text)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reading as a decoder produced it: metric and event time known, value in
/// the unit the device sent, not yet checked against the device's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedReading {
    pub device_id: DeviceId,
    pub metric: Metric,
    pub value: f64,
    pub unit: Unit,
    pub ts: Timestamp,
}

/// A validated reading in its metric's canonical unit, linked to its patient:
/// what the store writes and triage evaluates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub device_id: DeviceId,
    pub patient_id: Uuid,
    pub metric: Metric,
    pub value: f64,
    pub ts: Timestamp,
    pub received_at: Timestamp,
}

/// Why input was refused. Each reason is a label of the
/// `thuiswacht_readings_quarantined_total` counter and a value of
/// `quarantine.reason`, so the names are stable.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not JSON, or JSON of none of the supported shapes.
    MalformedPayload,
    /// Over the configured maximum payload size (256 KiB by default).
    PayloadTooLarge,
    /// The device id is not registered, or its device is inactive.
    UnknownDevice,
    /// The topic names one device and the payload another.
    DeviceMismatch,
    /// A metric or code Thuiswacht does not know, or one the device's profile does not allow.
    UnknownMetric,
    /// A unit that is unknown or cannot be converted to the metric's unit.
    UnknownUnit,
    /// A value outside the plausible physical range of the device's profile.
    ImplausibleValue,
    /// An event time further in the future than the allowed clock skew.
    FutureTimestamp,
    /// The database refused the data itself (not an outage).
    StoreRejected,
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::MalformedPayload,
        RejectReason::PayloadTooLarge,
        RejectReason::UnknownDevice,
        RejectReason::DeviceMismatch,
        RejectReason::UnknownMetric,
        RejectReason::UnknownUnit,
        RejectReason::ImplausibleValue,
        RejectReason::FutureTimestamp,
        RejectReason::StoreRejected,
    ];

    /// Returns the stable snake_case name.
    pub const fn code(self) -> &'static str {
        match self {
            RejectReason::MalformedPayload => "malformed_payload",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::UnknownDevice => "unknown_device",
            RejectReason::DeviceMismatch => "device_mismatch",
            RejectReason::UnknownMetric => "unknown_metric",
            RejectReason::UnknownUnit => "unknown_unit",
            RejectReason::ImplausibleValue => "implausible_value",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::StoreRejected => "store_rejected",
        }
    }

    /// Parses a name written by [`RejectReason::code`].
    pub fn from_code(code: &str) -> Option<RejectReason> {
        RejectReason::ALL
            .into_iter()
            .find(|reason| reason.code() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Input that was refused, bound for the quarantine: the reason, a
/// human-readable detail, and the offending bytes (the whole payload for a
/// message-level problem, the single reading re-encoded for a reading-level one).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    pub device_id: Option<String>,
    pub raw: bytes::Bytes,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(
        reason: RejectReason,
        detail: impl Into<String>,
        device_id: Option<&str>,
        raw: bytes::Bytes,
    ) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
            device_id: device_id.map(str::to_owned),
            raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_refuse_wildcards_and_control_characters() {
        assert!(DeviceId::parse("bpm-0042").is_ok());
        assert!(DeviceId::parse("gw:7.a_b").is_ok());
        assert_eq!(DeviceId::parse(""), Err(DeviceIdError::Empty));
        assert_eq!(DeviceId::parse("a/+"), Err(DeviceIdError::BadCharacter));
        assert_eq!(DeviceId::parse("a\0b"), Err(DeviceIdError::BadCharacter));
        assert_eq!(
            DeviceId::parse(&"x".repeat(65)),
            Err(DeviceIdError::TooLong)
        );
    }

    #[test]
    fn timestamps_keep_microseconds_and_print_rfc3339() {
        let ts = Timestamp::parse_rfc3339("2026-11-22T07:31:05.123456789+01:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-22T06:31:05.123456Z");
        assert_eq!(
            Timestamp::from_unix_seconds(1.5),
            Some(Timestamp(1_500_000))
        );
        assert_eq!(Timestamp::from_unix_seconds(f64::NAN), None);
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn reject_reasons_round_trip() {
        for reason in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(reason.code()), Some(reason));
        }
    }
}
