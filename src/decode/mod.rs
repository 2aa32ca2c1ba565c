//! Payload decoders: bytes of one MQTT publish or HTTP body in, decoded
//! readings and rejections out.
//!
//! Three formats are detected per message (DESIGN §3): Thuiswacht JSON v1 (an
//! object with `readings`), SenML JSON (RFC 8428, an array of records) and FHIR
//! R4 (an object with `resourceType`: an Observation or a Bundle of them).
//! Decoding is a pure function: no IO and no clock (the receive time is passed
//! in, for SenML's relative times). A message that cannot be read at all
//! becomes one message-level [`Rejection`]; inside a readable message each
//! reading stands or falls on its own, so good readings in a batch survive bad
//! neighbours. Checks that need the device registry (known device, allowed
//! metrics and units, plausible range, clock skew) happen later, in
//! [`crate::validate`].
//!
//! Device status messages have their own small format ([`decode_status`]).

mod fhir;
mod senml;
mod status;
mod text;
mod thuiswacht_v1;

use bytes::Bytes;

pub use status::{decode_status, MAX_FAULT_CHARS};

use crate::domain::{DecodedReading, DeviceId, RejectReason, Rejection, Timestamp};

/// The wire formats Thuiswacht accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    ThuiswachtV1,
    SenMl,
    Fhir,
}

/// What the receiving side knows about a message besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// The device id of the MQTT topic; `None` for HTTP, where the payload names the device.
    pub topic_device: Option<&'a DeviceId>,
    /// When the message arrived; SenML times below 2^28 are relative to it.
    pub received_at: Timestamp,
    /// Messages larger than this are refused whole as `payload_too_large`.
    pub max_payload_bytes: usize,
}

/// The result of decoding one message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// The format that was detected, if any.
    pub format: Option<PayloadFormat>,
    pub readings: Vec<DecodedReading>,
    pub rejections: Vec<Rejection>,
}

impl Decoded {
    fn rejected(rejection: Rejection) -> Decoded {
        Decoded {
            format: None,
            readings: Vec::new(),
            rejections: vec![rejection],
        }
    }
}

/// Decodes one message in whichever supported format it is written.
pub fn decode(payload: &Bytes, context: &DecodeContext<'_>) -> Decoded {
    let topic_device = context.topic_device.map(DeviceId::as_str);
    if payload.len() > context.max_payload_bytes {
        return Decoded::rejected(Rejection::new(
            RejectReason::PayloadTooLarge,
            format!(
                "payload of {} bytes is over the limit of {} bytes",
                payload.len(),
                context.max_payload_bytes
            ),
            topic_device,
            payload.clone(),
        ));
    }
    let format = match sniff(payload) {
        Some(format) => format,
        None => {
            return Decoded::rejected(Rejection::new(
                RejectReason::MalformedPayload,
                "payload is not a JSON object or array",
                topic_device,
                payload.clone(),
            ))
        }
    };
    let mut decoded = match format {
        PayloadFormat::ThuiswachtV1 => thuiswacht_v1::decode(payload, context),
        PayloadFormat::SenMl => senml::decode(payload, context),
        PayloadFormat::Fhir => fhir::decode(payload, context),
    };
    decoded.format = Some(format);
    decoded
}

/// Detects the format from the first significant byte and, for objects,
/// whether a top-level `resourceType` member is present. Sniffing the bytes
/// keeps each format on its own typed (fast) serde path.
fn sniff(payload: &[u8]) -> Option<PayloadFormat> {
    let first = payload.iter().copied().find(|b| !b.is_ascii_whitespace())?;
    match first {
        b'[' => Some(PayloadFormat::SenMl),
        b'{' => {
            if memchr_str(payload, b"\"resourceType\"") {
                Some(PayloadFormat::Fhir)
            } else {
                Some(PayloadFormat::ThuiswachtV1)
            }
        }
        _ => None,
    }
}

fn memchr_str(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Checks the payload's device id against the topic's; returns the device id
/// to use, or the rejection of the whole message.
fn resolve_device(
    payload_device: Option<&str>,
    context: &DecodeContext<'_>,
    raw: &Bytes,
) -> Result<DeviceId, Rejection> {
    let topic_device = context.topic_device;
    match (payload_device, topic_device) {
        (Some(named), Some(topic)) if named != topic.as_str() => Err(Rejection::new(
            RejectReason::DeviceMismatch,
            format!("topic names device {topic} but the payload names {named}"),
            Some(topic.as_str()),
            raw.clone(),
        )),
        (Some(named), _) => DeviceId::parse(named).map_err(|error| {
            Rejection::new(
                RejectReason::MalformedPayload,
                format!("invalid device id: {error}"),
                None,
                raw.clone(),
            )
        }),
        (None, Some(topic)) => Ok(topic.clone()),
        (None, None) => Err(Rejection::new(
            RejectReason::MalformedPayload,
            "payload names no device",
            None,
            raw.clone(),
        )),
    }
}

/// Helpers shared by the decoders' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::Bytes;

    use super::{DecodeContext, Decoded};
    use crate::domain::{DeviceId, RejectReason, Timestamp};

    /// A context received at 2026-11-22T07:30:00Z with the default size limit.
    pub(crate) fn context(topic: Option<&DeviceId>) -> DecodeContext<'_> {
        DecodeContext {
            topic_device: topic,
            received_at: Timestamp::parse_rfc3339("2026-11-22T07:30:00Z").unwrap(),
            max_payload_bytes: 256 * 1024,
        }
    }

    /// Decodes `payload` as if published on `topic`'s device (or over HTTP).
    pub(crate) fn decode_str(payload: &str, topic: Option<&str>) -> Decoded {
        let topic = topic.map(|id| DeviceId::parse(id).unwrap());
        super::decode(
            &Bytes::copy_from_slice(payload.as_bytes()),
            &context(topic.as_ref()),
        )
    }

    /// Returns the reasons of the rejections, in order.
    pub(crate) fn reasons(decoded: &Decoded) -> Vec<RejectReason> {
        decoded
            .rejections
            .iter()
            .map(|rejection| rejection.reason)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_from_the_payload_shape() {
        assert_eq!(sniff(b"  [{\"n\":\"x\"}]"), Some(PayloadFormat::SenMl));
        assert_eq!(
            sniff(b"{\"resourceType\":\"Observation\"}"),
            Some(PayloadFormat::Fhir)
        );
        assert_eq!(
            sniff(b"{\"device_id\":\"a\",\"readings\":[]}"),
            Some(PayloadFormat::ThuiswachtV1)
        );
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn oversized_payload_is_rejected_whole() {
        let payload = Bytes::from(vec![b' '; 300]);
        let context = DecodeContext {
            topic_device: None,
            received_at: Timestamp(0),
            max_payload_bytes: 256,
        };
        let decoded = decode(&payload, &context);
        assert!(decoded.readings.is_empty());
        assert_eq!(decoded.rejections.len(), 1);
        assert_eq!(decoded.rejections[0].reason, RejectReason::PayloadTooLarge);
    }
}
