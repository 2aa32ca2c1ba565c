//! The device status payload: a JSON object, every member optional.
//!
//! ```json
//! {"device_id": "scale-0042", "ts": "2026-11-23T08:00:00Z", "battery_pct": 14, "fault": null}
//! ```
//!
//! - `device_id`: when present it must match the topic's (or the URL's).
//! - `ts`: RFC 3339 device time of the status; absent: the receive time.
//! - `battery_pct`: 0–100.
//! - `fault`: a fault code of at most [`MAX_FAULT_CHARS`] printable
//!   characters; `null`, absent or empty: no fault.
//! - `online`: `false` marks a gateway's last will, which is not a heartbeat.
//!
//! Other members (signal strength, firmware) are ignored, so gateways can
//! send more than Thuiswacht reads. Anything else wrong refuses the whole
//! message, with its reason, for the quarantine.

use bytes::Bytes;
use serde::Deserialize;

use super::DecodeContext;
use crate::domain::{DecodedStatus, DeviceId, RejectReason, Rejection, Timestamp};

/// The longest fault code kept; longer text is a malformed status.
pub const MAX_FAULT_CHARS: usize = 64;

#[derive(Deserialize)]
struct StatusPayload {
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    battery_pct: Option<f64>,
    #[serde(default)]
    fault: Option<String>,
    #[serde(default = "online_by_default")]
    online: bool,
}

const fn online_by_default() -> bool {
    true
}

/// Decodes one status message of the device `device`.
///
/// # Errors
/// Returns the [`Rejection`] bound for the quarantine.
pub fn decode_status(
    payload: &Bytes,
    device: &DeviceId,
    context: &DecodeContext<'_>,
) -> Result<DecodedStatus, Rejection> {
    let reject = |reason: RejectReason, detail: String| {
        Rejection::new(reason, detail, Some(device.as_str()), payload.clone())
    };
    if payload.len() > context.max_payload_bytes {
        return Err(reject(
            RejectReason::PayloadTooLarge,
            format!(
                "status of {} bytes is over the limit of {} bytes",
                payload.len(),
                context.max_payload_bytes
            ),
        ));
    }
    let parsed: StatusPayload = serde_json::from_slice(payload).map_err(|error| {
        reject(
            RejectReason::MalformedPayload,
            format!("status is not a valid status object: {error}"),
        )
    })?;
    if let Some(named) = &parsed.device_id {
        if named != device.as_str() {
            return Err(reject(
                RejectReason::DeviceMismatch,
                format!("status names device {named} but was sent for device {device}"),
            ));
        }
    }
    let ts = match &parsed.ts {
        None => context.received_at,
        Some(text) => Timestamp::parse_rfc3339(text).ok_or_else(|| {
            reject(
                RejectReason::MalformedPayload,
                format!("status ts {text:?} is not an RFC 3339 date-time"),
            )
        })?,
    };
    if let Some(battery) = parsed.battery_pct {
        if !(0.0..=100.0).contains(&battery) {
            return Err(reject(
                RejectReason::MalformedPayload,
                format!("battery_pct {battery} is not between 0 and 100"),
            ));
        }
    }
    let fault = match parsed.fault {
        Some(code) if code.trim().is_empty() => None,
        Some(code) => {
            let code = code.trim().to_owned();
            if code.chars().count() > MAX_FAULT_CHARS || code.chars().any(char::is_control) {
                return Err(reject(
                    RejectReason::MalformedPayload,
                    format!("fault must be at most {MAX_FAULT_CHARS} printable characters"),
                ));
            }
            Some(code)
        }
        None => None,
    };
    Ok(DecodedStatus {
        device_id: device.clone(),
        ts,
        online: parsed.online,
        battery_pct: parsed.battery_pct,
        fault,
        raw: payload.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<DecodedStatus, Rejection> {
        let device = DeviceId::parse("scale-7").unwrap();
        let context = DecodeContext {
            topic_device: Some(&device),
            received_at: Timestamp(1_000_000),
            max_payload_bytes: 1024,
        };
        decode_status(&Bytes::from(text.to_owned()), &device, &context)
    }

    #[test]
    fn a_full_status_decodes() {
        let status = decode(
            r#"{"device_id":"scale-7","ts":"2026-11-23T08:00:00Z","battery_pct":14,"fault":"E3","rssi":-70}"#,
        )
        .unwrap();
        assert_eq!(
            status.ts,
            Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap()
        );
        assert_eq!(status.battery_pct, Some(14.0));
        assert_eq!(status.fault.as_deref(), Some("E3"));
        assert!(status.online);
    }

    #[test]
    fn an_empty_object_is_a_heartbeat_at_the_receive_time() {
        let status = decode("{}").unwrap();
        assert_eq!(status.ts, Timestamp(1_000_000));
        assert_eq!((status.battery_pct, status.fault), (None, None));
        let cleared = decode(r#"{"fault":"  ","online":false}"#).unwrap();
        assert_eq!(cleared.fault, None);
        assert!(!cleared.online);
    }

    #[test]
    fn bad_statuses_are_refused_with_their_reason() {
        let cases = [
            (
                "not json",
                RejectReason::MalformedPayload,
                "not a valid status",
            ),
            (
                "[1,2]",
                RejectReason::MalformedPayload,
                "not a valid status",
            ),
            (
                r#"{"battery_pct":"low"}"#,
                RejectReason::MalformedPayload,
                "not a valid status",
            ),
            (
                r#"{"battery_pct":140}"#,
                RejectReason::MalformedPayload,
                "battery_pct 140",
            ),
            (
                r#"{"ts":"yesterday"}"#,
                RejectReason::MalformedPayload,
                "RFC 3339",
            ),
            (
                r#"{"fault":"a\u0000b"}"#,
                RejectReason::MalformedPayload,
                "printable",
            ),
            (
                r#"{"device_id":"scale-8"}"#,
                RejectReason::DeviceMismatch,
                "scale-8",
            ),
        ];
        for (text, reason, detail) in cases {
            let rejection = decode(text).unwrap_err();
            assert_eq!(rejection.reason, reason, "{text}");
            assert!(
                rejection.detail.contains(detail),
                "{text}: {}",
                rejection.detail
            );
            assert_eq!(rejection.device_id.as_deref(), Some("scale-7"));
            assert_eq!(rejection.raw, Bytes::from(text.to_owned()));
        }
        let oversized = format!(r#"{{"fault":"{}"}}"#, "x".repeat(2000));
        assert_eq!(
            decode(&oversized).unwrap_err().reason,
            RejectReason::PayloadTooLarge
        );
    }
}
