//! Thuiswacht JSON v1: `{"device_id", "seq", "readings": [{metric, value, unit, ts}]}`.
//!
//! A gateway buffers while offline, so a batch is the normal case. Each
//! element of `readings` is parsed on its own, so one bad reading is
//! quarantined without taking its neighbours along.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{resolve_device, DecodeContext, Decoded};
use crate::domain::{DecodedReading, Metric, RejectReason, Rejection, Timestamp, Unit};

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    device_id: Option<&'a str>,
    #[serde(default)]
    #[allow(dead_code)]
    seq: Option<u64>,
    #[serde(borrow)]
    readings: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawReading<'a> {
    #[serde(borrow)]
    metric: &'a str,
    value: f64,
    #[serde(borrow)]
    unit: Option<&'a str>,
    #[serde(borrow)]
    ts: &'a str,
}

pub(super) fn decode(payload: &Bytes, context: &DecodeContext<'_>) -> Decoded {
    let message: Message<'_> = match serde_json::from_slice(payload) {
        Ok(message) => message,
        Err(error) => {
            return Decoded::rejected(Rejection::new(
                RejectReason::MalformedPayload,
                format!("invalid Thuiswacht JSON v1: {error}"),
                context.topic_device.map(|id| id.as_str()),
                payload.clone(),
            ))
        }
    };
    let device_id = match resolve_device(message.device_id, context, payload) {
        Ok(device_id) => device_id,
        Err(rejection) => return Decoded::rejected(rejection),
    };
    let mut decoded = Decoded {
        readings: Vec::with_capacity(message.readings.len()),
        ..Decoded::default()
    };
    for raw in message.readings {
        let reject = |reason, detail: String| {
            Rejection::new(
                reason,
                detail,
                Some(device_id.as_str()),
                Bytes::copy_from_slice(raw.get().as_bytes()),
            )
        };
        let reading: RawReading<'_> = match serde_json::from_str(raw.get()) {
            Ok(reading) => reading,
            Err(error) => {
                decoded.rejections.push(reject(
                    RejectReason::MalformedPayload,
                    format!("invalid reading: {error}"),
                ));
                continue;
            }
        };
        let Some(metric) = Metric::from_code(reading.metric) else {
            decoded.rejections.push(reject(
                RejectReason::UnknownMetric,
                format!("unknown metric {:?}", reading.metric),
            ));
            continue;
        };
        let unit = match reading.unit {
            None => metric.unit(),
            Some(text) => match Unit::parse(text) {
                Some(unit) => unit,
                None => {
                    decoded.rejections.push(reject(
                        RejectReason::UnknownUnit,
                        format!("unknown unit {text:?} for {metric}"),
                    ));
                    continue;
                }
            },
        };
        let Some(ts) = Timestamp::parse_rfc3339(reading.ts) else {
            decoded.rejections.push(reject(
                RejectReason::MalformedPayload,
                format!("timestamp {:?} is not RFC 3339", reading.ts),
            ));
            continue;
        };
        decoded.readings.push(DecodedReading {
            device_id: device_id.clone(),
            metric,
            value: reading.value,
            unit,
            ts,
        });
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeviceId;

    fn context(topic: Option<&DeviceId>) -> DecodeContext<'_> {
        DecodeContext {
            topic_device: topic,
            received_at: Timestamp(0),
            max_payload_bytes: 256 * 1024,
        }
    }

    const DESIGN_EXAMPLE: &str = r#"{"device_id": "bpm-0042", "seq": 981,
     "readings": [
       {"metric": "bp_systolic",  "value": 148, "unit": "mm[Hg]", "ts": "2026-11-22T07:31:05Z"},
       {"metric": "bp_diastolic", "value": 91,  "unit": "mm[Hg]", "ts": "2026-11-22T07:31:05Z"},
       {"metric": "heart_rate",   "value": 77,  "unit": "/min",   "ts": "2026-11-22T07:31:05Z"}]}"#;

    #[test]
    fn design_example_decodes_to_three_readings() {
        let topic = DeviceId::parse("bpm-0042").unwrap();
        let decoded = decode(
            &Bytes::from_static(DESIGN_EXAMPLE.as_bytes()),
            &context(Some(&topic)),
        );
        assert!(decoded.rejections.is_empty(), "{:?}", decoded.rejections);
        assert_eq!(decoded.readings.len(), 3);
        assert_eq!(decoded.readings[0].metric, Metric::BpSystolic);
        assert_eq!(decoded.readings[0].value, 148.0);
        assert_eq!(decoded.readings[2].unit, Unit::PerMinute);
        assert_eq!(decoded.readings[1].ts.to_string(), "2026-11-22T07:31:05Z");
    }

    #[test]
    fn topic_and_payload_device_must_match() {
        let topic = DeviceId::parse("bpm-0001").unwrap();
        let decoded = decode(
            &Bytes::from_static(DESIGN_EXAMPLE.as_bytes()),
            &context(Some(&topic)),
        );
        assert!(decoded.readings.is_empty());
        assert_eq!(decoded.rejections[0].reason, RejectReason::DeviceMismatch);
    }

    #[test]
    fn bad_readings_are_rejected_one_by_one() {
        let payload = r#"{"device_id":"ox-1","readings":[
            {"metric":"spo2","value":97,"unit":"%","ts":"2026-11-22T07:00:00Z"},
            {"metric":"mood","value":3,"ts":"2026-11-22T07:00:00Z"},
            {"metric":"spo2","value":97,"unit":"furlong","ts":"2026-11-22T07:00:00Z"},
            {"metric":"spo2","value":"high","ts":"2026-11-22T07:00:00Z"},
            {"metric":"spo2","value":96,"ts":"last tuesday"}]}"#;
        let decoded = decode(&Bytes::from_static(payload.as_bytes()), &context(None));
        assert_eq!(decoded.readings.len(), 1);
        let reasons: Vec<_> = decoded.rejections.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            vec![
                RejectReason::UnknownMetric,
                RejectReason::UnknownUnit,
                RejectReason::MalformedPayload,
                RejectReason::MalformedPayload
            ]
        );
        assert!(std::str::from_utf8(&decoded.rejections[0].raw)
            .unwrap()
            .contains("mood"));
    }

    #[test]
    fn malformed_json_is_one_rejection() {
        let decoded = decode(
            &Bytes::from_static(b"{\"device_id\": \"x\", "),
            &context(None),
        );
        assert!(decoded.readings.is_empty());
        assert_eq!(decoded.rejections.len(), 1);
        assert_eq!(decoded.rejections[0].reason, RejectReason::MalformedPayload);
    }

    #[test]
    fn payload_without_device_uses_the_topic() {
        let topic = DeviceId::parse("scale-9").unwrap();
        let payload = r#"{"readings":[{"metric":"body_weight","value":81.2,"unit":"kg","ts":"2026-11-22T07:00:00Z"}]}"#;
        let decoded = decode(
            &Bytes::from_static(payload.as_bytes()),
            &context(Some(&topic)),
        );
        assert_eq!(decoded.readings[0].device_id, topic);
    }
}
